package secret

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/storage/bolt"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newService(t testing.TB) (*Service, *clock) {
	t.Helper()
	be := mem.New()
	b := barrier.New(be, nil)
	root, _ := barrier.NewRootKey()
	ctx := context.Background()
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(b, c.now), c
}

func mustPut(t testing.TB, s *Service, in PutInput) *PutResult {
	t.Helper()
	if in.Actor == "" {
		in.Actor = "tester"
	}
	r, err := s.Put(context.Background(), in)
	if err != nil {
		t.Fatalf("Put(%s) = %v", in.Name, err)
	}
	return r
}

func getValue(t testing.TB, s *Service, name string, sel Selector) string {
	t.Helper()
	v, err := s.Get(context.Background(), name, sel)
	if err != nil {
		t.Fatalf("Get(%s, %+v) = %v", name, sel, err)
	}
	return string(v.Data)
}

func intp(n int) *int { return &n }

func TestPutGetVersionsAndStages(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	r := mustPut(t, s, PutInput{Name: "prod/db", Value: []byte("one"), Description: "db", Tags: map[string]string{"team": "pay"}})
	if !r.Created || r.Version != 1 || !slices.Equal(r.Stages, []string{"current"}) {
		t.Fatalf("first put = %+v", r)
	}
	mustPut(t, s, PutInput{Name: "prod/db", Value: []byte("two")})
	mustPut(t, s, PutInput{Name: "prod/db", Value: []byte("three"), Stages: []string{"pending"}})

	tests := []struct {
		sel  Selector
		want string
	}{
		{Selector{}, "two"},
		{Selector{Stage: "current"}, "two"},
		{Selector{Stage: "previous"}, "one"},
		{Selector{Stage: "pending"}, "three"},
		{Selector{Version: 1}, "one"},
		{Selector{Version: 3}, "three"},
	}
	for _, tt := range tests {
		if got := getValue(t, s, "prod/db", tt.sel); got != tt.want {
			t.Errorf("Get(%+v) = %q, want %q", tt.sel, got, tt.want)
		}
	}
	if _, err := s.Get(ctx, "prod/db", Selector{Version: 9}); !errors.Is(err, ErrVersionNotFound) {
		t.Errorf("Get(version 9) = %v, want ErrVersionNotFound", err)
	}
	if _, err := s.Get(ctx, "prod/db", Selector{Stage: "nope"}); !errors.Is(err, ErrVersionNotFound) {
		t.Errorf("Get(stage nope) = %v, want ErrVersionNotFound", err)
	}
	if _, err := s.Get(ctx, "prod/nope", Selector{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}

	// Promote pending: rotation's last step. The old current becomes previous.
	if _, err := s.MoveStage(ctx, "prod/db", "current", 3, 2, "tester"); err != nil {
		t.Fatal(err)
	}
	if got := getValue(t, s, "prod/db", Selector{Stage: "previous"}); got != "two" {
		t.Errorf("previous after promote = %q, want two", got)
	}
	// Rollback: move current back to 2.
	if _, err := s.MoveStage(ctx, "prod/db", "current", 2, 0, "tester"); err != nil {
		t.Fatal(err)
	}
	if got := getValue(t, s, "prod/db", Selector{}); got != "two" {
		t.Errorf("current after rollback = %q, want two", got)
	}
	if _, err := s.MoveStage(ctx, "prod/db", "current", 1, 3, "tester"); !errors.Is(err, ErrStageConflict) {
		t.Errorf("MoveStage with wrong from = %v, want ErrStageConflict", err)
	}

	m, err := s.Describe(ctx, "prod/db")
	if err != nil {
		t.Fatal(err)
	}
	if m.Description != "db" || m.Tags["team"] != "pay" || m.LatestVersion != 3 || m.CurrentVersion() != 2 {
		t.Errorf("Describe = %+v", m)
	}
	if got := m.Versions[1].Stages; !slices.Equal(got, []string{"current"}) {
		t.Errorf("version 2 stages = %v", got)
	}
	if m.Versions[0].CreatedBy != "tester" || m.Versions[0].Size != 3 {
		t.Errorf("version 1 = %+v", m.Versions[0])
	}
	if _, err := s.RemoveStage(ctx, "prod/db", "current"); !errors.Is(err, ErrStageConflict) {
		t.Errorf("RemoveStage(current) = %v", err)
	}
	if _, err := s.RemoveStage(ctx, "prod/db", "pending"); err != nil {
		t.Errorf("RemoveStage(pending) = %v", err)
	}
}

func TestFirstVersionIsAlwaysCurrent(t *testing.T) {
	s, _ := newService(t)
	r := mustPut(t, s, PutInput{Name: "x", Value: []byte("v"), Stages: []string{"pending"}})
	if !slices.Equal(r.Stages, []string{"current", "pending"}) {
		t.Fatalf("stages = %v", r.Stages)
	}
}

func TestCAS(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	mustPut(t, s, PutInput{Name: "c", Value: []byte("1"), CAS: intp(0)})
	if _, err := s.Put(ctx, PutInput{Name: "c", Value: []byte("x"), CAS: intp(0)}); !errors.Is(err, ErrCASMismatch) {
		t.Fatalf("cas 0 on existing = %v", err)
	}
	mustPut(t, s, PutInput{Name: "c", Value: []byte("2"), CAS: intp(1)})
	if _, err := s.Put(ctx, PutInput{Name: "c", Value: []byte("x"), CAS: intp(1)}); !errors.Is(err, ErrCASMismatch) {
		t.Fatalf("stale cas = %v", err)
	}
}

func TestIdempotency(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	a := mustPut(t, s, PutInput{Name: "i", Value: []byte("v1"), IdempotencyToken: "tok-1"})
	b := mustPut(t, s, PutInput{Name: "i", Value: []byte("v1"), IdempotencyToken: "tok-1"})
	if b.Version != a.Version || !b.Replay {
		t.Fatalf("replay = %+v, want version %d replayed", b, a.Version)
	}
	if _, err := s.Put(ctx, PutInput{Name: "i", Value: []byte("v2"), IdempotencyToken: "tok-1"}); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("reuse with other value = %v", err)
	}
	if m, _ := s.Describe(ctx, "i"); m.LatestVersion != 1 {
		t.Fatalf("latest = %d, want 1", m.LatestVersion)
	}

	// A late retry whose version max_versions pruned writes nothing: it
	// would make an old value current again.
	mustPut(t, s, PutInput{Name: "p", Value: []byte("v1"), IdempotencyToken: "deploy-42", MaxVersions: 2})
	mustPut(t, s, PutInput{Name: "p", Value: []byte("v2")})
	mustPut(t, s, PutInput{Name: "p", Value: []byte("v3")})
	if _, err := s.Put(ctx, PutInput{Name: "p", Value: []byte("v1"), IdempotencyToken: "deploy-42"}); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("retry of a pruned version = %v, want ErrIdempotencyConflict", err)
	}
	if m, _ := s.Describe(ctx, "p"); m.LatestVersion != 3 || m.CurrentVersion() != 3 {
		t.Fatalf("after the late retry: latest %d current %d, want 3 and 3", m.LatestVersion, m.CurrentVersion())
	}
}

