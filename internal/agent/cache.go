package agent

import (
	"context"
	"hash/maphash"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// selector names one cached read: a secret and the version or stage asked
// for, as the application wrote them ("" for the current version).
type selector struct {
	name, version, stage string
}

// appendKey appends the cache key of a read to b. Names never hold a NUL.
func appendKey(b []byte, name, version, stage string) []byte {
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, version...)
	b = append(b, 0)
	return append(b, stage...)
}

func (s selector) key() string { return string(appendKey(nil, s.name, s.version, s.stage)) }

// answer is a response of the server: its status, content type and body,
// kept byte for byte.
type answer struct {
	status int
	ctype  string
	body   []byte
}

// entry is one cached value: the server's 200 answer with its headers
// prebuilt, so a hit only copies bytes. Everything but invalid and used is
// immutable; a refreshed value replaces the entry.
type entry struct {
	sel     selector
	key     string
	body    []byte
	ctype   []string // Content-Type header value
	clen    []string // Content-Length header value
	fetched time.Time
	gen     uint64 // the cache generation when its fetch started

	invalid atomic.Bool  // an event said the secret changed
	used    atomic.Int64 // unix nanoseconds of the last read, for LRU eviction
}

// shard is one part of the cache; all the entries of a name share a shard,
// so invalidating a name touches one shard. Readers load the map without a
// lock: it is never modified once published. Writers, serialised by mu,
// publish a modified copy; writes are misses, which wait on the server
// anyway, while hits must not contend.
type shard struct {
	m  atomic.Pointer[map[string]*entry] // by key; immutable once stored
	mu sync.Mutex                        // serialises writers of m
	// epoch counts invalidations in the shard: a fetch that started in an
	// older epoch may hold a value an event has since replaced. Written
	// under mu.
	epoch atomic.Uint64
	_     [64]byte // keep shards on separate cache lines
}

func (sh *shard) load(key string) *entry { return (*sh.m.Load())[key] }

// updateLocked publishes a copy of the map changed by fn; sh.mu is held.
func (sh *shard) updateLocked(fn func(m map[string]*entry)) {
	m := maps.Clone(*sh.m.Load())
	fn(m)
	sh.m.Store(&m)
}

// call is a fetch in flight; concurrent reads of a key share it.
type call struct {
	done  chan struct{}
	epoch uint64 // of the shard when the fetch started
	gen   uint64
	// Set before done is closed.
	e   *entry // the value stored, on a 200
	ans answer
	err error // the server could not be reached
}

// cache holds the server's answers to reads. Hits take no lock and
// allocate nothing. It is safe for concurrent use.
type cache struct {
	ttl, maxStale time.Duration
	now           func() time.Time
	fetch         func(ctx context.Context, s selector) (answer, error)
	fetchTimeout  time.Duration
	// refresh schedules a background fetch of a key; it must not block.
	refresh func(s selector)

	seed     maphash.Seed
	shards   []shard
	mask     uint64
	perShard int

	gen  atomic.Uint64 // bumped to make every entry not fresh at once
	size atomic.Int64  // entries in all shards

	downUntil   atomic.Int64 // unix ns: until then, answer stale at once without asking the server
	staleOldest atomic.Int64 // unix ns fetch time of the oldest value answered stale since the server last answered; 0 if none

	callMu sync.Mutex       // guards calls
	calls  map[string]*call // by key

	stop     chan struct{}  // closed by close: fetches in flight are cancelled
	fetching sync.WaitGroup // fetches in flight
}

// cacheConfig configures newCache.
type cacheConfig struct {
	ttl, maxStale time.Duration
	maxEntries    int
	now           func() time.Time
	fetch         func(ctx context.Context, s selector) (answer, error)
	fetchTimeout  time.Duration
	refresh       func(s selector)
}

// downWindow is how long after an unreachable server reads with a stale
// value answer at once (refreshing in the background) instead of waiting
// on the server again.
const downWindow = time.Second

func newCache(cfg cacheConfig) *cache {
	n := 1
	for n < 64 && n*32 < cfg.maxEntries {
		n *= 2
	}
	c := &cache{
		ttl: cfg.ttl, maxStale: cfg.maxStale, now: cfg.now, fetch: cfg.fetch, fetchTimeout: cfg.fetchTimeout, refresh: cfg.refresh,
		seed: maphash.MakeSeed(), shards: make([]shard, n), mask: uint64(n - 1),
		perShard: (cfg.maxEntries + n - 1) / n, calls: map[string]*call{}, stop: make(chan struct{}),
	}
	if c.refresh == nil {
		c.refresh = func(selector) {}
	}
	for i := range c.shards {
		m := map[string]*entry{}
		c.shards[i].m.Store(&m)
	}
	return c
}

