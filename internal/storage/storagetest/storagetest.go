// Package storagetest is the conformance suite every storage.Backend passes.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/coffer-dev/coffer/internal/storage"
)

// Run runs the suite. open returns a new, empty backend; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) storage.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"GetMissing", testGetMissing},
		{"PutGetDelete", testPutGetDelete},
		{"AtomicMultiKey", testAtomicMultiKey},
		{"FailedUpdateLeavesNothing", testFailedUpdate},
		{"TxSeesOwnWrites", testTxSeesOwnWrites},
		{"ValuesAreCopied", testValuesAreCopied},
		{"List", testList},
		{"BadKey", testBadKey},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentFailuresIsolated", testConcurrentFailuresIsolated},
		{"CloseRefuses", testCloseRefuses},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := open(t)
			t.Cleanup(func() { b.Close() })
			tt.fn(t, b)
		})
	}
}

func put(t testing.TB, b storage.Backend, kv ...string) {
	t.Helper()
	err := b.Update(context.Background(), func(tx storage.Tx) error {
		for i := 0; i < len(kv); i += 2 {
			if err := tx.Put(kv[i], []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update(put %v) = %v", kv, err)
	}
}

func mustGet(t testing.TB, b storage.Backend, key, want string) {
	t.Helper()
	got, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q) = %v, want %q", key, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func mustMissing(t testing.TB, b storage.Backend, key string) {
	t.Helper()
	if v, err := b.Get(context.Background(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v, want ErrNotFound", key, v, err)
	}
}

func testGetMissing(t *testing.T, b storage.Backend) {
	mustMissing(t, b, "nope")
}

func testPutGetDelete(t *testing.T, b storage.Backend) {
	put(t, b, "a", "1")
	mustGet(t, b, "a", "1")
	put(t, b, "a", "2")
	mustGet(t, b, "a", "2")
	put(t, b, "empty", "")
	mustGet(t, b, "empty", "")
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	mustMissing(t, b, "a")
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Delete("never-was") }); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
}

func testAtomicMultiKey(t *testing.T, b storage.Backend) {
	put(t, b, "m/1", "x", "m/2", "y", "m/3", "z")
	mustGet(t, b, "m/1", "x")
	mustGet(t, b, "m/2", "y")
	mustGet(t, b, "m/3", "z")
}

func testFailedUpdate(t *testing.T, b storage.Backend) {
	put(t, b, "keep", "old")
	boom := errors.New("boom")
	err := b.Update(context.Background(), func(tx storage.Tx) error {
		tx.Put("keep", []byte("new"))
		tx.Put("fresh", []byte("v"))
		tx.Delete("keep")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want %v", err, boom)
	}
	mustGet(t, b, "keep", "old")
	mustMissing(t, b, "fresh")
}

func testTxSeesOwnWrites(t *testing.T, b storage.Backend) {
	put(t, b, "k", "before")
	err := b.Update(context.Background(), func(tx storage.Tx) error {
		if v, err := tx.Get("k"); err != nil || string(v) != "before" {
			return fmt.Errorf("first Get = %q, %v", v, err)
		}
		tx.Put("k", []byte("after"))
		if v, err := tx.Get("k"); err != nil || string(v) != "after" {
			return fmt.Errorf("Get after Put = %q, %v", v, err)
		}
		tx.Delete("k")
		if _, err := tx.Get("k"); !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("Get after Delete = %v, want ErrNotFound", err)
		}
		tx.Put("k", []byte("again"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, b, "k", "again")
}

func testValuesAreCopied(t *testing.T, b storage.Backend) {
	buf := []byte("value")
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put("c", buf) }); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X'
	mustGet(t, b, "c", "value")
	got, _ := b.Get(context.Background(), "c")
	got[0] = 'Y'
	mustGet(t, b, "c", "value")
}

func testList(t *testing.T, b storage.Backend) {
	put(t, b, "a/1", "", "a/2", "", "a/3", "", "a/3/x", "", "ab", "", "b/1", "", "a", "")
	tests := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"a/", "", 0, []string{"a/1", "a/2", "a/3", "a/3/x"}},
		{"a/", "", 2, []string{"a/1", "a/2"}},
		{"a/", "a/2", 0, []string{"a/3", "a/3/x"}},
		{"a/", "a/3", 1, []string{"a/3/x"}},
		{"a/", "a/25", 0, []string{"a/3", "a/3/x"}},
		{"a/", "a/3/x", 0, nil},
		{"a/", "0", 0, []string{"a/1", "a/2", "a/3", "a/3/x"}},
		{"a/", "zzz", 0, nil},
		{"", "", 0, []string{"a", "a/1", "a/2", "a/3", "a/3/x", "ab", "b/1"}},
		{"", "ab", 0, []string{"b/1"}},
		{"c", "", 0, nil},
	}
	for _, tt := range tests {
		got, err := b.List(context.Background(), tt.prefix, tt.after, tt.limit)
		if err != nil {
			t.Fatalf("List(%q, %q, %d) = %v", tt.prefix, tt.after, tt.limit, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q, %q, %d) = %q, want %q", tt.prefix, tt.after, tt.limit, got, tt.want)
		}
	}
}

func testBadKey(t *testing.T, b storage.Backend) {
	for _, k := range []string{"", string(bytes.Repeat([]byte("k"), storage.MaxKeyLen+1))} {
		err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put(k, []byte("v")) })
		if !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Put(%d-byte key) = %v, want ErrBadKey", len(k), err)
		}
	}
}

// testConcurrentUpdates runs read-modify-write increments from many
// goroutines; with serializable transactions no increment is lost.
func testConcurrentUpdates(t *testing.T, b storage.Backend) {
	const workers, each = 16, 25
	put(t, b, "counter", "0")
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := b.Update(context.Background(), func(tx storage.Tx) error {
					v, err := tx.Get("counter")
					if err != nil {
						return err
					}
					var n int
					fmt.Sscan(string(v), &n)
					return tx.Put("counter", []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	mustGet(t, b, "counter", fmt.Sprint(workers*each))
}

func testConcurrentFailuresIsolated(t *testing.T, b storage.Backend) {
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Update(context.Background(), func(tx storage.Tx) error {
				tx.Put(fmt.Sprintf("iso/%02d", i), []byte("v"))
				if i%2 == 1 {
					return fmt.Errorf("odd %d", i)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("iso/%02d", i)
		if i%2 == 1 {
			if errs[i] == nil || errs[i].Error() != fmt.Sprintf("odd %d", i) {
				t.Errorf("Update %d = %v, want its own error", i, errs[i])
			}
			mustMissing(t, b, key)
		} else {
			if errs[i] != nil {
				t.Errorf("Update %d = %v, want nil", i, errs[i])
			}
			mustGet(t, b, key, "v")
		}
	}
}

func testCloseRefuses(t *testing.T, b storage.Backend) {
	put(t, b, "k", "v")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return nil }); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Get(context.Background(), "k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}
