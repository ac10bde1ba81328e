//go:build !linux

package audit

import "os"

// reserve is a no-op where fallocate is not available.
func (w *writer) reserve(int64) {}

// release is a no-op where nothing is reserved.
func (w *writer) release() {}

// syncData makes f's written data durable.
func syncData(f *os.File) error { return f.Sync() }
