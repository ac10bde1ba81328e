package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/testdb"
)

// BenchmarkUpdateParallel writes new keys from concurrent writers: group
// commit should put many of them in each transaction.
func BenchmarkUpdateParallel(b *testing.B) {
	be := open(b, testdb.Postgres(b))
	defer be.Close()
	b.ReportAllocs()
	b.SetParallelism(8)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Sprintf("bench/k/%d", n.Add(1))
			if err := be.Update(context.Background(), func(tx storage.Tx) error { return tx.Put(k, []byte("value")) }); err != nil {
				b.Error(err)
			}
		}
	})
	commits, writes, retries := be.Stats()
	if commits > 0 {
		b.ReportMetric(float64(writes)/float64(commits), "writes/commit")
	}
	b.ReportMetric(float64(retries), "retries")
}

// BenchmarkGet reads one key (the read path of a node without a cache hit).
func BenchmarkGet(b *testing.B) {
	be := open(b, testdb.Postgres(b))
	defer be.Close()
	ctx := context.Background()
	if err := be.Update(ctx, func(tx storage.Tx) error { return tx.Put("bench/get", []byte("value")) }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := be.Get(ctx, "bench/get"); err != nil {
				b.Error(err)
			}
		}
	})
}
