// Package groupcommit gathers concurrent write requests into batches that
// share one transaction, the way the bolt and postgres backends commit.
package groupcommit

import "time"

// Gatherer collects the requests queued on a channel into batches. Writers
// whose previous commit just finished are on their way back, so after the
// first request it waits, at most Linger, until as many requests as the
// previous batch held have arrived: they then share this commit instead of
// paying for the next one. A lone writer never waits. It is used by one
// goroutine.
type Gatherer[T any] struct {
	Queue  <-chan T
	Max    int           // most requests in one batch
	Linger time.Duration // longest wait for more requests

	batch []T
	timer *time.Timer
	prev  int // size of the previous batch: how many writers are likely about
}

// Next waits for a request, or for stop to close (it then returns nil,
// false), and returns the batch that starts with it. The batch is reused by
// the next call.
func (g *Gatherer[T]) Next(stop <-chan struct{}) ([]T, bool) {
	if g.timer == nil {
		g.timer = time.NewTimer(time.Hour)
		g.timer.Stop()
		g.prev = 1
	}
	select {
	case r := <-g.Queue:
		g.batch = append(g.batch[:0], r)
	case <-stop:
		return nil, false
	}
	g.timer.Reset(g.Linger)
	defer g.timer.Stop()
	for len(g.batch) < g.Max {
		select {
		case r := <-g.Queue:
			g.batch = append(g.batch, r)
			continue
		default:
		}
		if len(g.batch) >= g.prev {
			break
		}
		select {
		case r := <-g.Queue:
			g.batch = append(g.batch, r)
			continue
		case <-g.timer.C:
		}
		break
	}
	g.prev = len(g.batch)
	return g.batch, true
}
