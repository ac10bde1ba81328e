package lease_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/lease"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/bolt"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// recorder is a revoker that remembers what it revoked and can be told to fail.
type recorder struct {
	mu      sync.Mutex
	revoked map[string]int // lease id -> calls
	renewed map[string]time.Time
	fail    error
}

func newRecorder() *recorder {
	return &recorder{revoked: map[string]int{}, renewed: map[string]time.Time{}}
}

func (r *recorder) Revoke(ctx context.Context, l *lease.Lease) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.revoked[l.ID]++
	return nil
}

func (r *recorder) Renew(ctx context.Context, l *lease.Lease, exp time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.renewed[l.ID] = exp
	return nil
}

func (r *recorder) setFail(err error) { r.mu.Lock(); r.fail = err; r.mu.Unlock() }
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.revoked)
}

func newManager(t testing.TB, cfg lease.Config) (*lease.Manager, *clock, *recorder, storage.Backend) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg.Now = c.now
	b := mem.New()
	m := lease.New(b, cfg)
	r := newRecorder()
	m.Register("test", r)
	return m, c, r, b
}

func create(t testing.TB, m *lease.Manager, in lease.Input) *lease.Lease {
	t.Helper()
	if in.Kind == "" {
		in.Kind = "test"
	}
	if in.Prefix == "" {
		in.Prefix = "test/creds/role"
	}
	if in.TTL == 0 {
		in.TTL = time.Hour
	}
	l, err := m.Create(context.Background(), in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return l
}

func TestCreateLookupRenew(t *testing.T) {
	ctx := context.Background()
	m, c, r, _ := newManager(t, lease.Config{})
	l := create(t, m, lease.Input{TTL: time.Hour, MaxTTL: 3 * time.Hour, Renewable: true, Accessor: "acc_1",
		Data: json.RawMessage(`{"username":"u"}`)})
	got, err := m.Lookup(ctx, l.ID)
	if err != nil || got.ExpiresAt != l.ExpiresAt || string(got.Data) != `{"username":"u"}` {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	c.advance(30 * time.Minute)
	rn, err := m.Renew(ctx, l.ID, 0)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if want := c.now().Add(time.Hour); !rn.ExpiresAt.Equal(want) || rn.Capped {
		t.Errorf("renewed expiry = %v (capped %v), want %v", rn.ExpiresAt, rn.Capped, want)
	}
	if r.renewed[l.ID] != rn.ExpiresAt {
		t.Errorf("renewer told %v, want %v", r.renewed[l.ID], rn.ExpiresAt)
	}
	// Renewals stop at the maximum, and say so.
	c.advance(time.Hour - time.Minute)
	rn, err = m.Renew(ctx, l.ID, 10*time.Hour)
	if err != nil || !rn.ExpiresAt.Equal(l.MaxExpiresAt) || !rn.Capped {
		t.Fatalf("Renew past max = %v (capped %v), %v; want %v, capped", rn.ExpiresAt, rn.Capped, err, l.MaxExpiresAt)
	}
	// The old expiry index entry is gone: nothing expires at the old time.
	c.advance(time.Hour)
	if res, err := m.ExpireDue(ctx); err != nil || res.Revoked != 0 {
		t.Fatalf("ExpireDue before renewed expiry = %+v, %v", res, err)
	}
	c.advance(time.Hour)
	if _, err := m.Renew(ctx, l.ID, 0); !errors.Is(err, lease.ErrExpired) {
		t.Errorf("Renew expired = %v, want ErrExpired", err)
	}
	if res, err := m.ExpireDue(ctx); err != nil || res.Revoked != 1 {
		t.Fatalf("ExpireDue = %+v, %v", res, err)
	}
	if _, err := m.Lookup(ctx, l.ID); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("Lookup after expiry = %v, want ErrNotFound", err)
	}
}

func TestRenewRefusals(t *testing.T) {
	ctx := context.Background()
	m, _, r, _ := newManager(t, lease.Config{})
	fixed := create(t, m, lease.Input{})
	if _, err := m.Renew(ctx, fixed.ID, 0); !errors.Is(err, lease.ErrNotRenewable) {
		t.Errorf("Renew non-renewable = %v", err)
	}
	if _, err := m.Renew(ctx, "test/creds/role/nope", 0); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("Renew missing = %v", err)
	}
	l := create(t, m, lease.Input{Renewable: true, MaxTTL: 2 * time.Hour})
	r.setFail(errors.New("database down"))
	if _, err := m.Renew(ctx, l.ID, 0); err == nil {
		t.Fatal("Renew with failing renewer succeeded")
	}
	if got, _ := m.Lookup(ctx, l.ID); !got.ExpiresAt.Equal(l.ExpiresAt) {
		t.Errorf("failed renew changed expiry to %v", got.ExpiresAt)
	}
	if err := m.Revoke(ctx, l.ID); err == nil {
		t.Fatal("Revoke with failing revoker = nil")
	}
	if _, err := m.Renew(ctx, l.ID, 0); !errors.Is(err, lease.ErrRevoking) {
		t.Errorf("Renew while revoking = %v, want ErrRevoking", err)
	}
}