func TestDeleteRestorePurge(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	mustPut(t, s, PutInput{Name: "d", Value: []byte("v")})
	if _, err := s.Delete(ctx, "d", DeleteInput{RecoveryWindow: time.Hour}); err == nil {
		t.Fatal("Delete with a 1h window accepted")
	}
	m, err := s.Delete(ctx, "d", DeleteInput{})
	if err != nil || m.PurgeAt == nil || m.PurgeAt.Sub(*m.DeletedAt) != DefaultRecoveryWindow {
		t.Fatalf("Delete = %+v, %v", m, err)
	}
	if _, err := s.Get(ctx, "d", Selector{}); !errors.Is(err, ErrDeleted) {
		t.Fatalf("Get deleted = %v", err)
	}
	if _, err := s.Put(ctx, PutInput{Name: "d", Value: []byte("w")}); !errors.Is(err, ErrDeleted) {
		t.Fatalf("Put deleted = %v", err)
	}
	if _, err := s.Restore(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if getValue(t, s, "d", Selector{}) != "v" {
		t.Fatal("value lost by delete/restore")
	}
	if _, err := s.Restore(ctx, "d"); !errors.Is(err, ErrNotDeleted) {
		t.Fatalf("Restore not deleted = %v", err)
	}
	s.Delete(ctx, "d", DeleteInput{RecoveryWindow: 7 * 24 * time.Hour})
	if n, _ := s.PurgeDue(ctx); n != 0 {
		t.Fatalf("purged %d before due", n)
	}
	c.advance(7*24*time.Hour + time.Second)
	if n, err := s.PurgeDue(ctx); n != 1 || err != nil {
		t.Fatalf("PurgeDue = %d, %v", n, err)
	}
	if _, err := s.Describe(ctx, "d"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Describe purged = %v", err)
	}
	// The name is free again, and old versions do not come back.
	r := mustPut(t, s, PutInput{Name: "d", Value: []byte("new")})
	if r.Version != 1 || !r.Created {
		t.Fatalf("recreate = %+v", r)
	}
	mustPut(t, s, PutInput{Name: "f", Value: []byte("v")})
	if _, err := s.Delete(ctx, "f", DeleteInput{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Describe(ctx, "f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Describe force-deleted = %v", err)
	}
}

func TestDestroyAndPrune(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		mustPut(t, s, PutInput{Name: "p", Value: []byte(fmt.Sprint(i)), MaxVersions: 3})
	}
	m, _ := s.Describe(ctx, "p")
	var nums []int
	for _, v := range m.Versions {
		nums = append(nums, v.Number)
	}
	if !slices.Equal(nums, []int{2, 3, 4}) {
		t.Fatalf("versions after prune = %v, want [2 3 4]", nums)
	}
	if _, err := s.Get(ctx, "p", Selector{Version: 1}); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("pruned version = %v", err)
	}
	if _, err := s.Destroy(ctx, "p", []int{3}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "p", Selector{Stage: "previous"}); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("destroyed previous = %v", err)
	}
	m, _ = s.Describe(ctx, "p")
	if !m.Versions[1].Destroyed {
		t.Fatalf("version 3 not marked destroyed: %+v", m.Versions)
	}
	// Shrinking max_versions prunes versions without stages only.
	mustPut(t, s, PutInput{Name: "p", Value: []byte("5")})
	one := 1
	m, err := s.UpdateMetadata(ctx, "p", Patch{MaxVersions: &one})
	if err != nil {
		t.Fatal(err)
	}
	nums = nums[:0]
	for _, v := range m.Versions {
		nums = append(nums, v.Number)
	}
	if !slices.Equal(nums, []int{4, 5}) {
		t.Fatalf("versions after shrink = %v, want [4 5] (previous and current kept)", nums)
	}
}

