package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/storage/postgres"
)

// relayQueue bounds the events waiting to be sent; beyond it they are
// dropped (and logged), never blocking the writer that published them.
const relayQueue = 4096

// maxEventsPayload keeps one notification under PostgreSQL's 8000 bytes.
const maxEventsPayload = 7000

// Events carries secret lifecycle events between the nodes: every node
// publishes into one stream numbered by a counter row in PostgreSQL, and
// every node's bus receives the whole stream in the same order, so an event
// id (cursor) means the same event on every node and a client may resume on
// any node. Create it with NewEvents; Run sends until its context ends.
type Events struct {
	pool  *pgxpool.Pool
	bus   *events.Bus
	log   *slog.Logger
	queue chan events.Event
}

// NewEvents connects bus to the cluster's event stream over be. Call it
// before the bus is used, then Run.
func NewEvents(be *postgres.Backend, bus *events.Bus, log *slog.Logger) *Events {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Events{pool: be.Pool(), bus: bus, log: log, queue: make(chan events.Event, relayQueue)}
	bus.SetRelay(r.enqueue)
	be.Subscribe(postgres.ChannelEvents, r.receive)
	return r
}

func (r *Events) enqueue(e events.Event) {
	select {
	case r.queue <- e:
	default:
		r.log.Warn("event dropped: the cluster event queue is full", "type", e.Type)
	}
}

// receive runs on the backend's listener goroutine.
func (r *Events) receive(payload string, lost bool) {
	if lost {
		// Events may have been missed: continue from the counter, so the
		// bus tells readers of older cursors about the gap.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var seq int64
		if err := r.pool.QueryRow(ctx, `SELECT seq FROM coffer_event_seq WHERE id = 1`).Scan(&seq); err == nil {
			r.bus.Resync(uint64(seq) + 1)
		}
		return
	}
	var evs []events.Event
	if err := json.Unmarshal([]byte(payload), &evs); err != nil {
		r.log.Warn("undecodable cluster event notification", "error", err)
		return
	}
	for _, e := range evs {
		r.bus.Deliver(e)
	}
}

// Run sends queued events until ctx ends, in batches: each batch takes its
// numbers from the counter row and notifies in the same transaction, so
// numbering order is commit order is delivery order on every node.
func (r *Events) Run(ctx context.Context) {
	for {
		var batch []events.Event
		select {
		case <-ctx.Done():
			return
		case e := <-r.queue:
			batch = append(batch, e)
		}
	drain:
		for len(batch) < 256 {
			select {
			case e := <-r.queue:
				batch = append(batch, e)
			default:
				break drain
			}
		}
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = r.send(ctx, batch); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		if err != nil {
			r.log.Warn("events could not be sent to the cluster and are dropped", "count", len(batch), "error", err)
		}
	}
}

func (r *Events) send(ctx context.Context, batch []events.Event) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var last int64
		// The row lock serializes senders until commit.
		if err := tx.QueryRow(ctx, `UPDATE coffer_event_seq SET seq = seq + $1 WHERE id = 1 RETURNING seq`, len(batch)).Scan(&last); err != nil {
			return err
		}
		first := uint64(last) - uint64(len(batch)) + 1
		var chunk []events.Event
		size := 0
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			raw, err := json.Marshal(chunk)
			if err != nil {
				return err
			}
			chunk, size = chunk[:0], 0
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, postgres.ChannelEvents, string(raw))
			return err
		}
		for i, e := range batch {
			e.Seq = first + uint64(i)
			raw, _ := json.Marshal(e)
			if size+len(raw) > maxEventsPayload {
				if err := flush(); err != nil {
					return err
				}
			}
			chunk = append(chunk, e)
			size += len(raw) + 1
		}
		return flush()
	})
}
