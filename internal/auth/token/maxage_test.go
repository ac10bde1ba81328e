package token

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// TestMaxAge: a token deleted from storage behind the service's back (by
// another node, whose notification was lost) is served from memory until
// its cache entry is maxAge old, then refused; without SetMaxAge (a single
// server) the entry stays until the service itself drops it.
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
			store := mem.New()
			s := New(store, func() time.Time { return now })
			s.SetMaxAge(tc.maxAge)
			if err := s.Load(ctx); err != nil {
				t.Fatal(err)
			}
			tok, e, err := s.Create(ctx, CreateInput{DisplayName: "t", Policies: []string{"p"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Lookup(ctx, tok); err != nil { // cached now
				t.Fatal(err)
			}
			if err := store.Update(ctx, func(tx storage.Tx) error { return tx.Delete(byHashPrefix + e.hash) }); err != nil {
				t.Fatal(err)
			}
			now = now.Add(29 * time.Second)
			if _, err := s.Lookup(ctx, tok); err != nil {
				t.Fatalf("Lookup within maxAge = %v, want the cached entry", err)
			}
			now = now.Add(time.Second)
			_, err = s.Lookup(ctx, tok)
			if refused := errors.Is(err, auth.ErrUnauthenticated); refused != tc.refused {
				t.Fatalf("Lookup 30s after caching = %v, want refused %v", err, tc.refused)
			}
		})
	}
}