func (c *cache) shardFor(name string) *shard {
	return &c.shards[maphash.String(c.seed, name)&c.mask]
}

// lookup returns the entry for key (built by appendKey from name), or nil.
// It allocates nothing.
func (c *cache) lookup(name string, key []byte) *entry {
	return (*c.shardFor(name).m.Load())[string(key)]
}

// fresh reports whether e may answer without asking the server, and marks
// it used.
func (c *cache) fresh(e *entry, now time.Time) bool {
	if e.invalid.Load() || e.gen != c.gen.Load() || now.Sub(e.fetched) >= c.ttl {
		return false
	}
	if ns := now.UnixNano(); ns-e.used.Load() > int64(time.Millisecond) {
		e.used.Store(ns)
	}
	return true
}

// staleOK reports whether e may answer while the server cannot.
func (c *cache) staleOK(e *entry, now time.Time) bool {
	return e != nil && c.maxStale > 0 && now.Sub(e.fetched) < c.maxStale
}

// reply is the outcome of a read: a value (e), or the server's answer
// (ans), and the result for the metrics and the X-Coffer-Cache header.
type reply struct {
	e      *entry
	ans    answer
	result string
	age    time.Duration // of a stale value
}

// get answers a read from the cache or the server. The error means the
// server could not be reached and nothing may answer in its place.
func (c *cache) get(ctx context.Context, s selector) (reply, error) {
	key := appendKey(make([]byte, 0, 64), s.name, s.version, s.stage)
	if e := c.lookup(s.name, key); e != nil && c.fresh(e, c.now()) {
		return reply{e: e, result: resultHit}, nil
	}
	return c.fill(ctx, s, string(key))
}

// fill answers a read that the cache cannot answer fresh: from the server,
// or from a stale entry when the server cannot answer.
func (c *cache) fill(ctx context.Context, s selector, key string) (reply, error) {
	sh := c.shardFor(s.name)
	now := c.now()
	if now.UnixNano() < c.downUntil.Load() {
		if old := c.load(sh, key); c.staleOK(old, now) {
			c.refresh(s)
			return c.stale(old, now), nil
		}
	}
	cl := c.do(ctx, sh, s, key)
	select {
	case <-cl.done:
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
	switch {
	case cl.e != nil:
		return reply{e: cl.e, result: resultMiss}, nil
	case cl.err != nil || unavailable(cl.ans.status):
		now := c.now()
		if old := c.load(sh, key); c.staleOK(old, now) {
			return c.stale(old, now), nil
		}
		if cl.err != nil {
			return reply{}, cl.err
		}
	}
	return reply{ans: cl.ans, result: resultError}, nil
}

// unavailable reports whether a server status means "try again later"
// rather than an answer about the secret: 5xx (sealed, failing storage,
// overloaded) and 429 (rate limited).
func unavailable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests
}

func (c *cache) stale(e *entry, now time.Time) reply {
	ns := e.fetched.UnixNano()
	for {
		cur := c.staleOldest.Load()
		if (cur != 0 && cur <= ns) || c.staleOldest.CompareAndSwap(cur, ns) {
			break
		}
	}
	return reply{e: e, result: resultStale, age: now.Sub(e.fetched)}
}

// staleSeconds is the age of the oldest value answered stale since the
// server last answered, or 0.
func (c *cache) staleSeconds() float64 {
	ns := c.staleOldest.Load()
	if ns == 0 {
		return 0
	}
	return c.now().Sub(time.Unix(0, ns)).Seconds()
}

func (c *cache) load(sh *shard, key string) *entry { return sh.load(key) }

// do joins the fetch in flight for key, or starts one. A fetch that started
// before the latest invalidation of the shard is not joined: its value may
// be the one the invalidation replaced.
func (c *cache) do(ctx context.Context, sh *shard, s selector, key string) *call {
	epoch := sh.epoch.Load()
	gen := c.gen.Load()
	c.callMu.Lock()
	if cl := c.calls[key]; cl != nil && cl.epoch == epoch && cl.gen == gen {
		c.callMu.Unlock()
		return cl
	}
	cl := &call{done: make(chan struct{}), epoch: epoch, gen: gen}
	c.calls[key] = cl
	c.callMu.Unlock()
	c.fetching.Add(1)
	go func() {
		defer c.fetching.Done()
		// The fetch outlives the reader that started it: others may be
		// waiting on it, and its answer is worth keeping. close ends it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fetchTimeout)
		defer cancel()
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-fctx.Done():
			}
		}()
		cl.ans, cl.err = c.fetch(fctx, s)
		c.settle(sh, s, key, cl)
		c.callMu.Lock()
		if c.calls[key] == cl {
			delete(c.calls, key)
		}
		c.callMu.Unlock()
		close(cl.done)
	}()
	return cl
}

