package authz

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// slowStore holds a stale reload right after it read a policy, until released.
type slowStore struct {
	*mem.Backend
	hold    chan struct{} // closed to let a held Get go on
	entered chan struct{} // receives when a Get is held
}

func (s *slowStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.Backend.Get(ctx, key)
	if s.hold != nil && strings.HasPrefix(key, currentPrefix) {
		h := s.hold
		s.hold = nil
		s.entered <- struct{}{}
		<-h
	}
	return v, err
}

// TestStaleLoadDoesNotWin: a reload that read the policies before a change
// and finishes after the change's own reload must not bring back the old
// policies.
func TestStaleLoadDoesNotWin(t *testing.T) {
	ctx := context.Background()
	store := &slowStore{Backend: mem.New(), entered: make(chan struct{}, 1)}
	s := New(store, nil)
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "reader", `path "x/*" { capabilities = ["read"] }`, "test"); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	store.hold = hold
	stale := make(chan error, 1)
	go func() { stale <- s.Load(ctx) }() // reads "reader" as it is now, then waits
	<-store.entered
	if err := s.Delete(ctx, "reader", "test"); err != nil { // reloads: reader is gone
		t.Fatal(err)
	}
	close(hold)
	if err := <-stale; err != nil {
		t.Fatal(err)
	}
	p := &auth.Principal{Name: "t", Policies: []string{"reader"}}
	if err := s.Authorize(ctx, p, auth.Check{Path: "x/y", Capability: "read"}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("after the delete and a stale reload: %v, want forbidden", err)
	}
}
