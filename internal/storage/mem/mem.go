// Package mem is an in-memory storage backend for tests and the dev server.
// Nothing survives the process.
package mem

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/coffer-dev/coffer/internal/storage"
)

// Backend is an in-memory storage.Backend. The zero value is not usable; call New.
type Backend struct {
	mu     sync.RWMutex      // guards the fields below
	data   map[string][]byte // key -> value
	keys   []string          // sorted keys of data
	closed bool
}

// New returns an empty backend.
func New() *Backend {
	return &Backend{data: make(map[string][]byte)}
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, storage.ErrClosed
	}
	v, ok := b.data[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return slices.Clone(v), nil
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, storage.ErrClosed
	}
	start := prefix
	if after >= start {
		start = after + "\x00"
	}
	i := sort.SearchStrings(b.keys, start)
	var out []string
	for ; i < len(b.keys) && strings.HasPrefix(b.keys[i], prefix); i++ {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, b.keys[i])
	}
	return out, nil
}

// Update implements storage.Backend. Writes are buffered and applied only
// when fn succeeds, so a failing fn leaves no trace.
func (b *Backend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return storage.ErrClosed
	}
	tx := &tx{b: b, writes: make(map[string][]byte)}
	if err := fn(tx); err != nil {
		return err
	}
	for k, v := range tx.writes {
		b.setLocked(k, v)
	}
	return nil
}

// setLocked writes or (v == nil) deletes k; b.mu must be held.
func (b *Backend) setLocked(k string, v []byte) {
	_, exists := b.data[k]
	i := sort.SearchStrings(b.keys, k)
	switch {
	case v == nil && exists:
		delete(b.data, k)
		b.keys = slices.Delete(b.keys, i, i+1)
	case v != nil:
		if !exists {
			b.keys = slices.Insert(b.keys, i, k)
		}
		b.data[k] = v
	}
}

// Close implements storage.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// tx buffers writes; a nil value marks a delete.
type tx struct {
	b      *Backend
	writes map[string][]byte
}

func (t *tx) Get(key string) ([]byte, error) {
	if v, ok := t.writes[key]; ok {
		if v == nil {
			return nil, storage.ErrNotFound
		}
		return slices.Clone(v), nil
	}
	v, ok := t.b.data[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (t *tx) Put(key string, value []byte) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	v := make([]byte, len(value))
	copy(v, value)
	t.writes[key] = v
	return nil
}

func (t *tx) Delete(key string) error {
	t.writes[key] = nil
	return nil
}

// ForEach implements storage.Snapshotter.
func (b *Backend) ForEach(ctx context.Context, fn func(key string, value []byte) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return storage.ErrClosed
	}
	for _, k := range b.keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(k, b.data[k]); err != nil {
			return err
		}
	}
	return nil
}
