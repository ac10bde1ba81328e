package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures Open. Zero values mean the documented defaults.
type Options struct {
	// Dir holds the log files. Open creates it with mode 0700; files are
	// created 0600. Required.
	Dir string

	// MaxFileBytes rotates the active file before a record would take it past
	// this size (default 64 MiB). A file always holds at least one record and
	// may exceed the limit by its closing checkpoint record.
	MaxFileBytes int64

	// MaxFileAge rotates the active file at the first append after its first
	// record is this old (default 24h).
	MaxFileAge time.Duration

	// Retention deletes rotated files that were rotated out longer than this
	// ago (default 90 days; negative keeps everything). A file's rotation
	// time is the time of the first record of the file after it. Retention is
	// purely time based: a Reader that falls further behind gets ErrPruned
	// (on Unix an already open file stays readable until the Reader leaves it).
	// It runs at Open and after each rotation; the active file is never deleted.
	Retention time.Duration

	// CheckpointEvery appends a signed checkpoint after this many records
	// (default 1000). Checkpoints are also written before a rotation and by
	// Close.
	CheckpointEvery int

	// SigningKey signs checkpoints. Required. The Log keeps it for its
	// lifetime and never logs it.
	SigningKey ed25519.PrivateKey

	// RepairTornTail lets Open repair a newest file that ends with an
	// incomplete line (see the package comment). Without it such a file
	// makes Open fail with ErrTornTail.
	RepairTornTail bool

	// Now is the clock (default time.Now).
	Now func() time.Time

	// Logger receives operational events (rotation, failures, recovery);
	// never record contents. Default: discard.
	Logger *slog.Logger

	// Test hooks.
	openFile   func(name string, flag int, perm os.FileMode) (*os.File, error) // default os.OpenFile; opens the active file
	beforeSync func()                                                          // called before each fsync of the active file
}

// Defaults applied by Open.
const (
	DefaultMaxFileBytes    = 64 << 20
	DefaultMaxFileAge      = 24 * time.Hour
	DefaultRetention       = 90 * 24 * time.Hour
	DefaultCheckpointEvery = 1000
)

func (o *Options) normalize() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	case len(o.SigningKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("%w: SigningKey must be an Ed25519 private key", ErrInvalidOptions)
	case o.MaxFileBytes < 0, o.MaxFileAge < 0, o.CheckpointEvery < 0:
		return fmt.Errorf("%w: negative MaxFileBytes, MaxFileAge or CheckpointEvery", ErrInvalidOptions)
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxFileAge == 0 {
		o.MaxFileAge = DefaultMaxFileAge
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.openFile == nil {
		o.openFile = os.OpenFile
	}
	return nil
}

// Log is an open audit log directory. Its methods are safe for concurrent
// use. A Log owns one writer goroutine, started by Open and stopped by Close;
// every Log must be closed.
type Log struct {
	opts  Options // normalized; read-only after Open
	keyID string
	log   *slog.Logger

	wake chan struct{} // capacity 1: the queue may be non-empty
	stop chan struct{} // closed by Close to stop the writer
	done chan struct{} // closed when the writer goroutine has exited

	mu     sync.Mutex // guards queue, wakeAt and closed
	queue  []*pending // appends waiting for the writer, in arrival order
	wakeAt int        // an Append that makes the queue this long signals wake
	closed bool       // set by Close; later Appends fail with ErrClosed

	healthMu  sync.Mutex // guards healthErr
	healthErr error      // last write error, nil once a write succeeds again

	failures atomic.Uint64 // failed write attempts
	lastSeq  atomic.Uint64 // seq of the last durable record
	syncs    atomic.Uint64 // fsyncs of the active file (tests check group commit)

	closeOnce sync.Once
	closeErr  error // set by the writer goroutine before it closes done

	unlock func() error // releases the directory lock

	// w is owned by the writer goroutine; Open uses it before starting the
	// goroutine.
	w writer
}

// writer is the state of the active file and the chain head.
type writer struct {
	f       *os.File // active file, nil after a failed (re)open
	path    string
	created time.Time // time of the active file's first record
	size    int64     // bytes of f that are durable: the end of the chain
	limit   int64     // f may hold our own unacknowledged bytes up to here
	dirty   bool      // f must be reopened and truncated to size before the next write
	c       chain     // durable chain head
	buf     []byte    // reused line buffer

	// reserved is how far f's blocks are allocated ahead (see reserve);
	// noReserve is set when its file system cannot preallocate.
	reserved  int64
	noReserve bool
}

// pending is one Append waiting for the writer.
type pending struct {
	body []byte // from encodeBody
	typ  string
	done chan error // capacity 1; receives the outcome

	// Set by the writer before it sends on done.
	seq        uint64
	prev, hash string
}

// Open opens or creates the log in opts.Dir, continues the chain from the
// last record on disk, writes a TypeStart record and returns once it is
// durable. It checks the last record of the newest file (its hash must
// verify) but not the whole chain; use Verify for that. See the package
// comment for how a torn last line is handled.
//
// Open fails with ErrInvalidOptions, ErrLocked, ErrTornTail, ErrCorrupt, or
// an error wrapping ErrUnavailable if the start record cannot be written.
func Open(opts Options) (*Log, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit directory: %w", err)
	}
	if fi, err := os.Stat(opts.Dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		opts.Logger.Warn("audit directory is accessible to other users", "dir", opts.Dir, "mode", fi.Mode().Perm().String())
	}
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		opts:   opts,
		keyID:  PublicKeyID(opts.SigningKey.Public().(ed25519.PublicKey)),
		log:    opts.Logger,
		wake:   make(chan struct{}, 1),
		wakeAt: 1,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		unlock: unlock,
	}
	reason, err := l.load()
	if err == nil {
		err = l.writeStart(reason)
	}
	if err != nil {
		if l.w.f != nil {
			l.w.f.Close()
		}
		unlock()
		return nil, err
	}
	l.prune(l.now())
	l.log.Info("audit log opened", "dir", opts.Dir, "last_seq", l.LastSeq(), "file", l.w.path)
	go l.run()
	return l, nil
}