// settle applies a fetch's outcome to the cache: a 200 is stored, a 4xx
// other than 429 evicts (a 403 or 404 is never kept as a value), and an
// unreachable server opens the down window.
func (c *cache) settle(sh *shard, s selector, key string, cl *call) {
	now := c.now()
	switch {
	case cl.err != nil:
		c.downUntil.Store(now.Add(downWindow).UnixNano())
		return
	case unavailable(cl.ans.status):
		return
	}
	c.downUntil.Store(0)
	c.staleOldest.Store(0)
	if cl.ans.status != http.StatusOK {
		c.remove(sh, key)
		return
	}
	ctype := cl.ans.ctype
	if ctype == "" {
		ctype = "application/json"
	}
	e := &entry{sel: s, key: key, body: cl.ans.body, ctype: []string{ctype},
		clen: []string{strconv.Itoa(len(cl.ans.body))}, fetched: now, gen: cl.gen}
	e.used.Store(now.UnixNano())
	sh.mu.Lock()
	if sh.epoch.Load() != cl.epoch {
		e.invalid.Store(true)
	}
	sh.updateLocked(func(m map[string]*entry) {
		if _, had := m[key]; !had {
			if len(m) >= c.perShard {
				c.evict(m)
			}
			c.size.Add(1)
		}
		m[key] = e
	})
	sh.mu.Unlock()
	cl.e = e
}

// evict removes the least recently used entry of a shard's map copy.
func (c *cache) evict(m map[string]*entry) {
	var victim *entry
	for _, e := range m {
		if victim == nil || e.used.Load() < victim.used.Load() {
			victim = e
		}
	}
	if victim != nil {
		delete(m, victim.key)
		c.size.Add(-1)
	}
}

func (c *cache) remove(sh *shard, key string) {
	sh.mu.Lock()
	if sh.load(key) != nil {
		sh.updateLocked(func(m map[string]*entry) { delete(m, key) })
		c.size.Add(-1)
	}
	sh.mu.Unlock()
}

// invalidate marks the entries of name as changed, or removes them when
// drop is set, and returns their selectors for refreshing.
func (c *cache) invalidate(name string, drop bool) []selector {
	sh := c.shardFor(name)
	var out []selector
	sh.mu.Lock()
	sh.epoch.Add(1)
	var dropped []string
	for k, e := range *sh.m.Load() {
		if e.sel.name != name {
			continue
		}
		out = append(out, e.sel)
		if drop {
			dropped = append(dropped, k)
		} else {
			e.invalid.Store(true)
		}
	}
	if len(dropped) > 0 {
		sh.updateLocked(func(m map[string]*entry) {
			for _, k := range dropped {
				delete(m, k)
			}
		})
		c.size.Add(-int64(len(dropped)))
	}
	sh.mu.Unlock()
	return out
}

// expireAll makes every entry not fresh, keeping them to answer stale, and
// returns their selectors for refreshing.
func (c *cache) expireAll() []selector {
	c.gen.Add(1)
	var out []selector
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.epoch.Add(1)
		for _, e := range *sh.m.Load() {
			out = append(out, e.sel)
		}
		sh.mu.Unlock()
	}
	return out
}

// clear removes every entry.
func (c *cache) clear() {
	c.gen.Add(1)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.epoch.Add(1)
		c.size.Add(-int64(len(*sh.m.Load())))
		empty := map[string]*entry{}
		sh.m.Store(&empty)
		sh.mu.Unlock()
	}
}

// close cancels the fetches in flight and waits for them.
func (c *cache) close() {
	close(c.stop)
	c.fetching.Wait()
}

// refetch fetches s from the server and applies the answer, ignoring it
// otherwise. Background refreshes use it.
func (c *cache) refetch(ctx context.Context, s selector) {
	key := s.key()
	cl := c.do(ctx, c.shardFor(s.name), s, key)
	select {
	case <-cl.done:
	case <-ctx.Done():
	}
}
