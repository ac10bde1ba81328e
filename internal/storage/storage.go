// Package storage defines the contract every Coffer storage backend meets:
// an ordered key/value store with atomic, durable multi-key writes.
//
// Backends know nothing of encryption; the barrier sits above them and hands
// them ciphertext. Keys are slash-separated strings; values are opaque bytes.
// The conformance suite in storagetest is the executable form of this contract.
package storage

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Get when a key does not exist.
var ErrNotFound = errors.New("storage: key not found")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("storage: backend closed")

// ErrUnavailable wraps the errors of a backend that cannot reach its
// database (connection refused or lost, timeout). The operation may succeed
// later without any change on the caller's side; the API answers 503.
var ErrUnavailable = errors.New("storage: database unavailable")

// MaxKeyLen bounds the length of a key in bytes.
const MaxKeyLen = 1024

// Tx is the view a write transaction has of the store. A Tx is only valid
// inside the function passed to Backend.Update and must not be retained.
type Tx interface {
	// Get returns the value of key as seen by this transaction, including
	// its own earlier writes, or ErrNotFound.
	Get(key string) ([]byte, error)
	// Put sets key to value. The backend copies value.
	Put(key string, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key string) error
}

// Backend is an ordered key/value store.
//
// Update runs fn in a write transaction: either every write fn made is
// committed and durable (fsync or a database commit) when Update returns
// nil, or none is. If fn returns an error nothing it wrote is applied and
// Update returns that error unchanged. Backends may commit the transactions of
// concurrent Update calls together (group commit); fn may therefore run on a
// goroutine other than the caller's and must not block on the caller.
// Backends shared by several processes may also run fn more than once when
// the transaction conflicts with another process and is retried, so fn must
// set (not accumulate into) whatever results it reports to the caller.
//
// All methods are safe for concurrent use.
type Backend interface {
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns up to limit keys that start with prefix and sort strictly
	// after the key `after` (an empty after starts at the beginning), in
	// ascending byte order. limit <= 0 means no limit.
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// ErrBadKey is returned by Tx.Put for an empty or over-long key.
var ErrBadKey = errors.New("storage: key is empty or longer than 1024 bytes")

// CheckKey reports whether key is acceptable to every backend.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return ErrBadKey
	}
	return nil
}

// Snapshotter is the optional capability of backends that can visit every
// record in one consistent read transaction, for backups.
type Snapshotter interface {
	// ForEach calls fn for every key and value in key order, from one
	// consistent view of the store. fn must not retain value.
	ForEach(ctx context.Context, fn func(key string, value []byte) error) error
}

// Watcher is the optional capability of backends shared by several Coffer
// nodes: it tells each node which keys the others changed, so that caches
// can forget them.
type Watcher interface {
	// Watch registers fn. The backend calls it on its own goroutine, soon
	// after each commit by another user of the store, with the keys that
	// commit wrote or deleted; keys == nil means that anything may have
	// changed (notifications were lost, for example across a reconnect).
	// Commits made through this Backend value are not reported. fn must
	// return quickly. Register before the backend is used.
	Watch(fn func(keys []string))
}
