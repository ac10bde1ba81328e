package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coffer-dev/coffer/internal/benchcpu"
)

// reportGroupCommit adds the audit records written per fsync to b's results.
func reportGroupCommit(b *testing.B, h *harness) {
	l := h.core.AuditLog()
	recs, syncs := l.LastSeq(), l.Syncs()
	b.Cleanup(func() {
		if n := l.Syncs() - syncs; n > 0 {
			b.ReportMetric(float64(l.LastSeq()-recs)/float64(n), "records/fsync")
		}
	})
}

// BenchmarkReadPath measures one authenticated secret read through the
// whole in-process pipeline: token check, authorization, storage read,
// decryption and JSON encoding (no network).
func BenchmarkReadPath(b *testing.B) {
	h := newHarness(b)
	if _, err := h.c.PutText(context.Background(), "bench/secret", strings.Repeat("x", 100)); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/secrets/bench/secret", nil)
	req.Header.Set("X-Coffer-Token", h.root)
	b.ReportAllocs()
	b.ResetTimer()
	benchcpu.Report(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.api.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// BenchmarkReadPathAudited is BenchmarkReadPath with the durable audit log
// on: every read waits for its record to be fsynced (shared by group commit).
func BenchmarkReadPathAudited(b *testing.B) {
	h := newAuditHarnessTB(b, b.TempDir())
	if _, err := h.c.PutText(context.Background(), "bench/secret", strings.Repeat("x", 100)); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/secrets/bench/secret", nil)
	req.Header.Set("X-Coffer-Token", h.root)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	benchcpu.Report(b)
	reportGroupCommit(b, h)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.api.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// BenchmarkWritePathAudited writes new secrets through the whole pipeline
// with the durable audit log on (an intent and an outcome record per write)
// over the in-memory backend: Coffer's own work per write, plus the mem
// backend's sorted insert, which grows with the number of keys written.
func BenchmarkWritePathAudited(b *testing.B) {
	h := newAuditHarnessTB(b, b.TempDir())
	body := `{"value":"` + strings.Repeat("x", 100) + `"}`
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	benchcpu.Report(b)
	reportGroupCommit(b, h)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("PUT", "/v1/secrets/bench/w"+strconv.FormatInt(n.Add(1), 10), strings.NewReader(body))
			req.Header.Set("X-Coffer-Token", h.root)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.api.ServeHTTP(w, req)
			if w.Code != http.StatusOK && w.Code != http.StatusCreated {
				b.Fatalf("status %d %s", w.Code, w.Body)
			}
		}
	})
}
