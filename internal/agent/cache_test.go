package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers the cache's fetches; tests change its answers.
// (The agent's integration tests use a real server; these pin down the
// cache's own rules with a clock the test controls.)
type fakeServer struct {
	mu      sync.Mutex
	answers map[string]answer // by name
	down    bool
	fetches atomic.Int64
}

func (f *fakeServer) set(name string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[name] = answer{status: status, ctype: "application/json", body: []byte(body)}
}

func (f *fakeServer) fetch(_ context.Context, s selector) (answer, error) {
	f.fetches.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return answer{}, errors.New("connection refused")
	}
	a, ok := f.answers[s.name]
	if !ok {
		return answer{status: 404, body: []byte(`{"error":{"code":"not_found"}}`)}, nil
	}
	return a, nil
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(t *testing.T, maxEntries int) (*cache, *fakeServer, *testClock) {
	t.Helper()
	srv := &fakeServer{answers: map[string]answer{}}
	clk := &testClock{t: time.Unix(1_700_000_000, 0)}
	c := newCache(cacheConfig{ttl: time.Minute, maxStale: time.Hour, maxEntries: maxEntries, now: clk.now,
		fetch: srv.fetch, fetchTimeout: time.Second})
	t.Cleanup(c.close)
	return c, srv, clk
}

func mustGet(t *testing.T, c *cache, name, wantResult string) reply {
	t.Helper()
	rep, err := c.get(context.Background(), selector{name: name})
	if err != nil || rep.result != wantResult {
		t.Fatalf("get(%q) = %+v, %v; want result %q", name, rep.result, err, wantResult)
	}
	return rep
}

func TestCacheFreshnessAndStaleness(t *testing.T) {
	c, srv, clk := newTestCache(t, 100)
	srv.set("a", 200, `"v1"`)
	mustGet(t, c, "a", resultMiss)
	mustGet(t, c, "a", resultHit)
	clk.advance(2 * time.Minute) // past ttl: ask the server again
	srv.set("a", 200, `"v2"`)
	if rep := mustGet(t, c, "a", resultMiss); string(rep.e.body) != `"v2"` {
		t.Fatalf("refetched body = %s", rep.e.body)
	}

	srv.down = true
	clk.advance(2 * time.Minute)
	rep := mustGet(t, c, "a", resultStale)
	if string(rep.e.body) != `"v2"` || rep.age != 2*time.Minute {
		t.Fatalf("stale answer = %s, age %s", rep.e.body, rep.age)
	}
	if got := c.staleSeconds(); got != 120 {
		t.Fatalf("staleSeconds = %v, want 120", got)
	}
	// Within the down window the server is not asked again.
	n := srv.fetches.Load()
	mustGet(t, c, "a", resultStale)
	if srv.fetches.Load() != n {
		t.Fatal("the cache asked an unreachable server again within the down window")
	}
	// Past max_stale nothing answers.
	clk.advance(time.Hour)
	if _, err := c.get(context.Background(), selector{name: "a"}); err == nil {
		t.Fatal("a value older than max_stale answered")
	}
	// A 5xx also falls back to a stale value; a 4xx does not, and evicts.
	srv.down = false
	srv.set("b", 200, `"b"`)
	mustGet(t, c, "b", resultMiss)
	clk.advance(2 * time.Minute)
	srv.set("b", 503, `{"error":{"code":"sealed"}}`)
	mustGet(t, c, "b", resultStale)
	srv.set("b", 403, `{"error":{"code":"forbidden"}}`)
	if rep := mustGet(t, c, "b", resultError); rep.ans.status != 403 {
		t.Fatalf("403 = %+v", rep.ans)
	}
	if c.staleSeconds() != 0 {
		t.Fatalf("staleSeconds after the server answered = %v", c.staleSeconds())
	}
	srv.set("b", 503, `{"error":{"code":"sealed"}}`)
	if rep := mustGet(t, c, "b", resultError); rep.ans.status != 503 {
		t.Fatalf("after a 403 evicted b, a 503 = %+v, want the server's 503", rep.ans)
	}
}