func TestRevokeFailureIsRetriedNeverForgotten(t *testing.T) {
	ctx := context.Background()
	m, c, r, _ := newManager(t, lease.Config{RetryMin: time.Minute, RetryMax: 10 * time.Minute})
	l := create(t, m, lease.Input{})
	r.setFail(errors.New("connection refused"))
	err := m.Revoke(ctx, l.ID)
	var pe *lease.PendingError
	if !errors.As(err, &pe) || pe.Attempts != 1 {
		t.Fatalf("Revoke = %v, want PendingError attempt 1", err)
	}
	got, err := m.Lookup(ctx, l.ID)
	if err != nil || got.Revocation == nil || got.Revocation.LastError != "connection refused" || got.Revocation.Reason != "revoked" {
		t.Fatalf("Lookup pending = %+v, %v", got.Revocation, err)
	}
	// Not retried before the backoff.
	if res, _ := m.ExpireDue(ctx); res.Revoked+res.Pending != 0 {
		t.Fatalf("ExpireDue before backoff = %+v", res)
	}
	// Retried with growing backoff, capped.
	var last time.Duration
	for i := 2; i <= 8; i++ {
		cur, _ := m.Lookup(ctx, l.ID)
		wait := cur.Revocation.NextAttempt.Sub(c.now())
		if wait < last && wait < 10*time.Minute {
			t.Errorf("attempt %d: backoff %v shrank from %v", i, wait, last)
		}
		if wait > 12*time.Minute {
			t.Errorf("attempt %d: backoff %v above the cap", i, wait)
		}
		last = wait
		c.advance(wait)
		res, err := m.ExpireDue(ctx)
		if err != nil || res.Pending != 1 {
			t.Fatalf("ExpireDue attempt %d = %+v, %v", i, res, err)
		}
	}
	// The database comes back: the next retry succeeds.
	r.setFail(nil)
	c.advance(13 * time.Minute)
	if res, err := m.ExpireDue(ctx); err != nil || res.Revoked != 1 {
		t.Fatalf("ExpireDue after recovery = %+v, %v", res, err)
	}
	if _, err := m.Lookup(ctx, l.ID); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("lease still there: %v", err)
	}
}

func TestCrashAfterRevokeRequestStillRevokes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	b, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m := lease.New(b, lease.Config{Now: c.now})
	expired, _ := m.Create(ctx, lease.Input{Kind: "test", Prefix: "test/a", TTL: time.Minute})
	requested, _ := m.Create(ctx, lease.Input{Kind: "test", Prefix: "test/b", TTL: time.Hour})
	if err := m.MarkRevokingForTest(ctx, requested.ID); err != nil {
		t.Fatal(err)
	}
	b.Close() // crash: nothing revoked
	c.advance(2 * time.Minute)

	b, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m = lease.New(b, lease.Config{Now: c.now})
	r := newRecorder()
	m.Register("test", r)
	res, err := m.ExpireDue(ctx)
	if err != nil || res.Revoked != 2 {
		t.Fatalf("ExpireDue after restart = %+v, %v", res, err)
	}
	if r.revoked[expired.ID] != 1 || r.revoked[requested.ID] != 1 {
		t.Errorf("revoked = %v", r.revoked)
	}
}

func TestUnregisteredKindIsRetried(t *testing.T) {
	ctx := context.Background()
	m, c, _, _ := newManager(t, lease.Config{})
	l := create(t, m, lease.Input{Kind: "future", TTL: time.Minute})
	c.advance(time.Minute)
	res, err := m.ExpireDue(ctx)
	if err != nil || res.Pending != 1 {
		t.Fatalf("ExpireDue = %+v, %v", res, err)
	}
	got, _ := m.Lookup(ctx, l.ID)
	if got.Revocation == nil || got.Revocation.Reason != "expired" {
		t.Errorf("revocation = %+v", got.Revocation)
	}
}

// TestRenewIncrementBounds: an increment out of range is the caller's
// mistake (an *InputError naming "increment", a 400 over HTTP), not a 500.
func TestRenewIncrementBounds(t *testing.T) {
	ctx := context.Background()
	m, _, _, _ := newManager(t, lease.Config{})
	l := create(t, m, lease.Input{Renewable: true, MaxTTL: 2 * time.Hour})
	for _, inc := range []time.Duration{-time.Hour, -1, lease.MaxTTL + 1, 10 * lease.MaxTTL} {
		_, err := m.Renew(ctx, l.ID, inc)
		var ie *lease.InputError
		if !errors.As(err, &ie) || ie.Field != "increment" {
			t.Errorf("Renew(%v) = %v, want an InputError for increment", inc, err)
		}
	}
	for _, inc := range []time.Duration{0, time.Second, lease.MaxTTL} {
		if _, err := m.Renew(ctx, l.ID, inc); err != nil {
			t.Errorf("Renew(%v) = %v", inc, err)
		}
	}
}

