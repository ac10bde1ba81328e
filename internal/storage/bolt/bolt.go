// Package bolt is the embedded storage backend: one bbolt file, ACID, fsync
// on every commit, with group commit so that concurrent writers share one
// transaction and one fsync.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/groupcommit"
)

var bucket = []byte("coffer")

// maxBatch bounds how many Update calls share one transaction.
const maxBatch = 512

// maxLinger bounds how long a commit waits for more writers to join it.
const maxLinger = time.Millisecond

// Backend is a storage.Backend on a bbolt file. Open it with Open.
type Backend struct {
	db *bbolt.DB

	queue chan *request // pending Update calls, drained by commitLoop
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when commitLoop returns

	commits, writes atomic.Uint64 // transactions committed, Update calls in them

	mu        sync.RWMutex // guards closed; held for reading while enqueueing
	closed    bool
	closeOnce sync.Once
}

type request struct {
	fn   func(storage.Tx) error
	done chan error // buffered, receives exactly one result
}

// Open opens (creating if needed) the database file at path with 0600
// permissions. It fails rather than waits if another process holds the file.
func Open(path string) (*Backend, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open bolt database %s: %w", path, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("create bucket in %s: %w", path, err)
	}
	b := &Backend{
		db:    db,
		queue: make(chan *request, maxBatch),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go b.commitLoop()
	return b, nil
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if v == nil {
			return storage.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, mapErr(err)
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	var out []string
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		p := []byte(prefix)
		var k []byte
		if after >= prefix {
			k, _ = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, _ = c.Next()
			}
		} else {
			k, _ = c.Seek(p)
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, string(k))
		}
		return nil
	})
	return out, mapErr(err)
}

// Update implements storage.Backend. Calls that arrive while a commit is in
// flight are gathered into the next transaction; each fn runs against an
// overlay, so one failing fn discards only its own writes.
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
		b.commit(batch)
	}
}

// commit runs batch in one bbolt transaction and reports to every request.
func (b *Backend) commit(batch []*request) {
	results := make([]error, len(batch))
	err := b.db.Update(func(btx *bbolt.Tx) error {
		bk := btx.Bucket(bucket)
		for i, r := range batch {
			ov := &overlay{bk: bk, writes: map[string][]byte{}}
			if err := runIsolated(r.fn, ov); err != nil {
				results[i] = err
				continue
			}
			for _, k := range ov.order {
				v := ov.writes[k]
				var err error
				if v == nil {
					err = bk.Delete([]byte(k))
				} else {
					err = bk.Put([]byte(k), v)
				}
				if err != nil {
					return fmt.Errorf("write %d-byte key: %w", len(k), err)
				}
			}
		}
		return nil
	})
	b.commits.Add(1)
	b.writes.Add(uint64(len(batch)))
	for i, r := range batch {
		if err != nil {
			r.done <- mapErr(err)
		} else {
			r.done <- results[i]
		}
	}
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

// Stats reports how many transactions were committed and how many Update
// calls they carried; writes/commits is the average group-commit batch.
func (b *Backend) Stats() (commits, writes uint64) { return b.commits.Load(), b.writes.Load() }

// Close stops the commit loop after the transaction in flight and closes
// the file. Update calls still queued fail with storage.ErrClosed.
func (b *Backend) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
		<-b.done
		err = b.db.Close()
	})
	return err
}

func mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return storage.ErrClosed
	}
	return err
}

// overlay is one request's view inside a shared transaction: reads see the
// committed state plus earlier requests of the batch plus its own writes.
type overlay struct {
	bk     *bbolt.Bucket
	writes map[string][]byte // nil value = delete
	order  []string          // keys of writes in first-write order
}

func (o *overlay) Get(key string) ([]byte, error) {
	if v, ok := o.writes[key]; ok {
		if v == nil {
			return nil, storage.ErrNotFound
		}
		return bytes.Clone(v), nil
	}
	v := o.bk.Get([]byte(key))
	if v == nil {
		return nil, storage.ErrNotFound
	}
	return bytes.Clone(v), nil
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

// ForEach implements storage.Snapshotter from one read transaction, so a
// backup taken while serving is consistent.
func (b *Backend) ForEach(ctx context.Context, fn func(key string, value []byte) error) error {
	return mapErr(b.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(string(k), v)
		})
	}))
}
