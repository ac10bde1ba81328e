package token

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// TestNoChildCreatedDuringRevoke: once the revocation of a token has begun,
// its holder cannot mint a child, not even while its leases are being
// revoked (from inside the OnRevoke hook), and nothing it minted survives.
func TestNoChildCreatedDuringRevoke(t *testing.T) {
	s, _ := newLoaded(t)
	ctx := context.Background()
	parentTok, parent := mustCreate(t, s, CreateInput{DisplayName: "p", Policies: []string{"a"}, Renewable: true})
	oldTok, _ := mustCreate(t, s, CreateInput{DisplayName: "old", Parent: parent})
	s.Lookup(ctx, parentTok) // warm the cache: the mark must win over it
	var (
		calls    int
		childTok string
		childErr error
		lookErr  error
	)
	s.OnRevoke(func(ctx context.Context, acc string) error {
		if acc != parent.Accessor {
			return nil
		}
		calls++
		if calls == 1 {
			// The stolen parent's holder keeps calling token/create while
			// leases are revoked; the API looks the token up first.
			_, lookErr = s.Use(ctx, parentTok)
			childTok, _, childErr = s.Create(ctx, CreateInput{DisplayName: "c", Policies: []string{"a"}, Parent: parent, Renewable: true})
		}
		return nil
	})
	if err := s.Revoke(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(lookErr, auth.ErrUnauthenticated) {
		t.Errorf("Use of the parent during its revocation = %v, want ErrUnauthenticated", lookErr)
	}
	if !errors.Is(childErr, auth.ErrUnauthenticated) {
		t.Errorf("Create under a parent being revoked = %v, want ErrUnauthenticated", childErr)
	}
	if childTok != "" && alive(s, childTok) {
		t.Error("child created during its parent's revocation is still live")
	}
	if alive(s, oldTok) || alive(s, parentTok) {
		t.Error("parent or its earlier child still live")
	}
	if _, err := s.LookupAccessor(ctx, parent.Accessor); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupAccessor(parent) = %v", err)
	}
	assertNoKeys(t, s, revokingPrefix, childPrefix)
}

// TestNoChildSurvivesConcurrentCreates: a holder creating children in a
// loop while an admin revokes the token (with slow lease revocation) is
// left with no live child once Revoke returns.
func TestNoChildSurvivesConcurrentCreates(t *testing.T) {
	s, _ := newLoaded(t)
	ctx := context.Background()
	_, parent := mustCreate(t, s, CreateInput{DisplayName: "p"})
	s.OnRevoke(func(ctx context.Context, acc string) error {
		if acc == parent.Accessor {
			time.Sleep(20 * time.Millisecond) // slow lease revocation
		}
		return nil
	})
	var (
		mu   sync.Mutex
		toks []string
	)
	done := make(chan struct{})
	started := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			tok, _, err := s.Create(ctx, CreateInput{DisplayName: "c", Parent: parent})
			if err != nil {
				if !errors.Is(err, auth.ErrUnauthenticated) {
					t.Errorf("Create: %v", err)
				}
				return
			}
			mu.Lock()
			toks = append(toks, tok)
			mu.Unlock()
			if i == 10 {
				close(started)
			}
		}
	}()
	<-started
	if err := s.Revoke(ctx, parent); err != nil {
		t.Fatal(err)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, tok := range toks {
		if alive(s, tok) {
			t.Fatalf("a child created during the revocation survived (%d created)", len(toks))
		}
	}
	assertNoKeys(t, s, revokingPrefix, childPrefix)
}

