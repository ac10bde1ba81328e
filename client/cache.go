package client

import (
	"bytes"
	"container/list"
	"slices"
	"sync"
	"time"
)

// maxCacheEntries bounds the read cache; past it the oldest entries go.
const maxCacheEntries = 10_000

// cache holds Get results for a while. It is safe for concurrent use.
type cache struct {
	ttl time.Duration
	max int
	now func() time.Time // replaced by tests

	mu sync.Mutex
	// entries indexes order's elements (holding *cacheEntry) by name and
	// selector, so that a name's entries go together. Guarded by mu.
	entries map[string]map[Selector]*list.Element
	// order holds the entries oldest first. Guarded by mu.
	order *list.List
	// gen counts invalidations, so that a read that raced with one does
	// not store what it read before it. Guarded by mu.
	gen uint64
}

type cacheEntry struct {
	name    string
	sel     Selector
	s       *Secret
	expires time.Time
}

func newCache(ttl time.Duration, max int) *cache {
	return &cache{ttl: ttl, max: max, now: time.Now, entries: map[string]map[Selector]*list.Element{}, order: list.New()}
}

// get returns a copy of the cached value, or nil.
func (c *cache) get(name string, sel Selector) *Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[name][sel]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.removeLocked(el)
		return nil
	}
	return copySecret(e.s)
}

// generation returns a token for put: call it before reading from the server.
func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores a copy of s unless an invalidation happened since gen.
func (c *cache) put(gen uint64, name string, sel Selector, s *Secret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if el, ok := c.entries[name][sel]; ok {
		c.removeLocked(el)
	}
	e := &cacheEntry{name: name, sel: sel, s: copySecret(s), expires: c.now().Add(c.ttl)}
	m := c.entries[name]
	if m == nil {
		m = map[Selector]*list.Element{}
		c.entries[name] = m
	}
	m[sel] = c.order.PushBack(e)
	for c.order.Len() > c.max {
		c.removeLocked(c.order.Front())
	}
}

// invalidate drops every entry of name.
func (c *cache) invalidate(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, el := range c.entries[name] {
		c.order.Remove(el)
	}
	delete(c.entries, name)
}

// clear drops every entry.
func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries = map[string]map[Selector]*list.Element{}
	c.order.Init()
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *cache) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry)
	m := c.entries[e.name]
	delete(m, e.sel)
	if len(m) == 0 {
		delete(c.entries, e.name)
	}
}

func copySecret(s *Secret) *Secret {
	cp := *s
	cp.Stages = slices.Clone(s.Stages)
	cp.Data = bytes.Clone(s.Data)
	return &cp
}

// InvalidateCache drops the cached values of the secret name, so that the
// next Get reads it from the server. The Client does this itself after its
// own writes; call it when you learn of a change made elsewhere. It does
// nothing when the cache is off.
func (c *Client) InvalidateCache(name string) {
	if c.cache != nil {
		c.cache.invalidate(name)
	}
}

// ClearCache drops every cached value, e.g. after missing change events.
// It does nothing when the cache is off.
func (c *Client) ClearCache() {
	if c.cache != nil {
		c.cache.clear()
	}
}
