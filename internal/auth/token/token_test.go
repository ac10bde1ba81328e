package token

import (
	"context"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func TestFormat(t *testing.T) {
	tok, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != Len || !strings.HasPrefix(tok, Prefix) {
		t.Fatalf("Generate() = %q", tok)
	}
	if err := Check(tok); err != nil {
		t.Fatalf("Check(generated) = %v", err)
	}
	flipped := []byte(tok)
	if flipped[10] == 'a' {
		flipped[10] = 'b'
	} else {
		flipped[10] = 'a'
	}
	for _, bad := range []string{"", "cof_", tok[:Len-1], "xof_" + tok[4:], string(flipped), tok[:Len-1] + "!"} {
		if Check(bad) == nil {
			t.Errorf("Check(%q) = nil, want ErrMalformed", bad)
		}
	}
}

func FuzzCheck(f *testing.F) {
	tok, _ := Generate()
	f.Add(tok)
	f.Add("cof_")
	f.Add(strings.Repeat("0", Len))
	f.Fuzz(func(t *testing.T, s string) { Check(s) })
}

func TestCreateLookupRevoke(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(mem.New(), func() time.Time { return now })
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	tok, e, err := s.Create(ctx, CreateInput{DisplayName: "root", Policies: []string{"root"}, NoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Lookup(ctx, tok)
	if err != nil || got.Accessor != e.Accessor || !got.Principal().Root() {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	if _, err := s.Lookup(ctx, tok[:Len-1]+"x"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup(bad) = %v", err)
	}
	other, _ := Generate()
	if _, err := s.Lookup(ctx, other); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup(unknown) = %v", err)
	}
	byAcc, err := s.LookupAccessor(ctx, e.Accessor)
	if err != nil || byAcc.DisplayName != "root" {
		t.Fatalf("LookupAccessor = %+v, %v", byAcc, err)
	}
	if err := s.Revoke(ctx, byAcc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(ctx, tok); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup after revoke = %v", err)
	}

	short, _, _ := s.Create(ctx, CreateInput{DisplayName: "short", TTL: time.Minute})
	if _, err := s.Lookup(ctx, short); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := s.Lookup(ctx, short); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Lookup expired = %v", err)
	}
}

func BenchmarkLookup(b *testing.B) {
	ctx := context.Background()
	s := New(mem.New(), nil)
	s.Load(ctx)
	tok, _, _ := s.Create(ctx, CreateInput{DisplayName: "x"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Lookup(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func newLoaded(t testing.TB) (*Service, *testClock) {
	t.Helper()
	c := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := New(mem.New(), c.now)
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, c
}

func mustCreate(t testing.TB, s *Service, in CreateInput) (string, *Entry) {
	t.Helper()
	tok, e, err := s.Create(context.Background(), in)
	if err != nil {
		t.Fatalf("Create(%+v) = %v", in, err)
	}
	return tok, e
}

func alive(s *Service, tok string) bool {
	_, err := s.Lookup(context.Background(), tok)
	return err == nil
}

func TestRevokeSubtreeAndOrphans(t *testing.T) {
	s, _ := newLoaded(t)
	ctx := context.Background()
	rootTok, root := mustCreate(t, s, CreateInput{DisplayName: "root", NoExpiry: true})
	childTok, child := mustCreate(t, s, CreateInput{DisplayName: "child", Parent: root})
	grandTok, _ := mustCreate(t, s, CreateInput{DisplayName: "grand", Parent: child})
	orphanTok, _ := mustCreate(t, s, CreateInput{DisplayName: "orphan", Parent: child, Orphan: true})
	siblingTok, _ := mustCreate(t, s, CreateInput{DisplayName: "sibling", Parent: root})
	for _, tok := range []string{childTok, grandTok} {
		s.Lookup(ctx, tok) // warm the cache: revocation must still win
	}
	if err := s.Revoke(ctx, child); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		tok  string
		want bool
	}{"root": {rootTok, true}, "child": {childTok, false}, "grandchild": {grandTok, false}, "orphan": {orphanTok, true}, "sibling": {siblingTok, true}} {
		if got := alive(s, tc.tok); got != tc.want {
			t.Errorf("%s alive = %v, want %v", name, got, tc.want)
		}
	}
	if _, err := s.LookupAccessor(ctx, child.Accessor); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupAccessor(revoked) = %v", err)
	}
	// A revoked parent cannot mint children.
	if _, _, err := s.Create(ctx, CreateInput{Parent: child}); err == nil {
		t.Error("Create under a revoked parent succeeded")
	}
}

func TestTTLRenewAndMax(t *testing.T) {
	s, c := newLoaded(t)
	ctx := context.Background()
	tok, e := mustCreate(t, s, CreateInput{TTL: time.Hour, MaxTTL: 3 * time.Hour, Renewable: true})
	c.t = c.t.Add(50 * time.Minute)
	e, err := s.Renew(ctx, e, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := c.t.Add(2 * time.Hour); !e.ExpiresAt.Equal(want) {
		t.Fatalf("expires after renew = %v, want %v", e.ExpiresAt, want)
	}
	c.t = c.t.Add(110 * time.Minute)
	if e, err = s.Renew(ctx, e, 2*time.Hour); err != nil { // capped at max: created + 3h
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC); !e.ExpiresAt.Equal(want) {
		t.Fatalf("expires capped = %v, want %v", e.ExpiresAt, want)
	}
	c.t = c.t.Add(21 * time.Minute)
	if alive(s, tok) {
		t.Fatal("token alive past max TTL")
	}
	_, fixed := mustCreate(t, s, CreateInput{TTL: time.Hour})
	if _, err := s.Renew(ctx, fixed, 0); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("Renew non-renewable = %v", err)
	}
}

func TestPeriodicToken(t *testing.T) {
	s, c := newLoaded(t)
	ctx := context.Background()
	tok, e := mustCreate(t, s, CreateInput{Period: time.Hour, Renewable: true})
	for i := 0; i < 48; i++ { // two days of hourly renewals: no maximum applies
		c.t = c.t.Add(59 * time.Minute)
		var err error
		if e, err = s.Renew(ctx, e, 0); err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
	}
	if !alive(s, tok) {
		t.Fatal("periodic token died while renewed")
	}
	c.t = c.t.Add(61 * time.Minute)
	if alive(s, tok) {
		t.Fatal("periodic token alive past its period without renewal")
	}
}

func TestChildNeverOutlivesParent(t *testing.T) {
	s, _ := newLoaded(t)
	_, parent := mustCreate(t, s, CreateInput{TTL: time.Hour, MaxTTL: time.Hour})
	_, child := mustCreate(t, s, CreateInput{TTL: 10 * time.Hour, MaxTTL: 20 * time.Hour, Parent: parent})
	if child.ExpiresAt.After(*parent.ExpiresAt) || child.MaxExpires.After(*parent.MaxExpires) {
		t.Fatalf("child expires %v/%v after parent %v/%v", child.ExpiresAt, child.MaxExpires, parent.ExpiresAt, parent.MaxExpires)
	}
}

func TestUseCount(t *testing.T) {
	s, _ := newLoaded(t)
	ctx := context.Background()
	tok, _ := mustCreate(t, s, CreateInput{NumUses: 2})
	for i := 0; i < 2; i++ {
		if _, err := s.Use(ctx, tok); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	if _, err := s.Use(ctx, tok); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("third use = %v", err)
	}
}

func TestListAndTidy(t *testing.T) {
	s, c := newLoaded(t)
	ctx := context.Background()
	mustCreate(t, s, CreateInput{DisplayName: "forever", NoExpiry: true})
	for i := 0; i < 5; i++ {
		mustCreate(t, s, CreateInput{TTL: time.Minute})
	}
	all, _, err := s.List(ctx, "", 100)
	if err != nil || len(all) != 6 {
		t.Fatalf("List = %d, %v", len(all), err)
	}
	c.t = c.t.Add(2 * time.Minute)
	n, err := s.TidyExpired(ctx)
	if err != nil || n != 5 {
		t.Fatalf("TidyExpired = %d, %v, want 5", n, err)
	}
	all, _, _ = s.List(ctx, "", 100)
	if len(all) != 1 || all[0].DisplayName != "forever" {
		t.Fatalf("after tidy: %+v", all)
	}
}

// TestChecksumMatchesBigInt: the allocation-free checksum writes what the
// original big.Int encoding wrote, so every token issued before still checks.
func TestChecksumMatchesBigInt(t *testing.T) {
	for i := 0; i < 2000; i++ {
		tok, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		body := tok[len(Prefix) : len(Prefix)+bodyLen]
		c := crc32.ChecksumIEEE([]byte(body))
		want := encode62([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}, checksumLen)
		if got := checksum(body); got != want {
			t.Fatalf("checksum(%q) = %q, want %q", body, got, want)
		}
		if Check(tok) != nil {
			t.Fatalf("Check(%q) failed", tok)
		}
	}
	if Check("cof_2vGID8BjGYE94AaS6wOhMgHxfdjgtWRqDPn7U7VpXUM2PUL5K") != nil {
		t.Fatal("a token issued by an earlier version no longer checks")
	}
}
