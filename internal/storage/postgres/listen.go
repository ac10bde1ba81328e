package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ListenerName is the application_name of the connection that listens for
// other nodes' notifications, as pg_stat_activity shows it.
const ListenerName = "coffer listener"

// Watch implements storage.Watcher: fn receives the keys other Backends
// (other nodes) changed, or nil each time the listening connection is
// (re)established, since notifications sent before then are unknown.
func (b *Backend) Watch(fn func(keys []string)) {
	b.subMu.Lock()
	b.watchers = append(b.watchers, fn)
	b.subMu.Unlock()
	b.startListening()
}

// Subscribe calls fn(payload, false) for every notification on channel
// (ChannelEvents; ChannelKeys is for Watch), including those this Backend
// sent, in commit order, and fn("", true) each time the listening connection
// is (re)established: notifications sent before then are unknown. fn runs on the
// listener's goroutine and must return quickly.
func (b *Backend) Subscribe(channel string, fn func(payload string, lost bool)) {
	b.subMu.Lock()
	b.subs[channel] = append(b.subs[channel], fn)
	b.subMu.Unlock()
	b.startListening()
}

// Origin identifies this Backend in the notifications it sends.
func (b *Backend) Origin() string { return b.origin }

func (b *Backend) startListening() {
	b.listenOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		b.subMu.Lock()
		b.listenCancel, b.listenDone = cancel, done
		b.subMu.Unlock()
		go func() {
			defer close(done)
			b.listenLoop(ctx)
		}()
	})
}

// listenLoop holds a dedicated connection that LISTENs on both channels,
// reconnecting every second while the database is away. A connection that
// stays silent for b.idle is pinged: a half-open connection (the server
// gone without a FIN, after a fail-over behind a virtual IP or a NAT
// timeout) would otherwise wait for notifications that never come while
// every cache on this node goes stale.
func (b *Backend) listenLoop(ctx context.Context) {
	for ctx.Err() == nil {
		conn, err := b.listenConn(ctx)
		if err != nil {
			b.log.Debug("postgres listener cannot connect; retrying", "error", mapErr(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		// Whatever was notified before LISTEN took effect is unknown to
		// this node, on the first connection as after a reconnect.
		b.dispatchLost()
		for b.listenOne(ctx, conn) {
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}
}

// listenOne waits up to b.idle for a notification and dispatches it, or
// pings conn when none came. It reports whether conn is still usable.
func (b *Backend) listenOne(ctx context.Context, conn *pgx.Conn) bool {
	wctx, cancel := context.WithTimeout(ctx, b.idle)
	n, err := conn.WaitForNotification(wctx)
	silent := errors.Is(wctx.Err(), context.DeadlineExceeded)
	cancel()
	switch {
	case err == nil:
		b.dispatch(n.Channel, n.Payload)
		return true
	case ctx.Err() != nil:
		return false
	case !silent || conn.IsClosed():
		b.log.Warn("postgres listener connection lost; reconnecting", "error", mapErr(err))
		return false
	}
	// Silent for b.idle: prove the server is still there. A timed-out
	// wait leaves the connection usable (pgx closes it on other errors).
	pctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		if ctx.Err() == nil {
			b.log.Warn("postgres listener connection does not answer; reconnecting", "error", mapErr(err))
		}
		return false
	}
	return true
}

func (b *Backend) listenConn(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cc := b.connCfg.Copy()
	cc.RuntimeParams["application_name"] = ListenerName
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+ChannelKeys+"; LISTEN "+ChannelEvents); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

func (b *Backend) dispatch(channel, payload string) {
	b.subMu.Lock()
	watchers, subs := b.watchers, b.subs[channel]
	b.subMu.Unlock()
	if channel == ChannelKeys {
		var n keyNote
		if err := json.Unmarshal([]byte(payload), &n); err != nil || n.Origin == b.origin {
			return
		}
		keys := n.Keys
		if n.All {
			keys = nil
		}
		for _, fn := range watchers {
			fn(keys)
		}
		return
	}
	for _, fn := range subs {
		fn(payload, false)
	}
}

func (b *Backend) dispatchLost() {
	b.subMu.Lock()
	watchers := b.watchers
	var subs []func(string, bool)
	for _, s := range b.subs {
		subs = append(subs, s...)
	}
	b.subMu.Unlock()
	for _, fn := range watchers {
		fn(nil)
	}
	for _, fn := range subs {
		fn("", true)
	}
}