func TestExpiry(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	exp := c.t.Add(time.Hour)
	mustPut(t, s, PutInput{Name: "e", Value: []byte("v"), ExpiresAt: &exp})
	getValue(t, s, "e", Selector{})
	c.advance(time.Hour)
	if _, err := s.Get(ctx, "e", Selector{}); !errors.Is(err, ErrExpired) {
		t.Fatalf("Get expired = %v", err)
	}
	if _, err := s.UpdateMetadata(ctx, "e", Patch{ExpiresAt: &time.Time{}}); err != nil {
		t.Fatal(err)
	}
	getValue(t, s, "e", Selector{})
}

func TestListPagination(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		mustPut(t, s, PutInput{Name: fmt.Sprintf("app/k%d", i), Value: []byte("v")})
	}
	mustPut(t, s, PutInput{Name: "other/x", Value: []byte("v")})
	s.Delete(ctx, "app/k3", DeleteInput{})
	var names []string
	cursor := ""
	pages := 0
	for {
		p, err := s.List(ctx, ListInput{Prefix: "app/", Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range p.Items {
			names = append(names, it.Name)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	want := []string{"app/k0", "app/k1", "app/k2", "app/k4", "app/k5", "app/k6"}
	if !slices.Equal(names, want) || pages != 3 {
		t.Fatalf("listed %v in %d pages, want %v in 3", names, pages, want)
	}
	p, _ := s.List(ctx, ListInput{Prefix: "app/", IncludeDeleted: true})
	if len(p.Items) != 7 {
		t.Fatalf("with deleted: %d items, want 7", len(p.Items))
	}
}

func TestValidation(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		in    PutInput
		field string
	}{
		{"empty name", PutInput{Name: "", Value: []byte("v")}, "name"},
		{"dotdot", PutInput{Name: "a/../b", Value: []byte("v")}, "name"},
		{"space", PutInput{Name: "a b", Value: []byte("v")}, "name"},
		{"too long", PutInput{Name: strings.Repeat("a", 513), Value: []byte("v")}, "name"},
		{"big value", PutInput{Name: "a", Value: make([]byte, MaxValueSize+1)}, "value"},
		{"bad json", PutInput{Name: "a", Value: []byte("{"), Type: TypeJSON}, "value"},
		{"bad type", PutInput{Name: "a", Value: []byte("v"), Type: "xml"}, "type"},
		{"bad stage", PutInput{Name: "a", Value: []byte("v"), Stages: []string{"a b"}}, "stage"},
		{"set previous", PutInput{Name: "a", Value: []byte("v"), Stages: []string{"previous"}}, "stages"},
		{"bad token", PutInput{Name: "a", Value: []byte("v"), IdempotencyToken: "a b"}, "idempotency_token"},
		{"too many tags", PutInput{Name: "a", Value: []byte("v"), Tags: manyTags(51)}, "tags"},
		{"max versions", PutInput{Name: "a", Value: []byte("v"), MaxVersions: 5000}, "max_versions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put(ctx, tt.in)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("Put = %v, want a validation error on %s", err, tt.field)
			}
		})
	}
}

