// Package postgres is the storage backend for high availability: several
// Coffer nodes share one PostgreSQL database, which the operator runs
// replicated or managed.
//
// Records live in one table keyed by bytea, so that PostgreSQL orders keys
// exactly as the storage contract does (byte order). Writes use group
// commit: concurrent Update calls share one SERIALIZABLE transaction, each
// function against its own overlay, so one failing function discards only
// its own writes. A transaction that conflicts with another node's is rolled
// back and run again, functions included, so no update is lost across nodes.
//
// Every commit notifies the other nodes (LISTEN/NOTIFY, in the same
// transaction) of the keys it changed; Watch delivers those notifications
// so caches can forget what changed. When PostgreSQL cannot be reached every
// method fails promptly with an error wrapping storage.ErrUnavailable, and
// the backend recovers by itself when it returns.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/groupcommit"
)

// Notification channels. Payloads are JSON.
const (
	// ChannelKeys carries {"o": origin, "k": [keys]} or {"o": origin, "all": true}.
	ChannelKeys = "coffer_kv"
	// ChannelEvents carries secret lifecycle events (see the cluster package).
	ChannelEvents = "coffer_events"
)

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7900

// maxBatch bounds how many Update calls share one transaction.
const maxBatch = 256

// maxLinger bounds how long a commit waits for more writers to join it.
const maxLinger = time.Millisecond

// maxAttempts bounds how often a conflicting batch is run again.
const maxAttempts = 30

// keepAlive makes the kernel notice a peer that vanished without closing
// the connection (a fail-over behind a virtual IP, a NAT entry that timed
// out) within about 11 s instead of Linux's default of over two hours.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3}

// Config configures Open. Zero values mean defaults.
type Config struct {
	// URL is a PostgreSQL connection URL or keyword/value string.
	URL string
	// Timeout bounds each operation against the database; 0 means 5s.
	Timeout time.Duration
	// MaxConns bounds the connection pool; 0 means 16.
	MaxConns int32
	// ListenIdle is how long the listening connection may stay silent
	// before it is pinged; a failed ping reconnects it (and tells watchers
	// that anything may have changed). 0 means 5s.
	ListenIdle time.Duration
	Logger     *slog.Logger
}

// Backend is a storage.Backend on PostgreSQL. Open it with Open; its methods
// are safe for concurrent use.
type Backend struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // for the dedicated listening connection
	timeout time.Duration
	idle    time.Duration // Config.ListenIdle
	origin  string        // identifies this Backend's own notifications
	log     *slog.Logger

	queue chan *request // pending Update calls, drained by commitLoop
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when commitLoop returns

	commits, writes, retries atomic.Uint64

	subMu    sync.Mutex // guards watchers and subs
	watchers []func(keys []string)
	subs     map[string][]func(payload string, lost bool)

	listenCancel context.CancelFunc
	listenDone   chan struct{} // closed when listenLoop returns; nil until started
	listenOnce   sync.Once

	mu        sync.RWMutex // guards closed; held for reading while enqueueing
	closed    bool
	closeOnce sync.Once
}

type request struct {
	fn   func(storage.Tx) error
	done chan error // buffered, receives exactly one result
}

// Open connects to PostgreSQL, applies schema migrations (safely when
// several nodes start at once) and starts the commit loop.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	if cfg.ListenIdle <= 0 {
		cfg.ListenIdle = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("parse postgres url: invalid connection string")
	}
	pc.MaxConns = cfg.MaxConns
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > cfg.Timeout {
		pc.ConnConfig.ConnectTimeout = cfg.Timeout
	}
	pc.PingTimeout = cfg.Timeout
	dialer := &net.Dialer{Timeout: pc.ConnConfig.ConnectTimeout, KeepAliveConfig: keepAlive}
	pc.ConnConfig.DialFunc = dialer.DialContext
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "coffer"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", mapErr(err))
	}
	b := &Backend{
		pool:    pool,
		connCfg: pc.ConnConfig.Copy(),
		timeout: cfg.Timeout,
		idle:    cfg.ListenIdle,
		origin:  randomID(),
		log:     cfg.Logger,
		queue:   make(chan *request, maxBatch),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		subs:    map[string][]func(string, bool){},
	}
	mctx, cancel := context.WithTimeout(ctx, 4*cfg.Timeout)
	defer cancel()
	if err := migrate(mctx, pool); err != nil {
		pool.Close()
		return nil, startErr(pc.ConnConfig, err)
	}
	go b.commitLoop()
	return b, nil
}