// TestPrefixMustEndWithSlash: "test/creds/r" would also reach role
// "reporting"; prefixes cover whole segments only.
func TestPrefixMustEndWithSlash(t *testing.T) {
	ctx := context.Background()
	m, _, _, _ := newManager(t, lease.Config{})
	keep := create(t, m, lease.Input{Prefix: "test/creds/reporting"})
	for _, p := range []string{"test/creds/r", "test/creds/reporting", "test", keep.ID} {
		if _, err := m.RevokePrefix(ctx, p); !errors.Is(err, lease.ErrBadPrefix) {
			t.Errorf("RevokePrefix(%q) = %v, want ErrBadPrefix", p, err)
		}
		if _, _, err := m.List(ctx, p, "", 0); !errors.Is(err, lease.ErrBadPrefix) {
			t.Errorf("List(%q) = %v, want ErrBadPrefix", p, err)
		}
	}
	if _, err := m.Lookup(ctx, keep.ID); err != nil {
		t.Fatalf("lease after refused prefixes: %v", err)
	}
	if res, err := m.RevokePrefix(ctx, "test/creds/r/"); err != nil || res.Revoked != 0 {
		t.Errorf(`RevokePrefix("test/creds/r/") = %+v, %v; want nothing revoked`, res, err)
	}
	if ids, _, err := m.List(ctx, "", "", 0); err != nil || len(ids) != 1 {
		t.Errorf(`List("") = %v, %v`, ids, err)
	}
	if res, err := m.RevokePrefix(ctx, "test/creds/reporting/"); err != nil || res.Revoked != 1 {
		t.Errorf("RevokePrefix of the role = %+v, %v", res, err)
	}
}

func TestRevokeByTokenAndPrefix(t *testing.T) {
	ctx := context.Background()
	m, _, r, _ := newManager(t, lease.Config{Batch: 3})
	var mine, other []*lease.Lease
	for i := range 7 {
		mine = append(mine, create(t, m, lease.Input{Accessor: "acc_mine", Prefix: fmt.Sprintf("test/creds/r%d", i%2)}))
		other = append(other, create(t, m, lease.Input{Accessor: "acc_other", Prefix: "test/creds/r0"}))
	}
	if err := m.RevokeByToken(ctx, "acc_mine"); err != nil {
		t.Fatal(err)
	}
	for _, l := range mine {
		if _, err := m.Lookup(ctx, l.ID); !errors.Is(err, lease.ErrNotFound) {
			t.Errorf("lease of revoked token %s: %v", l.ID, err)
		}
	}
	for _, l := range other {
		if _, err := m.Lookup(ctx, l.ID); err != nil {
			t.Errorf("lease of another token %s: %v", l.ID, err)
		}
	}
	// r0 vs r00: a prefix ending in "/" is exact on the segment.
	create(t, m, lease.Input{Prefix: "test/creds/r00"})
	res, err := m.RevokePrefix(ctx, "test/creds/r0/")
	if err != nil || res.Revoked != 7 {
		t.Fatalf("RevokePrefix = %+v, %v", res, err)
	}
	ids, _, err := m.List(ctx, "test/", "", 0)
	if err != nil || len(ids) != 1 {
		t.Fatalf("List after = %v, %v", ids, err)
	}
	if r.count() != 14 {
		t.Errorf("revoker called for %d leases, want 14", r.count())
	}
}

func TestListPages(t *testing.T) {
	ctx := context.Background()
	m, _, _, _ := newManager(t, lease.Config{})
	for range 5 {
		create(t, m, lease.Input{Prefix: "test/a"})
	}
	create(t, m, lease.Input{Prefix: "test/b"})
	var all []string
	after := ""
	for {
		ids, next, err := m.List(ctx, "test/a/", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids...)
		if next == "" {
			break
		}
		after = next
	}
	if len(all) != 5 {
		t.Errorf("paged list = %d ids, want 5", len(all))
	}
}

func TestExpireDueBatches(t *testing.T) {
	ctx := context.Background()
	m, c, r, _ := newManager(t, lease.Config{Batch: 4})
	for i := range 10 {
		create(t, m, lease.Input{TTL: time.Duration(i+1) * time.Minute})
	}
	c.advance(7 * time.Minute)
	res, err := m.ExpireDue(ctx)
	if err != nil || res.Revoked != 7 || r.count() != 7 {
		t.Fatalf("ExpireDue = %+v, %v (revoker saw %d)", res, err, r.count())
	}
}

