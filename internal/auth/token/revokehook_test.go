package token

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// TestOnRevoke checks that every way a token dies tells the hook first:
// explicit revocation (with its children), the last use, and the tidy of
// expired tokens; and that a failing hook keeps the token (unusable) for a
// retry, which TidyExpired makes.
func TestOnRevoke(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	s := New(mem.New(), clock)
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []string
		fail error
	)
	s.OnRevoke(func(ctx context.Context, accessor string) error {
		mu.Lock()
		defer mu.Unlock()
		if fail != nil {
			return fail
		}
		seen = append(seen, accessor)
		return nil
	})
	_, parent, _ := s.Create(ctx, CreateInput{DisplayName: "p", Policies: []string{"x"}})
	_, child, _ := s.Create(ctx, CreateInput{DisplayName: "c", Policies: []string{"x"}, Parent: parent})
	if err := s.Revoke(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seen, parent.Accessor) || !slices.Contains(seen, child.Accessor) {
		t.Errorf("hook saw %v, want parent and child", seen)
	}

	once, _, _ := s.Create(ctx, CreateInput{DisplayName: "once", NumUses: 1})
	e, _ := s.Lookup(ctx, once)
	if _, err := s.Use(ctx, once); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seen, e.Accessor) {
		t.Error("hook not told of the last use")
	}

	_, short, _ := s.Create(ctx, CreateInput{DisplayName: "short", TTL: time.Minute})
	clockMu.Lock()
	now = now.Add(2 * time.Minute)
	clockMu.Unlock()
	if _, err := s.TidyExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seen, short.Accessor) {
		t.Error("hook not told of the expired token's tidy")
	}

	tok, kept, _ := s.Create(ctx, CreateInput{DisplayName: "kept"})
	mu.Lock()
	fail = errors.New("storage down")
	mu.Unlock()
	if err := s.Revoke(ctx, kept); err == nil {
		t.Fatal("Revoke with a failing hook = nil")
	}
	// The token is kept so that the revocation can be retried, but the
	// revocation has begun: it no longer authenticates.
	if _, err := s.Lookup(ctx, tok); err == nil {
		t.Error("token still usable after a revocation that failed in the hook")
	}
	mu.Lock()
	fail = nil
	mu.Unlock()
	if _, err := s.TidyExpired(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seen, kept.Accessor) {
		t.Error("tidy did not finish the failed revocation")
	}

	// An administrator can also finish it by accessor, though the token
	// is no longer live.
	_, again, _ := s.Create(ctx, CreateInput{DisplayName: "again"})
	mu.Lock()
	fail = errors.New("storage down")
	mu.Unlock()
	if err := s.Revoke(ctx, again); err == nil {
		t.Fatal("Revoke with a failing hook = nil")
	}
	mu.Lock()
	fail = nil
	mu.Unlock()
	if _, err := s.LookupAccessor(ctx, again.Accessor); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupAccessor of a token being revoked = %v, want ErrNotFound", err)
	}
	if err := s.RevokeAccessor(ctx, again.Accessor); err != nil {
		t.Fatalf("RevokeAccessor of a half-revoked token = %v", err)
	}
	if err := s.RevokeAccessor(ctx, again.Accessor); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeAccessor once finished = %v, want ErrNotFound", err)
	}
}
