package secret

import (
	"context"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// TestMetadataMaxAge: node A has b's metadata cached when node B writes a
// new version without A being told; A serves the cached metadata (and so
// the old current version) until the cache is maxAge old, then reads
// storage again. Without SetMaxAge (a single server) it would keep it.
func TestMetadataMaxAge(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store := mem.New()
	a, b := New(store, clock), New(store, clock)
	a.SetMaxAge(30 * time.Second)
	if _, err := a.Put(ctx, PutInput{Name: "app/key", Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		v, err := a.Get(ctx, "app/key", Selector{})
		if err != nil {
			t.Fatal(err)
		}
		return string(v.Data)
	}
	if got := read(); got != "v1" {
		t.Fatalf("first read = %q", got)
	}
	if _, err := b.Put(ctx, PutInput{Name: "app/key", Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(29 * time.Second)
	if got := read(); got != "v1" {
		t.Fatalf("within maxAge = %q, want the cached v1", got)
	}
	now = now.Add(time.Second)
	if got := read(); got != "v2" {
		t.Fatalf("after maxAge = %q, want v2", got)
	}
}