func manyTags(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[fmt.Sprint(i)] = "v"
	}
	return m
}

func FuzzValidateName(f *testing.F) {
	for _, seed := range []string{"a", "prod/db/password", "a//b", "/a", "a/", "..", "a/./b", "a\x00b", "ä", "a%2Fb", strings.Repeat("x", 600)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		if len(name) > MaxNameLen || strings.Contains(name, "//") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
			t.Fatalf("ValidateName(%q) accepted a bad name", name)
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("ValidateName(%q) accepted a dot segment", name)
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	s, _ := newService(b)
	mustPut(b, s, PutInput{Name: "bench/secret", Value: []byte(strings.Repeat("x", 100))})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, "bench/secret", Selector{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutNewKeysBolt measures durable writes of new secrets through the
// barrier onto bolt with 32 concurrent writers sharing group commits.
func BenchmarkPutNewKeysBolt(b *testing.B) {
	be, err := bolt.Open(filepath.Join(b.TempDir(), "coffer.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	br := barrier.New(be, nil)
	root, _ := barrier.NewRootKey()
	ctx := context.Background()
	br.Initialize(ctx, root)
	br.Unseal(ctx, root)
	s := New(br, nil)
	val := []byte(strings.Repeat("x", 100))
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("bench/w/%d", n.Add(1))
			if _, err := s.Put(ctx, PutInput{Name: name, Value: val}); err != nil {
				b.Error(err)
			}
		}
	})
	commits, writes := be.Stats()
	b.ReportMetric(float64(writes)/float64(max(commits, 1)), "writes/commit")
}

// TestDataKeyFormat: the hand-built data key is what the original
// fmt.Sprintf wrote, so existing stores keep their keys.
func TestDataKeyFormat(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 123, 9999999999, 12345678901} { // versions are never negative
		if got, want := dataKey("abc123", n), fmt.Sprintf("%s%s/%010d", dataPrefix, "abc123", n); got != want {
			t.Errorf("dataKey(%d) = %q, want %q", n, got, want)
		}
	}
}
