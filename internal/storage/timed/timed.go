// Package timed wraps a storage.Backend to report how long each operation
// takes, for the storage latency metric.
package timed

import (
	"context"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
)

// Observer receives the duration of one backend operation: op is "get",
// "list", "update" or "snapshot". It must be safe for concurrent use.
type Observer func(op string, d time.Duration)

// Wrap returns b with every operation timed. The result is a
// storage.Snapshotter exactly when b is.
func Wrap(b storage.Backend, observe Observer) storage.Backend {
	t := &backend{b: b, observe: observe}
	if s, ok := b.(storage.Snapshotter); ok {
		return &snapshotter{backend: t, s: s}
	}
	return t
}

type backend struct {
	b       storage.Backend
	observe Observer
}

func (t *backend) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	v, err := t.b.Get(ctx, key)
	t.observe("get", time.Since(start))
	return v, err
}

func (t *backend) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	start := time.Now()
	keys, err := t.b.List(ctx, prefix, after, limit)
	t.observe("list", time.Since(start))
	return keys, err
}

func (t *backend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	start := time.Now()
	err := t.b.Update(ctx, fn)
	t.observe("update", time.Since(start))
	return err
}

func (t *backend) Close() error { return t.b.Close() }

type snapshotter struct {
	*backend
	s storage.Snapshotter
}

func (t *snapshotter) ForEach(ctx context.Context, fn func(key string, value []byte) error) error {
	start := time.Now()
	err := t.s.ForEach(ctx, fn)
	t.observe("snapshot", time.Since(start))
	return err
}
