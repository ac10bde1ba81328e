// Package ratelimit holds token buckets per identity and per source
// address, configured per path prefix. A request is checked against the
// rule with the longest matching prefix.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// Rule limits the paths under Prefix ("" for every path). A zero rate means
// no limit of that kind.
type Rule struct {
	Prefix        string
	IdentityRate  float64 // requests per second per identity
	IdentityBurst int
	SourceRate    float64 // requests per second per source address
	SourceBurst   int
}

// ErrLimited is returned by Allow when a bucket is empty.
var ErrLimited = errors.New("rate limit exceeded")

// Limited tells how long to wait before retrying.
type Limited struct {
	RetryAfter time.Duration
	Kind       string // "identity" or "source"
}

func (l *Limited) Error() string {
	return fmt.Sprintf("rate limit exceeded (per %s); retry after %s", l.Kind, l.RetryAfter.Round(time.Millisecond))
}

// Unwrap makes a *Limited match ErrLimited.
func (l *Limited) Unwrap() error { return ErrLimited }

// maxBuckets bounds memory (see makeRoomLocked).
var maxBuckets = 100_000

type bucket struct {
	tokens   float64
	last     time.Time
	rate     float64
	capacity float64
	source   bool // a per-source bucket (anyone can make new ones)
}

// full reports whether b has refilled to capacity by now: dropping it then
// changes nothing, since a new bucket starts full.
func (b *bucket) full(now time.Time) bool {
	return b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.capacity
}

// Limiter is safe for concurrent use.
type Limiter struct {
	rules []Rule // sorted by prefix length, longest first
	now   func() time.Time

	mu        sync.Mutex         // guards buckets and lastSweep
	buckets   map[string]*bucket // rule index + kind + key -> bucket
	lastSweep time.Time          // when makeRoomLocked last scanned every bucket
}

// New returns a limiter, or nil when no rule limits anything. now may be nil.
func New(rules []Rule, now func() time.Time) (*Limiter, error) {
	var keep []Rule
	for _, r := range rules {
		if r.IdentityRate < 0 || r.SourceRate < 0 || r.IdentityBurst < 0 || r.SourceBurst < 0 {
			return nil, fmt.Errorf("rate limit %q: rates and bursts must not be negative", r.Prefix)
		}
		if r.IdentityRate > 0 || r.SourceRate > 0 {
			keep = append(keep, r)
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	sort.SliceStable(keep, func(i, j int) bool { return len(keep[i].Prefix) > len(keep[j].Prefix) })
	if now == nil {
		now = time.Now
	}
	return &Limiter{rules: keep, now: now, buckets: map[string]*bucket{}}, nil
}

func (l *Limiter) rule(path string) (int, *Rule) {
	for i := range l.rules {
		if strings.HasPrefix(path, l.rules[i].Prefix) {
			return i, &l.rules[i]
		}
	}
	return -1, nil
}

// AllowSource checks the per-source bucket for path; a nil Limiter allows all.
func (l *Limiter) AllowSource(path string, source netip.Addr) error {
	if l == nil {
		return nil
	}
	i, r := l.rule(path)
	if r == nil || r.SourceRate == 0 {
		return nil
	}
	return l.take(fmt.Sprintf("%d/s/%s", i, sourceKey(source)), r.SourceRate, r.SourceBurst, "source")
}

// sourceKey is the bucket of a source address: the address for IPv4, its
// /64 for IPv6, since one host commonly holds a whole /64 and could
// otherwise take a fresh bucket for every request.
func sourceKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// AllowIdentity checks the per-identity bucket for path.
func (l *Limiter) AllowIdentity(path, identity string) error {
	if l == nil {
		return nil
	}
	i, r := l.rule(path)
	if r == nil || r.IdentityRate == 0 {
		return nil
	}
	return l.take(fmt.Sprintf("%d/i/%s", i, identity), r.IdentityRate, r.IdentityBurst, "identity")
}

func (l *Limiter) take(key string, rate float64, burst int, kind string) error {
	capacity := math.Max(float64(burst), 1)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets && !l.makeRoomLocked(now, kind == "source") {
			// Every bucket is in use and this is one more source: a flood
			// of new addresses waits rather than push live buckets (and
			// the throttling they hold) out.
			return &Limited{RetryAfter: time.Second, Kind: kind}
		}
		b = &bucket{tokens: capacity, last: now, rate: rate, capacity: capacity, source: kind == "source"}
		l.buckets[key] = b
	}
	b.tokens = math.Min(capacity, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration((1 - b.tokens) / rate * float64(time.Second))
	return &Limited{RetryAfter: wait, Kind: kind}
}

// makeRoomLocked makes room for a new bucket. At most once a second it
// drops every bucket that has refilled (a fresh one would be the same).
// If that is not enough, a new source bucket gets no room, and a new
// identity bucket (identities are authenticated) takes the room of a
// source bucket. It never drops an identity bucket that is still
// throttling, and the full scan cannot be forced on every request.
func (l *Limiter) makeRoomLocked(now time.Time, source bool) bool {
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for k, b := range l.buckets {
			if b.full(now) {
				delete(l.buckets, k)
			}
		}
	}
	if len(l.buckets) < maxBuckets {
		return true
	}
	if source {
		return false
	}
	for k, b := range l.buckets {
		if b.source {
			delete(l.buckets, k)
			return true
		}
	}
	return false
}
