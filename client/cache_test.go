package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func mustGet(t testing.TB, c *client.Client, name string, sel client.Selector) *client.Secret {
	t.Helper()
	s, err := c.Get(context.Background(), name, sel)
	if err != nil {
		t.Fatalf("Get(%q) = %v", name, err)
	}
	return s
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t)
	f.set("a", "one")
	c := f.client(t, client.Config{CacheTTL: time.Minute})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	client.SetCacheClock(c, clk.now)

	s := mustGet(t, c, "a", client.Current())
	s.Data[0] = 'X' // the caller owns its copy
	if got := mustGet(t, c, "a", client.Current()); got.Text() != "one" {
		t.Fatalf("cached Get = %q, want %q", got.Text(), "one")
	}
	if n := f.getCount("a"); n != 1 {
		t.Fatalf("two Gets within the TTL reached the server %d times, want 1", n)
	}

	mustGet(t, c, "a", client.Version(1)) // another selector is another entry
	if n := f.getCount("a"); n != 2 {
		t.Fatalf("Get of another selector reached the server %d times in all, want 2", n)
	}

	f.set("a", "two") // a change made elsewhere shows after the TTL
	if got := mustGet(t, c, "a", client.Current()); got.Text() != "one" {
		t.Fatalf("Get within the TTL = %q, want the cached %q", got.Text(), "one")
	}
	clk.advance(time.Minute)
	if got := mustGet(t, c, "a", client.Current()); got.Text() != "two" || got.Version != 2 {
		t.Fatalf("Get after the TTL = v%d %q, want v2 %q", got.Version, got.Text(), "two")
	}

	// This client's own write invalidates at once.
	if _, err := c.PutText(ctx, "a", "three"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "a", client.Current()); got.Text() != "three" {
		t.Fatalf("Get after Put = %q, want %q", got.Text(), "three")
	}
	if got := mustGet(t, c, "a", client.Version(1)); got.Text() != "one" {
		t.Fatalf("Get(Version(1)) after Put = %q, want %q", got.Text(), "one")
	}

	// So does InvalidateCache, for changes an event stream reports.
	f.set("a", "four")
	before := f.getCount("a")
	c.InvalidateCache("a")
	if got := mustGet(t, c, "a", client.Current()); got.Text() != "four" || f.getCount("a") != before+1 {
		t.Fatalf("Get after InvalidateCache = %q, want %q from the server", got.Text(), "four")
	}

	// A copy with another token has its own cache.
	before = f.getCount("a")
	mustGet(t, c.WithToken("other"), "a", client.Current())
	if f.getCount("a") != before+1 {
		t.Fatal("WithToken's copy answered from the original's cache")
	}
}

func TestCacheMissesAreNotCached(t *testing.T) {
	f := newFakeServer(t)
	c := f.client(t, client.Config{CacheTTL: time.Minute})
	if _, err := c.Get(context.Background(), "nope", client.Current()); !client.IsNotFound(err) {
		t.Fatalf("Get(nope) = %v, want not found", err)
	}
	f.set("nope", "now it exists")
	if got := mustGet(t, c, "nope", client.Current()); got.Text() != "now it exists" {
		t.Fatalf("Get after creation = %q", got.Text())
	}
}

func TestCacheEvictsOldest(t *testing.T) {
	f := newFakeServer(t)
	for _, n := range []string{"a", "b", "c"} {
		f.set(n, n)
	}
	c := f.client(t, client.Config{CacheTTL: time.Minute})
	client.SetCacheMax(c, 2)
	for _, n := range []string{"a", "b", "c"} {
		mustGet(t, c, n, client.Current())
	}
	if n := client.CacheLen(c); n != 2 {
		t.Fatalf("cache holds %d entries, want its bound 2", n)
	}
	mustGet(t, c, "c", client.Current())
	mustGet(t, c, "a", client.Current())
	if got := []int{f.getCount("a"), f.getCount("c")}; got[0] != 2 || got[1] != 1 {
		t.Fatalf("server GETs of a, c = %v, want [2 1]: a evicted as the oldest, c still cached", got)
	}
}

// TestCacheConcurrent is meant for -race: readers, writers and
// invalidations at once, and no reader sees a value older than a write it
// waited for.
func TestCacheConcurrent(t *testing.T) {
	f := newFakeServer(t)
	f.set("a", "0")
	c := f.client(t, client.Config{CacheTTL: time.Hour})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := c.Get(context.Background(), "a", client.Current()); err != nil {
					t.Error(err)
					return
				}
				if g == 0 && i%5 == 0 {
					c.InvalidateCache("a")
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 10 {
			res, err := c.PutText(context.Background(), "a", fmt.Sprint(i+1))
			if err != nil {
				t.Error(err)
				return
			}
			if s, err := c.Get(context.Background(), "a", client.Current()); err != nil || s.Version < res.Version {
				t.Errorf("Get after writing v%d = %v, %v", res.Version, s, err)
			}
		}
	})
	wg.Wait()
}
