package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/postgres"
	"github.com/coffer-dev/coffer/internal/testdb"
)

// nextWatch returns the next keys a watcher got, failing after limit.
func nextWatch(t testing.TB, ch <-chan []string, limit time.Duration, what string) []string {
	t.Helper()
	select {
	case keys := <-ch:
		return keys
	case <-time.After(limit):
		t.Fatalf("no watch call within %v: %s", limit, what)
		return nil
	}
}

// expectLost waits for the "anything may have changed" call (nil keys)
// that follows a reconnect, skipping notifications of keys.
func expectLost(t testing.TB, ch <-chan []string, limit time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if keys := nextWatch(t, ch, time.Until(deadline), what); keys == nil {
			return
		}
	}
}

// expectKey writes key through w and waits until the watcher of another
// backend hears of it: the listener works.
func expectKey(t testing.TB, w *postgres.Backend, ch <-chan []string, key string) {
	t.Helper()
	if err := w.Update(context.Background(), func(tx storage.Tx) error { return tx.Put(key, []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if keys := nextWatch(t, ch, time.Until(deadline), "notification of "+key); slices.Contains(keys, key) {
			return
		}
	}
}

// TestListenerTerminated ends the listening session on the server side
// (pg_terminate_backend): the backend reconnects and tells its watchers
// that anything may have changed, then hears notifications again.
func TestListenerTerminated(t *testing.T) {
	url := testdb.Postgres(t)
	a, b := open(t, url), open(t, url)
	got := make(chan []string, 100)
	b.Watch(func(keys []string) { got <- keys })
	expectLost(t, got, 3*time.Second, "first connection")
	var n int
	err := a.Pool().QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, postgres.ListenerName).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminating the listener: %d sessions, %v; want 1", n, err)
	}
	expectLost(t, got, 3*time.Second, "reconnect after pg_terminate_backend")
	expectKey(t, a, got, "after/terminate")
}

// TestListenerHalfOpen makes the listening connection half-open (a proxy
// stops forwarding without closing, as after a fail-over behind a virtual
// IP): the idle ping fails, the backend reconnects and invalidates.
func TestListenerHalfOpen(t *testing.T) {
	direct := testdb.Postgres(t)
	p := newBlackhole(t, direct)
	a := open(t, direct)
	b, err := postgres.Open(context.Background(), postgres.Config{URL: p.url, Timeout: time.Second, ListenIdle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	t.Cleanup(p.close) // runs first: frees connections stuck in the hole
	got := make(chan []string, 100)
	b.Watch(func(keys []string) { got <- keys })
	expectLost(t, got, 3*time.Second, "first connection")
	expectKey(t, a, got, "before/freeze")
	p.freeze() // every current connection, the listener's included, goes silent
	start := time.Now()
	expectLost(t, got, 5*time.Second, "reconnect after the connection went half-open")
	t.Logf("half-open listener replaced after %v", time.Since(start))
	expectKey(t, a, got, "after/freeze")
}

// TestOpenUnreachable: the start-up error says PostgreSQL is unreachable
// and where, never with the password.
func TestOpenUnreachable(t *testing.T) {
	_, err := postgres.Open(context.Background(), postgres.Config{URL: "postgres://postgres:hunter2@127.0.0.1:1/x", Timeout: 2 * time.Second})
	if err == nil || !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "PostgreSQL is unreachable at 127.0.0.1:1") ||
		strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open(port 1) = %v, want ErrUnavailable naming 127.0.0.1:1 without the password", err)
	}
	t.Log(err)
}

// blackhole is a TCP proxy to PostgreSQL whose connections can be frozen:
// they stay open but carry nothing more, in either direction.
type blackhole struct {
	url string
	ln  net.Listener

	mu    sync.Mutex // guards conns
	conns []*holeConn
	wg    sync.WaitGroup
}

type holeConn struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func newBlackhole(t testing.TB, target string) *blackhole {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := u.Host
	u.Host = ln.Addr().String()
	p := &blackhole{url: u.String(), ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			hc := &holeConn{client: c, server: s}
			p.mu.Lock()
			p.conns = append(p.conns, hc)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); hc.pipe(s, c) }()
			go func() { defer p.wg.Done(); hc.pipe(c, s) }()
		}
	}()
	return p
}

// pipe copies from src to dst until either ends, dropping what it reads
// once frozen.
func (hc *holeConn) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !hc.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			hc.client.Close()
			hc.server.Close()
			return
		}
	}
}

func (p *blackhole) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.frozen.Store(true)
	}
}

func (p *blackhole) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
