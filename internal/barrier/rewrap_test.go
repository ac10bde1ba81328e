package barrier

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
)

// hookBackend calls its hooks on List (with the call's number) and on each
// Get inside a transaction, and may keep the last transaction function.
type hookBackend struct {
	storage.Backend
	lists   int
	onList  func(n int)
	onTxGet func(key string)
	keepFn  bool
	kept    func(storage.Tx) error
}

func (h *hookBackend) List(ctx context.Context, p, a string, l int) ([]string, error) {
	h.lists++
	if h.onList != nil {
		h.onList(h.lists)
	}
	return h.Backend.List(ctx, p, a, l)
}

func (h *hookBackend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if h.keepFn {
		h.kept = fn
	}
	return h.Backend.Update(ctx, func(tx storage.Tx) error { return fn(&hookTx{Tx: tx, h: h}) })
}

type hookTx struct {
	storage.Tx
	h *hookBackend
}

func (t *hookTx) Get(key string) ([]byte, error) {
	if t.h.onTxGet != nil {
		t.h.onTxGet(key)
	}
	return t.Tx.Get(key)
}

// staleSetup writes count records on term 1, rotates to term 2 and puts a
// hookBackend between the barrier and its storage.
func staleSetup(t *testing.T, count int) (*Barrier, storage.Backend, *hookBackend, []byte) {
	t.Helper()
	b, be, root := newUnsealed(t)
	for i := 0; i < count; i++ {
		put(t, b, fmt.Sprintf("secret/d/%04d", i), []byte("v"))
	}
	if _, err := b.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	hb := &hookBackend{Backend: be}
	b.backend = hb
	return b, be, hb, root
}

// firstPage is how many records Rewrap's first page of 256 keys holds: the
// keyring sorts before them.
const firstPage = 256 - 1

func countOnTerm(t *testing.T, be storage.Backend, count int, term uint32) int {
	t.Helper()
	n := 0
	for i := 0; i < count; i++ {
		if termOf(t, be, fmt.Sprintf("secret/d/%04d", i)) == term {
			n++
		}
	}
	return n
}

// TestRewrapStopsAtSeal: a seal between two pages stops Rewrap with
// ErrSealed; no record is decrypted or rewritten after it.
func TestRewrapStopsAtSeal(t *testing.T) {
	b, be, hb, _ := staleSetup(t, 1000)
	hb.onList = func(n int) {
		if n == 2 { // the first page is done
			b.Seal()
		}
	}
	n, err := b.Rewrap(context.Background())
	if !errors.Is(err, ErrSealed) || n != firstPage {
		t.Fatalf("Rewrap after a seal between pages = %d, %v; want %d, ErrSealed", n, err, firstPage)
	}
	if got := countOnTerm(t, be, 1000, 1); got != 1000-firstPage {
		t.Fatalf("%d records still on term 1, want %d (none rewritten after the seal)", got, 1000-firstPage)
	}
	if !b.Sealed() {
		t.Fatal("the barrier is no longer sealed")
	}
}

// TestRewrapStopsAtSealMidPage: a seal while a page's transaction runs
// stops Rewrap at the next record and rolls the page back.
func TestRewrapStopsAtSealMidPage(t *testing.T) {
	b, be, hb, _ := staleSetup(t, 100)
	gets := 0
	hb.onTxGet = func(string) {
		if gets++; gets == 10 {
			b.Seal()
		}
	}
	n, err := b.Rewrap(context.Background())
	if !errors.Is(err, ErrSealed) || n != 0 {
		t.Fatalf("Rewrap with a seal mid-page = %d, %v; want 0, ErrSealed", n, err)
	}
	if gets != 10 {
		t.Fatalf("Rewrap read %d records in its transaction, want it to stop at the first after the seal (10)", gets)
	}
	if got := countOnTerm(t, be, 100, 1); got != 100 {
		t.Fatalf("%d of 100 records still on term 1, want all (the page rolled back)", got)
	}
}

// TestRewrapStopsWhenKeysReplaced: a seal and unseal, or a rotation, while
// Rewrap runs replaces the keys it started with: it stops, and a new Rewrap
// finishes with the current keys.
func TestRewrapStopsWhenKeysReplaced(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, b *Barrier, root []byte)
		term    uint32 // active after the replacement
		again   int    // records the second Rewrap rewrites
	}{
		{"seal and unseal", func(t *testing.T, b *Barrier, root []byte) {
			b.Seal()
			if err := b.Unseal(context.Background(), root); err != nil {
				t.Error(err)
			}
		}, 2, 600 - firstPage},
		{"rotate", func(t *testing.T, b *Barrier, root []byte) {
			if _, err := b.Rotate(context.Background()); err != nil {
				t.Error(err)
			}
		}, 3, 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, be, hb, root := staleSetup(t, 600)
			hb.onList = func(n int) {
				if n == 2 {
					tc.replace(t, b, root)
				}
			}
			n, err := b.Rewrap(context.Background())
			if !errors.Is(err, ErrKeyringChanged) || n != firstPage {
				t.Fatalf("Rewrap = %d, %v; want %d, ErrKeyringChanged", n, err, firstPage)
			}
			hb.onList = nil
			if n, err := b.Rewrap(context.Background()); err != nil || n != tc.again {
				t.Fatalf("second Rewrap = %d, %v", n, err)
			}
			if got := countOnTerm(t, be, 600, tc.term); got != 600 {
				t.Fatalf("%d of 600 records on term %d after the second Rewrap", got, tc.term)
			}
		})
	}
}

// TestRewrapDropsKeys: once Rewrap has returned and the barrier is sealed,
// nothing Rewrap left behind (here: a transaction function a backend kept)
// still reaches the keys.
func TestRewrapDropsKeys(t *testing.T) {
	b, _, hb, _ := staleSetup(t, 10)
	hb.keepFn = true
	var freed atomic.Bool
	runtime.SetFinalizer(b.keys.Load(), func(*keyset) { freed.Store(true) })
	if n, err := b.Rewrap(context.Background()); err != nil || n != 10 {
		t.Fatalf("Rewrap = %d, %v", n, err)
	}
	if hb.kept == nil {
		t.Fatal("the backend kept no transaction function")
	}
	b.Seal()
	for deadline := time.Now().Add(2 * time.Second); !freed.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("the keys Rewrap used are still reachable after it returned and the barrier sealed")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(hb)
}
