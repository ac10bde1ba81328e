package seal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func TestShamirInitUnseal(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	b := barrier.New(be, nil)
	m := New(be, b, "")
	keys, err := m.Init(ctx, 5, 3)
	if err != nil || len(keys) != 5 {
		t.Fatalf("Init = %d keys, %v", len(keys), err)
	}
	if _, err := m.Init(ctx, 5, 3); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second Init = %v", err)
	}
	m.Seal()
	// Any three distinct keys unseal; a repeated key does not count twice.
	for i, k := range []string{keys[4], keys[4], keys[1]} {
		if done, err := m.Unseal(ctx, k); err != nil || done {
			t.Fatalf("Unseal #%d = %v, %v, want false, nil", i, done, err)
		}
	}
	if m.Progress() != 2 {
		t.Fatalf("Progress = %d, want 2", m.Progress())
	}
	if done, err := m.Unseal(ctx, keys[2]); err != nil || !done || b.Sealed() {
		t.Fatalf("third key: done=%v err=%v sealed=%v", done, err, b.Sealed())
	}

	// Keys from another server's init do not open this one.
	be2 := mem.New()
	m2 := New(be2, barrier.New(be2, nil), "")
	foreign, _ := m2.Init(ctx, 3, 2)
	m.Seal()
	m.Unseal(ctx, foreign[0])
	m.Unseal(ctx, foreign[1])
	if _, err := m.Unseal(ctx, foreign[2]); !errors.Is(err, ErrInvalidKeys) {
		t.Fatalf("foreign keys = %v, want ErrInvalidKeys", err)
	}
	if m.Progress() != 0 {
		t.Fatal("progress not reset after invalid keys")
	}
	if _, err := m.Unseal(ctx, "not base64!"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad key = %v", err)
	}
}

func TestInitValidation(t *testing.T) {
	for _, tt := range []struct{ shares, threshold int }{{0, 0}, {5, 6}, {5, 1}, {33, 3}, {3, 0}} {
		be := mem.New()
		m := New(be, barrier.New(be, nil), "")
		if _, err := m.Init(context.Background(), tt.shares, tt.threshold); err == nil {
			t.Errorf("Init(%d, %d) = nil, want error", tt.shares, tt.threshold)
		}
	}
}

func TestKeyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "unseal.key")
	be := mem.New()
	b := barrier.New(be, nil)
	m := New(be, b, path)
	keys, err := m.Init(ctx, 0, 0)
	if err != nil || keys != nil {
		t.Fatalf("Init = %v, %v", keys, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", st.Mode().Perm())
	}
	m.Seal()
	if err := m.AutoUnseal(ctx); err != nil || b.Sealed() {
		t.Fatalf("AutoUnseal = %v, sealed=%v", err, b.Sealed())
	}
	if _, err := m.Unseal(ctx, "x"); !errors.Is(err, ErrWrongSeal) {
		t.Fatalf("Unseal on keyfile seal = %v", err)
	}
	os.Chmod(path, 0o644)
	m.Seal()
	if err := m.AutoUnseal(ctx); err == nil {
		t.Fatal("AutoUnseal accepted a world-readable key file")
	}
	// Init refuses to overwrite an existing key file.
	be2 := mem.New()
	if _, err := New(be2, barrier.New(be2, nil), path).Init(ctx, 0, 0); err == nil {
		t.Fatal("Init overwrote an existing key file")
	}
}

// TestUnsealProgressExpires: keys presented toward an unseal are dropped
// after QuorumTimeout, so a stalled attempt cannot be completed later by a
// single key holder.
func TestUnsealProgressExpires(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	b := barrier.New(be, nil)
	m := New(be, b, "")
	keys, err := m.Init(ctx, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	m.Seal()
	m.Unseal(ctx, keys[0])
	m.Unseal(ctx, keys[1])
	m.mu.Lock()
	m.started = m.started.Add(-QuorumTimeout - time.Second) // the holders walked away
	m.mu.Unlock()
	if m.Progress() != 0 {
		t.Fatalf("Progress after the timeout = %d, want 0", m.Progress())
	}
	if done, err := m.Unseal(ctx, keys[2]); err != nil || done {
		t.Fatalf("the third key alone after the timeout: done=%v err=%v, want still sealed", done, err)
	}
	if !b.Sealed() {
		t.Fatal("a single key holder completed a stalled unseal")
	}
}