func TestCacheInvalidation(t *testing.T) {
	c, srv, _ := newTestCache(t, 100)
	srv.set("a", 200, `"v1"`)
	mustGet(t, c, "a", resultMiss)
	c.get(context.Background(), selector{name: "a", version: "1"})
	if sels := c.invalidate("a", false); len(sels) != 2 {
		t.Fatalf("invalidate returned %v, want both reads of a", sels)
	}
	srv.set("a", 200, `"v2"`)
	if rep := mustGet(t, c, "a", resultMiss); string(rep.e.body) != `"v2"` {
		t.Fatalf("after invalidation = %s", rep.e.body)
	}
	// An invalidated value still answers stale when the server is down.
	c.invalidate("a", false)
	srv.down = true
	mustGet(t, c, "a", resultStale)
	// A dropped one does not.
	c.invalidate("a", true)
	if _, err := c.get(context.Background(), selector{name: "a"}); err == nil {
		t.Fatal("a dropped value answered")
	}
	if n := c.size.Load(); n != 0 {
		t.Fatalf("size after dropping a = %d, want 0 (both reads of a are gone)", n)
	}
	srv.down = false
	mustGet(t, c, "a", resultMiss)
	c.expireAll()
	mustGet(t, c, "a", resultMiss)
	c.clear()
	if c.size.Load() != 0 {
		t.Fatalf("size after clear = %d", c.size.Load())
	}
}

// TestCacheIgnoresFetchesOlderThanAnInvalidation: a read that started
// before an event must not leave its older value fresh in the cache.
func TestCacheIgnoresFetchesOlderThanAnInvalidation(t *testing.T) {
	c, srv, _ := newTestCache(t, 100)
	release := make(chan struct{})
	started := make(chan struct{})
	slow := c.fetch
	c.fetch = func(ctx context.Context, s selector) (answer, error) {
		close(started)
		<-release
		return slow(ctx, s)
	}
	srv.set("a", 200, `"old"`)
	done := make(chan reply)
	go func() {
		rep, _ := c.get(context.Background(), selector{name: "a"})
		done <- rep
	}()
	<-started
	c.invalidate("a", false) // the event arrives while the fetch is in flight
	close(release)
	<-done
	c.fetch = slow
	srv.set("a", 200, `"new"`)
	if rep := mustGet(t, c, "a", resultMiss); string(rep.e.body) != `"new"` {
		t.Fatalf("after the race = %s", rep.e.body)
	}
}

func TestCacheIsBounded(t *testing.T) {
	c, srv, clk := newTestCache(t, 64)
	for i := range 1000 {
		name := fmt.Sprintf("s/%d", i)
		srv.set(name, 200, `"x"`)
		clk.advance(time.Millisecond)
		mustGet(t, c, name, resultMiss)
		if i < 10 {
			continue
		}
		// Keep reading s/0: it stays, as the most recently used.
		clk.advance(2 * time.Millisecond)
		if i%8 == 0 {
			mustGet(t, c, "s/0", resultHit)
		}
	}
	if n := c.size.Load(); n > 64 || n < 32 {
		t.Fatalf("size = %d, want at most 64", n)
	}
	mustGet(t, c, "s/0", resultHit)
}

func TestCacheSharesConcurrentFetches(t *testing.T) {
	c, srv, _ := newTestCache(t, 100)
	release := make(chan struct{})
	slow := c.fetch
	c.fetch = func(ctx context.Context, s selector) (answer, error) {
		<-release
		return slow(ctx, s)
	}
	srv.set("a", 200, `"v"`)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.get(context.Background(), selector{name: "a"}); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("20 concurrent misses made %d fetches, want 1", n)
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"app/db", true},
		{"a", true},
		{"prod/db/password+old=1@x.y-z_", true},
		{"", false},
		{"/app", false},   // empty first segment
		{"app/", false},   // empty last segment
		{"a//b", false},   // empty middle segment
		{"a/../b", false}, // would climb out of /v1/secrets
		{"..", false},
		{"a/.", false},
		{"a\nb", false}, // control character
		{"a?b", false},  // would start a query
		{"a#b", false},  // would start a fragment
	} {
		if got := validName(tc.name); got != tc.ok {
			t.Errorf("validName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
