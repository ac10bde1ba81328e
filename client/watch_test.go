package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
)

func TestWatch(t *testing.T) {
	f := newFakeServer(t)
	f.set("a", "one")
	c := f.client(t, client.Config{CacheTTL: time.Hour})
	mustGet(t, c, "a", client.Current()) // cache v1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan *client.Secret, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, "a", client.Current(), 5*time.Millisecond, func(s *client.Secret) { seen <- s })
	}()
	next := func() *client.Secret {
		t.Helper()
		select {
		case s := <-seen:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("Watch reported nothing in 10s")
			return nil
		}
	}
	if s := next(); s.Version != 1 || s.Text() != "one" {
		t.Fatalf("first call = v%d %q, want v1 %q", s.Version, s.Text(), "one")
	}
	f.failNext(2) // transient errors are not fatal
	f.set("a", "two")
	if s := next(); s.Version != 2 || s.Text() != "two" {
		t.Fatalf("after a change = v%d %q, want v2 %q", s.Version, s.Text(), "two")
	}
	if s := mustGet(t, c, "a", client.Current()); s.Version != 2 {
		t.Fatalf("Get after Watch saw v2 = v%d from the cache, want v2", s.Version)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch after cancel = %v, want context.Canceled", err)
	}
	select {
	case s := <-seen:
		t.Fatalf("fn called again with v%d though the version did not change", s.Version)
	default:
	}
}

func TestWatchPermanentError(t *testing.T) {
	f := newFakeServer(t)
	c := f.client(t, client.Config{})
	err := c.Watch(context.Background(), "missing", client.Current(), time.Millisecond, func(*client.Secret) {
		t.Error("fn called for a missing secret")
	})
	if !client.IsNotFound(err) {
		t.Fatalf("Watch(missing) = %v, want not found", err)
	}
}