// startErr explains a failure to reach the database at start-up, naming
// where Coffer tried to connect (host and port, never the password).
func startErr(cc *pgx.ConnConfig, err error) error {
	if !errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	addrs := []string{net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))}
	for _, fb := range cc.Fallbacks {
		addrs = append(addrs, net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))))
	}
	// The innermost network error says why (refused, timed out, no such
	// host) without pgx's multi-line list of attempts.
	why := err.Error()
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		why = de.Error()
	case errors.As(err, &oe) && oe.Err != nil:
		why = oe.Err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		why = "no answer in time"
	}
	return &unreachableError{addrs: strings.Join(slices.Compact(addrs), ", "), why: why}
}

// unreachableError is Open's failure to reach the database. It matches
// storage.ErrUnavailable.
type unreachableError struct{ addrs, why string }

func (e *unreachableError) Error() string {
	return "PostgreSQL is unreachable at " + e.addrs + ": " + e.why
}

func (e *unreachableError) Unwrap() error { return storage.ErrUnavailable }

func randomID() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// Pool returns the connection pool, for the cluster package's tables.
func (b *Backend) Pool() *pgxpool.Pool { return b.pool }

// ConnConfig returns a copy of the connection settings, for callers that
// need a dedicated session (advisory locks).
func (b *Backend) ConnConfig() *pgx.ConnConfig { return b.connCfg.Copy() }

// Timeout is the bound the backend puts on each database operation.
func (b *Backend) Timeout() time.Duration { return b.timeout }

func (b *Backend) isClosed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closed
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if b.isClosed() {
		return nil, storage.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	var v []byte
	err := b.pool.QueryRow(ctx, `SELECT value FROM coffer_kv WHERE key = $1`, []byte(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, b.opErr(ctx, "get", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if b.isClosed() {
		return nil, storage.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	lo := []byte(prefix)
	var hi []byte // nil: no upper bound
	if end, ok := prefixEnd(lo); ok {
		hi = end
	}
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	rows, err := b.pool.Query(ctx, `SELECT key FROM coffer_kv
		WHERE key >= $1 AND key > $2 AND ($3::bytea IS NULL OR key < $3)
		ORDER BY key LIMIT $4`, lo, []byte(after), hi, lim)
	if err != nil {
		return nil, b.opErr(ctx, "list", err)
	}
	var out []string
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, b.opErr(ctx, "list", err)
		}
		out = append(out, string(k))
	}
	if err := rows.Err(); err != nil {
		return nil, b.opErr(ctx, "list", err)
	}
	return out, nil
}

// prefixEnd returns the smallest key greater than every key starting with
// p, or false when there is none (p is empty or all 0xff).
func prefixEnd(p []byte) ([]byte, bool) {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1], true
		}
	}
	return nil, false
}