func (l *Log) writeStart(reason string) error {
	body, err := encodeBody(&Record{Time: l.now(), Type: TypeStart, Reason: reason})
	if err != nil {
		return err
	}
	p := &pending{body: body, typ: TypeStart, done: make(chan error, 1)}
	l.commit([]*pending{p})
	if err := <-p.done; err != nil {
		return fmt.Errorf("write start record: %w", err)
	}
	return nil
}

// Append makes r durable as the next record of the log: it returns nil only
// after the record has been written and fsynced. Concurrent Appends share
// one write and fsync (group commit).
//
// Append sets r.Type to TypeRequest if empty and r.Time to the current time
// if zero (times are stored in UTC), and on success sets r.Seq, r.Prev and
// r.Hash; caller-set values of those three are ignored. r must not be
// modified during the call; the Log keeps no reference to r afterwards, even
// when ctx ends the call early.
//
// Any error means the record may not be durable and the caller must refuse
// the request it describes. Write and fsync failures wrap ErrUnavailable;
// the Log stays unhealthy (see Healthy) and retries on each later Append,
// recovering once a write and fsync succeed. Other errors: ErrInvalidRecord,
// ErrClosed, or ctx's error (the record may still be written later).
func (l *Log) Append(ctx context.Context, r *Record) error {
	if r == nil {
		return fmt.Errorf("%w: nil record", ErrInvalidRecord)
	}
	if r.Type == TypeStart || r.Type == TypeCheckpoint || r.Checkpoint != nil {
		return fmt.Errorf("%w: start and checkpoint records are written only by the log", ErrInvalidRecord)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit append: %w", err)
	}
	if r.Type == "" {
		r.Type = TypeRequest
	}
	if r.Time.IsZero() {
		r.Time = l.now()
	} else {
		r.Time = r.Time.UTC()
	}
	p := pendingPool.Get().(*pending)
	body, err := encodeBodyTo(p.body, r)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	if lineLen(math.MaxUint64, body, 64) > MaxRecordBytes {
		return fmt.Errorf("%w: encoded record longer than %d bytes", ErrInvalidRecord, MaxRecordBytes)
	}
	p.body, p.typ = body, r.Type

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, p)
	signal := len(l.queue) >= l.wakeAt
	l.mu.Unlock()
	if signal {
		select {
		case l.wake <- struct{}{}:
		default: // the writer is already due to look at the queue
		}
	}

	select {
	case err := <-p.done:
		if err == nil {
			r.Seq, r.Prev, r.Hash = p.seq, p.prev, p.hash
		}
		// The writer is done with p: its outcome was sent.
		recycle(p)
		return err
	case <-ctx.Done():
		// The writer may still hold p; it is left to the garbage collector.
		return fmt.Errorf("audit append: %w", ctx.Err())
	}
}

// pendingPool reuses pending Appends and their body buffers: every request
// appends one or two records.
var pendingPool = sync.Pool{New: func() any { return &pending{body: make([]byte, 0, 512), done: make(chan error, 1)} }}

// recycle returns p to the pool once its outcome has been received.
func recycle(p *pending) {
	if cap(p.body) > 16<<10 {
		return // do not keep a rare large buffer alive
	}
	p.body, p.typ, p.seq, p.prev, p.hash = p.body[:0], "", 0, "", ""
	pendingPool.Put(p)
}

// Syncs returns how many times the active file was fsynced since Open;
// with LastSeq it gives the records made durable per fsync (group commit).
func (l *Log) Syncs() uint64 { return l.syncs.Load() }

// Healthy returns nil if the last write succeeded, or the error of the last
// failed write (wrapping ErrUnavailable) while the Log cannot write.
func (l *Log) Healthy() error {
	l.healthMu.Lock()
	defer l.healthMu.Unlock()
	return l.healthErr
}

// Failures returns the number of failed write attempts since Open, for a
// metric. One attempt may carry many records.
func (l *Log) Failures() uint64 { return l.failures.Load() }

// LastSeq returns the seq of the last durable record.
func (l *Log) LastSeq() uint64 { return l.lastSeq.Load() }

// NewReader returns a Reader over this log's directory (see the package
// function NewReader) that never returns a record before it is durable, so
// a record that a failed fsync rolls back is never seen. Sinks in the same
// process should use it.
func (l *Log) NewReader(afterSeq uint64) (*Reader, error) {
	r, err := NewReader(l.opts.Dir, afterSeq)
	if err != nil {
		return nil, err
	}
	r.limit = l.LastSeq
	return r, nil
}

// Close writes a final checkpoint (unless the last record already is one),
// fsyncs, closes the file, releases the directory and stops the writer
// goroutine, after writing every Append already queued. Appends after Close
// fail with ErrClosed. Close returns an error wrapping ErrUnavailable if the
// final checkpoint could not be written; later calls return the same error.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
		<-l.done
	})
	return l.closeErr
}

func (l *Log) now() time.Time { return l.opts.Now().UTC().Round(0) }

// setHealth records the outcome of a write attempt.
func (l *Log) setHealth(err error) {
	l.healthMu.Lock()
	was := l.healthErr
	l.healthErr = err
	l.healthMu.Unlock()
	switch {
	case err != nil:
		l.failures.Add(1)
		l.log.Error("audit write failed", "err", err)
	case was != nil:
		l.log.Info("audit log recovered", "last_seq", l.LastSeq())
	}
}

// unavailable wraps a write error.
func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
