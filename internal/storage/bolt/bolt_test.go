package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/bolt"
	"github.com/coffer-dev/coffer/internal/storage/storagetest"
)

func open(t testing.TB, path string) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return open(t, filepath.Join(t.TempDir(), "coffer.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coffer.db")
	b := open(t, path)
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put("k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(t, path)
	defer b.Close()
	got, err := b.Get(context.Background(), "k")
	if err != nil || string(got) != "v" {
		t.Fatalf("Get after reopen = %q, %v, want \"v\"", got, err)
	}
}

func BenchmarkUpdateParallel(b *testing.B) {
	be := open(b, filepath.Join(b.TempDir(), "coffer.db"))
	defer be.Close()
	b.ReportAllocs()
	b.SetParallelism(8)
	var n int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Sprintf("k/%p/%d", pb, n)
			n++
			if err := be.Update(context.Background(), func(tx storage.Tx) error { return tx.Put(k, []byte("value")) }); err != nil {
				b.Error(err)
			}
		}
	})
}
