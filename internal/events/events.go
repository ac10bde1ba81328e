// Package events publishes secret lifecycle events to subscribers. Events
// are numbered; the last Capacity of them are kept in memory so that a
// subscriber that disconnects can resume from its cursor. A cursor older
// than the buffer resumes from the oldest event kept, flagged as a gap so
// the subscriber knows to resynchronise.
package events

import (
	"sync"
	"time"
)

// Event types.
const (
	VersionCreated  = "version_created"
	StageMoved      = "stage_moved"
	Deleted         = "deleted"
	Restored        = "restored"
	Destroyed       = "destroyed"
	Purged          = "purged"
	MetadataUpdated = "metadata_updated"
	Rotated         = "rotated"
	RotationFailed  = "rotation_failed"
	// Exposed is published when someone reports the secret's value leaked;
	// Stage carries the report's source.
	Exposed = "exposure_reported"
	// BreakGlass is published on the name "sys/break-glass" when an
	// emergency token is issued; Stage carries its accessor.
	BreakGlass = "break_glass_issued"
)

// Event is one change. It never carries a value.
type Event struct {
	Seq     uint64    `json:"seq"`
	Type    string    `json:"type"`
	Name    string    `json:"name"`
	Version int       `json:"version,omitempty"`
	Stage   string    `json:"stage,omitempty"`
	Time    time.Time `json:"time"`
}

// Capacity is how many recent events are kept for resuming subscribers.
const Capacity = 10000

// Bus fans events out. It is safe for concurrent use; the zero value is not
// usable, call New.
type Bus struct {
	mu     sync.Mutex // guards the fields below
	ring   []Event    // the last len(ring) events, oldest at ring[start]
	start  int
	next   uint64        // seq of the next event
	wake   chan struct{} // closed and replaced on every publish
	closed bool
	now    func() time.Time
	// relay, when set, takes published events instead of the bus; they
	// come back numbered through Deliver (several nodes share one stream).
	relay func(Event)
}

// New returns an empty bus. now may be nil.
func New(now func() time.Time) *Bus {
	if now == nil {
		now = time.Now
	}
	return &Bus{next: 1, wake: make(chan struct{}), now: now}
}

// Publish numbers e, keeps it and wakes subscribers; with a relay set it
// hands e to the relay instead.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if b.relay != nil {
		if e.Time.IsZero() {
			e.Time = b.now().UTC()
		}
		b.relay(e) // must not block or call back into b
		return
	}
	e.Seq = b.next
	b.next++
	if e.Time.IsZero() {
		e.Time = b.now().UTC()
	}
	if len(b.ring) < Capacity {
		b.ring = append(b.ring, e)
	} else {
		b.ring[b.start] = e
		b.start = (b.start + 1) % Capacity
	}
	close(b.wake)
	b.wake = make(chan struct{})
}

// Close wakes every subscriber for the last time; Read then reports closed.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.wake)
	}
}

// Read returns the events after cursor (up to max), whether events between
// cursor and the first returned were lost (gap), a channel that is closed
// when more may be available, and whether the bus is closed.
func (b *Bus) Read(cursor uint64, max int) (evs []Event, gap bool, more <-chan struct{}, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.ring)
	if n > 0 {
		oldest := b.ring[b.start].Seq
		if cursor+1 < oldest {
			gap, cursor = true, oldest-1
		}
		// The event with seq cursor+1 sits at offset cursor+1-oldest.
		for off := int(cursor + 1 - oldest); off < n && len(evs) < max; off++ {
			if off < 0 {
				continue
			}
			evs = append(evs, b.ring[(b.start+off)%Capacity])
		}
	}
	return evs, gap, b.wake, b.closed
}

// StartAt makes the next event seq (when it is higher than the current
// next), before anything is published. A server seeds it with the time of
// its start in microseconds, so ids keep growing across restarts: a
// subscriber resuming with an id from before a restart is told of the gap
// and resynchronises, instead of silently missing events numbered from 1.
func (b *Bus) StartAt(seq uint64) {
	b.mu.Lock()
	if len(b.ring) == 0 && seq > b.next {
		b.next = seq
	}
	b.mu.Unlock()
}

// Last returns the seq of the newest event (0 if none).
func (b *Bus) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.next - 1
}

// SetRelay makes Publish hand every event to relay, which must not block,
// instead of numbering and keeping it. The relay numbers events across all
// the nodes of a cluster and returns them, from every node, through Deliver.
// Call it before use.
func (b *Bus) SetRelay(relay func(Event)) {
	b.mu.Lock()
	b.relay = relay
	b.mu.Unlock()
}

// Deliver keeps an event numbered by the relay and wakes subscribers.
// Events arrive in increasing Seq; one already kept is ignored, and one
// after a hole (notifications lost) starts the buffer over, so readers with
// older cursors are told of a gap.
func (b *Bus) Deliver(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if e.Seq < b.next && (len(b.ring) == 0 || e.Seq >= b.ring[b.start].Seq) {
		return // already kept, or older than where Resync started
	}
	if e.Seq != b.next {
		b.ring, b.start = nil, 0
	}
	b.next = e.Seq
	b.keepLocked(e)
}

// Resync declares next as the seq of the next event to come, after the
// relay (re)connected and may have missed events. If that is not what the
// bus expected, the buffer starts over.
func (b *Bus) Resync(next uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if next != b.next {
		b.ring, b.start, b.next = nil, 0, next
	}
}

// keepLocked stores e with seq b.next and wakes subscribers.
func (b *Bus) keepLocked(e Event) {
	e.Seq = b.next
	b.next++
	if len(b.ring) < Capacity {
		b.ring = append(b.ring, e)
	} else {
		b.ring[b.start] = e
		b.start = (b.start + 1) % Capacity
	}
	close(b.wake)
	b.wake = make(chan struct{})
}