func TestCheckID(t *testing.T) {
	tests := []struct {
		id     string
		prefix bool
		ok     bool
	}{
		{"db/creds/ro/abc", false, true},
		{"db/creds/", true, true},
		{"db/creds/", false, false},
		{"", false, false},
		{"db//x", false, false},
		{"db/../x", false, false},
		{"db/cr eds", false, false},
		{"db/x';drop", false, false},
	}
	for _, tt := range tests {
		if err := lease.CheckID(tt.id, tt.prefix); (err == nil) != tt.ok {
			t.Errorf("CheckID(%q, %v) = %v, want ok %v", tt.id, tt.prefix, err, tt.ok)
		}
	}
}

// TestScale puts 100,000 leases in a bolt file behind the barrier (so
// every record is encrypted, as in a server), then measures start-up with
// them present (open storage, unseal, new manager, first expiry pass) and
// expiring all of them.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	const n = 100_000
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	rootKey, _ := barrier.NewRootKey()
	openStore := func() (*bolt.Backend, *barrier.Barrier) {
		b, err := bolt.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		br := barrier.New(b, nil)
		if ok, _ := br.Initialized(ctx); !ok {
			if err := br.Initialize(ctx, rootKey); err != nil {
				t.Fatal(err)
			}
		}
		if err := br.Unseal(ctx, rootKey); err != nil {
			t.Fatal(err)
		}
		return b, br
	}
	b, br := openStore()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	start := time.Now()
	batch := make([]*lease.Lease, 0, 5000)
	for i := range n {
		exp := base.Add(time.Duration(1+i%3600) * time.Second)
		batch = append(batch, &lease.Lease{ID: "test/creds/role/" + lease.RandomIDForTest(), Kind: "test",
			Accessor: fmt.Sprintf("acc_%04d", i%1000), IssuedAt: base, ExpiresAt: exp, MaxExpiresAt: exp,
			TTL: time.Hour, Data: json.RawMessage(`{"db":"pg","role":"role","username":"v_app_role_abcdefghij"}`)})
		if len(batch) == cap(batch) {
			if err := lease.PutForTest(ctx, br, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	t.Logf("stored %d leases in %v", n, time.Since(start))
	b.Close()

	c := &clock{t: base}
	start = time.Now()
	b, br = openStore()
	defer b.Close()
	m := lease.New(br, lease.Config{Now: c.now})
	r := newRecorder()
	m.Register("test", r)
	res, err := m.ExpireDue(ctx) // nothing due yet: the first job run after start-up
	startup := time.Since(start)
	if err != nil || res.Revoked != 0 {
		t.Fatalf("first ExpireDue = %+v, %v", res, err)
	}
	t.Logf("start-up with %d leases (open storage, unseal, new manager, first expiry pass): %v", n, startup)
	if startup > 2*time.Second {
		t.Errorf("start-up took %v with %d leases", startup, n)
	}

	c.advance(30 * time.Minute) // half of them are due
	start = time.Now()
	res, err = m.ExpireDue(ctx)
	took := time.Since(start)
	if err != nil || res.Revoked != 50_400 { // exp offsets 1..1800 s of 1..3600 s
		t.Fatalf("ExpireDue = %+v, %v", res, err)
	}
	t.Logf("expired %d of %d leases in %v (%.0f leases/s)", res.Revoked, n, took, float64(res.Revoked)/took.Seconds())
	c.advance(time.Hour)
	start = time.Now()
	res, err = m.ExpireDue(ctx)
	took = time.Since(start)
	if err != nil || r.count() != n {
		t.Fatalf("ExpireDue = %+v, %v (revoker saw %d)", res, err, r.count())
	}
	t.Logf("expired the other %d in %v (%.0f leases/s)", res.Revoked, took, float64(res.Revoked)/took.Seconds())
	if keys, _ := b.List(ctx, "lease/", "", 0); len(keys) != 0 {
		t.Errorf("%d lease keys left after expiry", len(keys))
	}
}

func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"db/creds/ro/abc", "db/creds/", "", "/", "a//b", "a/../b", "a/./b", "x';--", "é", strings.Repeat("a", 600)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if lease.CheckID(id, false) != nil {
			return
		}
		// Accepted ids are safe as storage key suffixes and URL paths.
		if len(id) > lease.MaxIDLen || strings.Contains(id, "//") || strings.HasPrefix(id, "/") || strings.HasSuffix(id, "/") {
			t.Fatalf("CheckID accepted %q", id)
		}
		for _, c := range id {
			if c < '-' || c > 'z' {
				t.Fatalf("CheckID accepted %q with %q", id, c)
			}
		}
	})
}
