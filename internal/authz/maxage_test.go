package authz

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// TestMaxAge: node B's policies, loaded before node A deleted one (B was
// not told), keep allowing until they are maxAge old, then B reloads and
// refuses; without SetMaxAge (a single server) they stay as loaded.
func TestMaxAge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxAge  time.Duration
		refused bool // after maxAge has passed
	}{
		{name: "shared storage", maxAge: 30 * time.Second, refused: true},
		{name: "single server", maxAge: 0, refused: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			store := mem.New()
			a, b := New(store, clock), New(store, clock)
			if err := a.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if err := a.Put(ctx, "reader", `path "x/*" { capabilities = ["read"] }`, "test"); err != nil {
				t.Fatal(err)
			}
			b.SetMaxAge(tc.maxAge)
			if err := b.Load(ctx); err != nil {
				t.Fatal(err)
			}
			p := &auth.Principal{Name: "t", Policies: []string{"reader"}}
			check := auth.Check{Path: "x/a", Capability: "read"}
			if err := b.Authorize(ctx, p, check); err != nil {
				t.Fatalf("Authorize before the delete = %v", err)
			}
			if err := a.Delete(ctx, "reader", "test"); err != nil {
				t.Fatal(err)
			}
			now = now.Add(29 * time.Second)
			if err := b.Authorize(ctx, p, check); err != nil {
				t.Fatalf("Authorize within maxAge = %v, want the loaded policy", err)
			}
			now = now.Add(time.Second)
			err := b.Authorize(ctx, p, check)
			if refused := errors.Is(err, auth.ErrForbidden); refused != tc.refused {
				t.Fatalf("Authorize 30s after loading = %v, want refused %v", err, tc.refused)
			}
		})
	}
}

// BenchmarkDecide is the request path's authorization check (no maxAge, as
// on a single server).
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	s := New(mem.New(), nil)
	if err := s.Put(ctx, "reader", `path "x/*" { capabilities = ["read"] }`, "test"); err != nil {
		b.Fatal(err)
	}
	p := &auth.Principal{Name: "t", Policies: []string{"reader"}}
	check := auth.Check{Path: "x/a", Capability: "read"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Decide(ctx, p, check); err != nil {
			b.Fatal(err)
		}
	}
}
