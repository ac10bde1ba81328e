package audit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/coffer-dev/coffer/internal/benchcpu"
)

// BenchmarkAppendParallel measures durable appends from many goroutines,
// as from a server's concurrent requests: group commit shares each fsync.
func BenchmarkAppendParallel(b *testing.B) {
	benchAppend(b, true)
}

// BenchmarkAppendSerial measures one appender: one fsync per record.
func BenchmarkAppendSerial(b *testing.B) {
	benchAppend(b, false)
}

func benchAppend(b *testing.B, parallel bool) {
	l, err := Open(Options{Dir: filepath.Join(b.TempDir(), "audit"), SigningKey: testKey(1)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	b.ReportAllocs()
	syncs := l.syncs.Load()
	b.ResetTimer()
	benchcpu.Report(b)
	if parallel {
		b.SetParallelism(16) // 32 goroutines on 2 cores, like 32 connections
		b.RunParallel(func(pb *testing.PB) {
			rec := request(1) // Append ignores and resets Seq, Prev and Hash
			for pb.Next() {
				if err := l.Append(ctx, rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		rec := request(1)
		for range b.N {
			if err := l.Append(ctx, rec); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/float64(l.syncs.Load()-syncs), "records/fsync")
}

// BenchmarkVerify measures verification of a log of 10,000 records.
func BenchmarkVerify(b *testing.B) {
	opts := Options{Dir: filepath.Join(b.TempDir(), "audit"), SigningKey: testKey(1)}
	l, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	errs := make(chan error, 10_000)
	for i := range 10_000 {
		go func() { errs <- l.Append(context.Background(), request(i)) }()
	}
	for range 10_000 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	files, err := Files(opts.Dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Verify(files, pubOf(opts.SigningKey))
		if err != nil || rep.Problem != nil {
			b.Fatal(err, rep.Problem)
		}
	}
	b.ReportMetric(float64(b.N)*10_000/b.Elapsed().Seconds(), "records/s")
}