// TestRevokeRechecksChildren: a child whose index entry appears after the
// children were listed (whatever wrote it) is revoked before the parent is
// deleted, so it cannot outlive the parent unreachable.
func TestRevokeRechecksChildren(t *testing.T) {
	s, _ := newLoaded(t)
	ctx := context.Background()
	_, parent := mustCreate(t, s, CreateInput{DisplayName: "p"})
	lateTok, late := mustCreate(t, s, CreateInput{DisplayName: "late", Orphan: true})
	var seenLate bool
	s.OnRevoke(func(ctx context.Context, acc string) error {
		switch acc {
		case parent.Accessor:
			if !seenLate { // graft late under parent, once, behind Create's back
				err := s.store.Update(ctx, func(tx storage.Tx) error {
					late.Parent = parent.Accessor
					if err := tx.Put(childPrefix+parent.Accessor+"/"+late.Accessor, nil); err != nil {
						return err
					}
					return putEntry(tx, late)
				})
				if err != nil {
					t.Error(err)
				}
			}
		case late.Accessor:
			seenLate = true
		}
		return nil
	})
	if err := s.Revoke(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if alive(s, lateTok) || !seenLate {
		t.Errorf("child that appeared after the listing survived (alive=%v, hook told=%v)", alive(s, lateTok), seenLate)
	}
	assertNoKeys(t, s, revokingPrefix, childPrefix)
}

// TestInterruptedRevocation: a revocation that stops half way (the process
// dies, or here the hook fails) leaves the tokens it reached unusable, with
// no new children, not renewable; TidyExpired finishes it.
func TestInterruptedRevocation(t *testing.T) {
	s, _ := newLoaded(t)
	ctx := context.Background()
	parentTok, parent := mustCreate(t, s, CreateInput{DisplayName: "p", NoExpiry: true, Renewable: true})
	childTok, child := mustCreate(t, s, CreateInput{DisplayName: "c", Parent: parent, Renewable: true})
	fail := true
	var told []string
	s.OnRevoke(func(ctx context.Context, acc string) error {
		if fail && acc == parent.Accessor {
			return errors.New("lease backend down") // stands for a crash after the children
		}
		told = append(told, acc)
		return nil
	})
	if err := s.Revoke(ctx, parent); err == nil {
		t.Fatal("Revoke with a failing hook = nil")
	}
	if alive(s, parentTok) || alive(s, childTok) {
		t.Fatal("a token whose revocation began is still usable")
	}
	if _, err := s.LookupAccessor(ctx, parent.Accessor); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupAccessor(half-revoked) = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Create(ctx, CreateInput{Parent: parent}); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("Create under a half-revoked parent = %v, want ErrUnauthenticated", err)
	}
	if _, err := s.Renew(ctx, parent, time.Hour); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("Renew of a half-revoked token = %v, want ErrUnauthenticated", err)
	}
	if all, _, _ := s.List(ctx, "", 100); len(all) != 0 {
		t.Errorf("List shows %d tokens, want none", len(all))
	}
	// A fresh service on the same storage (a restart) must not revive it.
	s2 := New(s.store, s.now)
	if err := s2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(s2, parentTok) {
		t.Fatal("half-revoked token usable after a restart")
	}
	fail = false
	s.OnRevoke(func(ctx context.Context, acc string) error { told = append(told, acc); return nil })
	n, err := s.TidyExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("TidyExpired = %d, %v, want 1", n, err)
	}
	if len(told) != 2 || told[0] != child.Accessor || told[1] != parent.Accessor {
		t.Errorf("hook told %v, want child then parent", told)
	}
	if _, err := s.store.Get(ctx, byAccessPrefix+parent.Accessor); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("parent still stored after tidy: %v", err)
	}
	assertNoKeys(t, s, revokingPrefix, childPrefix)
}

// TestChildRenewalBoundByParent: renewing a child never takes it past its
// parent's expiry, and a child of an expired (not yet tidied) parent is not
// renewed at all.
func TestChildRenewalBoundByParent(t *testing.T) {
	s, c := newLoaded(t)
	ctx := context.Background()
	_, parent := mustCreate(t, s, CreateInput{TTL: time.Hour, MaxTTL: 24 * time.Hour, Renewable: true})
	_, child := mustCreate(t, s, CreateInput{TTL: time.Hour, MaxTTL: 24 * time.Hour, Parent: parent, Renewable: true})
	c.t = c.t.Add(50 * time.Minute)
	child, err := s.Renew(ctx, child, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if child.ExpiresAt.After(*parent.ExpiresAt) {
		t.Fatalf("child renewed to %v, past its parent's expiry %v", child.ExpiresAt, parent.ExpiresAt)
	}
	// The parent renews; the child may then follow it, no further.
	if parent, err = s.Renew(ctx, parent, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if child, err = s.Renew(ctx, child, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if !child.ExpiresAt.Equal(*parent.ExpiresAt) {
		t.Fatalf("child renewed to %v, want its parent's expiry %v", child.ExpiresAt, parent.ExpiresAt)
	}
	// The parent shortens its own life below the child's: the child may
	// no longer renew once the parent has expired.
	if parent, err = s.Renew(ctx, parent, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(2 * time.Minute)
	if _, err := s.Renew(ctx, child, time.Hour); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Renew of a child of an expired parent = %v, want ErrUnauthenticated", err)
	}
}

func assertNoKeys(t *testing.T, s *Service, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		keys, err := s.store.List(context.Background(), p, "", 0)
		if err != nil || len(keys) != 0 {
			t.Errorf("left under %s: %v, %v", p, keys, err)
		}
	}
}

// TestChildDepthBounded: a chain of child tokens stops at MaxDepth, so a
// revocation (which follows the tree to maxTreeDepth) reaches every
// descendant; orphans start a new chain and a new family.
func TestChildDepthBounded(t *testing.T) {
	s, _ := newLoaded(t)
	ctx := context.Background()
	_, top := mustCreate(t, s, CreateInput{DisplayName: "top"})
	e := top
	for i := 1; i <= MaxDepth; i++ {
		_, e = mustCreate(t, s, CreateInput{DisplayName: "c", Method: "token", Parent: e})
		if e.Depth != i || e.Family != top.Accessor {
			t.Fatalf("child %d: depth %d family %q", i, e.Depth, e.Family)
		}
	}
	if _, _, err := s.Create(ctx, CreateInput{DisplayName: "c", Method: "token", Parent: e}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("child past MaxDepth = %v, want refused", err)
	}
	_, orphan := mustCreate(t, s, CreateInput{DisplayName: "o", Method: "token", Parent: e, Orphan: true})
	if orphan.Depth != 0 || orphan.family() != orphan.Accessor || orphan.Parent != "" {
		t.Fatalf("orphan: depth %d family %q parent %q", orphan.Depth, orphan.Family, orphan.Parent)
	}
	if err := s.Revoke(ctx, top); err != nil {
		t.Fatalf("revoking a %d-deep chain = %v", MaxDepth, err)
	}
	if _, err := s.LookupAccessor(ctx, e.Accessor); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deepest child outlived the revocation: %v", err)
	}
}