// Update implements storage.Backend. Calls that arrive while a commit is in
// flight are gathered into the next transaction. fn may run more than once
// when the transaction conflicts with another node's and is retried.
func (b *Backend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	req := &request{fn: fn, done: make(chan error, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return storage.ErrClosed
	}
	select {
	case b.queue <- req:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued the request will be committed or failed; wait for the
	// outcome even if ctx ends, so the caller never misreports durability.
	return <-req.done
}

func (b *Backend) commitLoop() {
	defer close(b.done)
	g := &groupcommit.Gatherer[*request]{Queue: b.queue, Max: maxBatch, Linger: maxLinger}
	for {
		batch, ok := g.Next(b.stop)
		if !ok {
			b.failPending()
			return
		}
		results, err := b.commitWithRetry(batch)
		b.commits.Add(1)
		b.writes.Add(uint64(len(batch)))
		for i, r := range batch {
			if err != nil {
				r.done <- err
			} else {
				r.done <- results[i]
			}
		}
	}
}

// commitWithRetry runs batch until it commits without a serialization
// conflict, or fails for another reason.
func (b *Backend) commitWithRetry(batch []*request) ([]error, error) {
	backoff := time.Millisecond
	for attempt := 1; ; attempt++ {
		results, err := b.commit(batch)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return results, err
		}
		b.retries.Add(1)
		// Jitter so that two nodes in conflict do not collide again.
		var r [1]byte
		_, _ = rand.Read(r[:])
		d := backoff + time.Duration(r[0])*backoff/256
		select {
		case <-time.After(d):
		case <-b.stop:
			return nil, storage.ErrClosed
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// retryable reports whether err is a conflict with a concurrent transaction
// that running the batch again resolves.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"23505": // unique_violation: two nodes inserted the same new key
		return true
	}
	return false
}

// batchState is what the functions of one batch have written so far.
type batchState struct {
	ctx    context.Context
	tx     pgx.Tx
	writes map[string][]byte // nil value = delete
	order  []string
	err    error // first database error; fails the whole batch
}

// commit runs batch in one SERIALIZABLE transaction. The returned error
// fails every request; otherwise results holds each function's own error.
func (b *Backend) commit(batch []*request) ([]error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*b.timeout)
	defer cancel()
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return nil, b.opErr(ctx, "begin", err)
	}
	defer tx.Rollback(context.Background())
	st := &batchState{ctx: ctx, tx: tx, writes: map[string][]byte{}}
	results := make([]error, len(batch))
	for i, r := range batch {
		ov := &overlay{st: st, writes: map[string][]byte{}}
		results[i] = runIsolated(r.fn, ov)
		if st.err != nil {
			// The transaction is unusable; whatever fn made of the error,
			// nothing of this batch may commit.
			return nil, st.err
		}
		if results[i] != nil {
			continue
		}
		for _, k := range ov.order {
			if _, ok := st.writes[k]; !ok {
				st.order = append(st.order, k)
			}
			st.writes[k] = ov.writes[k]
		}
	}
	if len(st.order) == 0 {
		return results, nil // nothing to write: the rollback ends the read-only work
	}
	var upK, upV, delK [][]byte
	for _, k := range st.order {
		if v := st.writes[k]; v == nil {
			delK = append(delK, []byte(k))
		} else {
			upK, upV = append(upK, []byte(k)), append(upV, v)
		}
	}
	pb := &pgx.Batch{}
	if len(upK) > 0 {
		pb.Queue(`INSERT INTO coffer_kv (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[])
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, upK, upV)
	}
	if len(delK) > 0 {
		pb.Queue(`DELETE FROM coffer_kv WHERE key = ANY($1::bytea[])`, delK)
	}
	pb.Queue(`SELECT pg_notify($1, $2)`, ChannelKeys, b.keysPayload(st.order))
	if err := tx.SendBatch(ctx, pb).Close(); err != nil {
		return nil, b.opErr(ctx, "write", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, b.opErr(ctx, "commit", err)
	}
	return results, nil
}

// keyNote is the payload on ChannelKeys.
type keyNote struct {
	Origin string   `json:"o"`
	Keys   []string `json:"k,omitempty"`
	All    bool     `json:"all,omitempty"`
}

func (b *Backend) keysPayload(keys []string) string {
	n := keyNote{Origin: b.origin, Keys: keys}
	size := 32
	for _, k := range keys {
		size += len(k) + 3
		if !utf8.ValidString(k) || size > maxPayload {
			n = keyNote{Origin: b.origin, All: true}
			break
		}
	}
	raw, _ := json.Marshal(n)
	if len(raw) > maxPayload { // escaping made it longer than estimated
		raw, _ = json.Marshal(keyNote{Origin: b.origin, All: true})
	}
	return string(raw)
}

func (b *Backend) failPending() {
	for {
		select {
		case r := <-b.queue:
			r.done <- storage.ErrClosed
		default:
			return
		}
	}
}

// runIsolated runs fn, turning a panic into that request's error so one
// bad transaction cannot take down the commit loop and its batch-mates.
func runIsolated(fn func(storage.Tx) error, tx storage.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("storage transaction panicked: %v", p)
		}
	}()
	return fn(tx)
}

// Stats reports how many transactions were committed, how many Update calls
// they carried, and how many times a batch was run again after a conflict.
func (b *Backend) Stats() (commits, writes, retries uint64) {
	return b.commits.Load(), b.writes.Load(), b.retries.Load()
}

// Close stops the commit loop after the transaction in flight, stops
// listening and closes the pool. Update calls still queued fail with
// storage.ErrClosed.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
		<-b.done
		b.subMu.Lock()
		cancel, done := b.listenCancel, b.listenDone
		b.subMu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
		b.pool.Close()
	})
	return nil
}

// opErr maps a database error: a closed backend, a caller's cancellation,
// or storage.ErrUnavailable when the database cannot be reached in time.
func (b *Backend) opErr(ctx context.Context, op string, err error) error {
	if b.isClosed() {
		return storage.ErrClosed
	}
	return fmt.Errorf("postgres %s: %w", op, mapErr(err))
}

func mapErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case len(pe.Code) == 5 && pe.Code[:2] == "08", // connection_exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, cannot connect now
			pe.Code == "53300": // too_many_connections
			return fmt.Errorf("%w: %s", storage.ErrUnavailable, pe.Code)
		}
		return err
	}
	// Not a server's answer: a connection refused, reset or timed out.
	// The message may name the host but never the password.
	return fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
}

// overlay is one request's view inside a shared transaction: reads see the
// committed state plus earlier requests of the batch plus its own writes.
type overlay struct {
	st     *batchState
	writes map[string][]byte // nil value = delete
	order  []string          // keys of writes in first-write order
}

func (o *overlay) Get(key string) ([]byte, error) {
	if v, ok := o.writes[key]; ok {
		return clone(v)
	}
	if v, ok := o.st.writes[key]; ok {
		return clone(v)
	}
	if o.st.err != nil {
		return nil, o.st.err
	}
	var v []byte
	err := o.st.tx.QueryRow(o.st.ctx, `SELECT value FROM coffer_kv WHERE key = $1`, []byte(key)).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, storage.ErrNotFound
	case err != nil:
		o.st.err = fmt.Errorf("postgres get: %w", mapErr(err))
		if retryable(err) {
			o.st.err = err // keep the PgError so the batch is retried
		}
		return nil, o.st.err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func clone(v []byte) ([]byte, error) {
	if v == nil {
		return nil, storage.ErrNotFound
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

func (o *overlay) Put(key string, value []byte) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	o.set(key, append(make([]byte, 0, len(value)), value...))
	return nil
}

func (o *overlay) Delete(key string) error {
	o.set(key, nil)
	return nil
}

func (o *overlay) set(key string, v []byte) {
	if _, ok := o.writes[key]; !ok {
		o.order = append(o.order, key)
	}
	o.writes[key] = v
}

// ForEach implements storage.Snapshotter from one REPEATABLE READ
// transaction, so a backup taken while serving is consistent.
func (b *Backend) ForEach(ctx context.Context, fn func(key string, value []byte) error) error {
	if b.isClosed() {
		return storage.ErrClosed
	}
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return b.opErr(ctx, "snapshot", err)
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, `SELECT key, value FROM coffer_kv ORDER BY key`)
	if err != nil {
		return b.opErr(ctx, "snapshot", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return b.opErr(ctx, "snapshot", err)
		}
		if v == nil {
			v = []byte{}
		}
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return b.opErr(ctx, "snapshot", err)
	}
	return nil
}
