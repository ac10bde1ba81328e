package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/auditsink"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/storage/bolt"
)

func startServer(t *testing.T) (*Server, *client.Client, *bolt.Backend) {
	t.Helper()
	dir := t.TempDir()
	be, err := bolt.Open(filepath.Join(dir, "coffer.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Backend: be, KeyFile: filepath.Join(dir, "unseal.key"), Address: "127.0.0.1:0", JobInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	res, err := s.Core.Init(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Address: s.URL(), Token: res.RootToken, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, be
}

// eventually polls cond for up to five seconds; background jobs run on a
// 20ms tick in these tests.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s did not happen", what)
}

func TestRotateKeyRewrapsInBackground(t *testing.T) {
	_, c, be := startServer(t)
	ctx := context.Background()
	for _, n := range []string{"a/1", "a/2", "a/3"} {
		if _, err := c.PutText(ctx, n, "v-"+n); err != nil {
			t.Fatal(err)
		}
	}
	k, err := c.RotateKey(ctx)
	if err != nil || k.Term != 2 {
		t.Fatalf("rotate = %+v, %v", k, err)
	}
	// Every record leaves term 1: the header's term field is bytes 1..4.
	eventually(t, "rewrap", func() bool {
		keys, _ := be.List(ctx, "secret/", "", 0)
		for _, key := range keys {
			raw, _ := be.Get(ctx, key)
			if raw[4] != 2 {
				return false
			}
		}
		return len(keys) > 0
	})
	for _, n := range []string{"a/1", "a/2", "a/3"} {
		if s, err := c.Get(ctx, n, client.Current()); err != nil || s.Text() != "v-"+n {
			t.Fatalf("read %s after rewrap = %v, %v", n, s, err)
		}
	}
}

func TestSealedServerRefusesButAnswersHealth(t *testing.T) {
	_, c, _ := startServer(t)
	ctx := context.Background()
	if err := c.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutText(ctx, "x", "v"); client.ErrorCode(err) != "sealed" {
		t.Fatalf("write while sealed = %v", err)
	}
	h, err := c.Health(ctx)
	if err != nil || !h.Sealed || h.StatusCode != 503 {
		t.Fatalf("health while sealed = %+v, %v", h, err)
	}
	if _, err := c.SealStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoginAppRole(ctx, "x", "y"); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("login while sealed = %v", err)
	}
}

// TestAuditSinkLagMetric: a webhook sink that is down builds up lag (M7)
// while requests go on; when it comes back the lag returns to zero.
func TestAuditSinkLagMetric(t *testing.T) {
	var up atomic.Bool
	var received atomic.Int64
	siem := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var recs []json.RawMessage
		json.NewDecoder(r.Body).Decode(&recs)
		received.Add(int64(len(recs)))
	}))
	defer siem.Close()
	dir := t.TempDir()
	be, err := bolt.Open(filepath.Join(dir, "coffer.db"))
	if err != nil {
		t.Fatal(err)
	}
	auditDir := filepath.Join(dir, "audit")
	s, err := New(Options{Backend: be, KeyFile: filepath.Join(dir, "unseal.key"), Address: "127.0.0.1:0",
		Audit: core.AuditConfig{Dir: auditDir}, AuditSinks: map[string]auditsink.Sink{"siem": &auditsink.Webhook{URL: siem.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	res, err := s.Core.Init(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(client.Config{Address: s.URL(), Token: res.RootToken})
	for i := 0; i < 20; i++ {
		if _, err := c.PutText(ctx, "k", "v"); err != nil {
			t.Fatalf("write %d while the SIEM is down: %v", i, err)
		}
	}
	// The lag is read from the registry, not by scraping: every scrape is
	// an audited request, a new record the sink then has to catch up with.
	lag := func() string {
		mfs, err := s.Metrics.Registry.Gather()
		if err != nil {
			return ""
		}
		for _, mf := range mfs {
			if mf.GetName() == "coffer_audit_sink_lag_records" {
				for _, m := range mf.GetMetric() {
					return fmt.Sprint(m.GetGauge().GetValue())
				}
			}
		}
		return ""
	}
	if l := lag(); l == "" || l == "0" {
		t.Fatalf("lag while the SIEM is down = %q, want > 0", l)
	}
	up.Store(true)
	// The sink retries with exponential backoff (up to 30 s), so on a
	// loaded machine its next attempt may come a few seconds after the
	// SIEM is back.
	caughtUp := false
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline) && !caughtUp; time.Sleep(20 * time.Millisecond) {
		caughtUp = lag() == "0"
	}
	if !caughtUp {
		t.Fatalf("the sink did not catch up; lag %s", lag())
	}
	if received.Load() < 20 {
		t.Fatalf("SIEM received %d records, want at least the 20 writes", received.Load())
	}
}

// TestSnapshotUnderLoadRestores takes a snapshot while writers run, restores
// it into a fresh server with the same key file, and checks that every
// secret and version in it matches the original.
func TestSnapshotUnderLoadRestores(t *testing.T) {
	a, c, _ := startServer(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		c.PutText(ctx, fmt.Sprintf("before/%d", i), fmt.Sprintf("v%d", i))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.PutText(ctx, fmt.Sprintf("load/%d/%d", w, i%20), fmt.Sprintf("value-%d-%d", w, i))
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	var snap bytes.Buffer
	if err := c.Snapshot(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	// A fresh server with the original's key file.
	dir := t.TempDir()
	be, _ := bolt.Open(filepath.Join(dir, "coffer.db"))
	b, err := New(Options{Backend: be, KeyFile: a.opts.KeyFile, Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	b.Start(ctx)
	defer b.Shutdown(context.Background())
	fresh, _ := client.New(client.Config{Address: b.URL(), MaxRetries: -1})
	st, err := fresh.RestoreSnapshot(ctx, snap.Bytes())
	if err != nil || st.Sealed {
		t.Fatalf("restore = %+v, %v", st, err)
	}
	if _, err := fresh.RestoreSnapshot(ctx, snap.Bytes()); client.ErrorCode(err) != "already_initialized" {
		t.Fatalf("second restore = %v", err)
	}
	// An initialized server refuses a restore before reading its body: an
	// anonymous caller cannot make it buffer gigabytes.
	body := &countingZeros{left: 256 << 20}
	req, _ := http.NewRequestWithContext(ctx, "POST", b.URL()+"/v1/sys/snapshot/restore", body)
	req.Header.Set("Content-Type", "application/octet-stream")
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusConflict {
			t.Errorf("restore into an initialized server = %d, want 409", res.StatusCode)
		}
	}
	if n := body.read.Load(); n > 32<<20 {
		t.Errorf("the server read %d bytes of a restore it refuses", n)
	}
	restored := fresh.WithToken(c.Token())
	for i := 0; i < 50; i++ {
		s, err := restored.Get(ctx, fmt.Sprintf("before/%d", i), client.Current())
		if err != nil || s.Text() != fmt.Sprintf("v%d", i) {
			t.Fatalf("before/%d after restore = %v, %v", i, s, err)
		}
	}
	compared := 0
	for cursor := ""; ; {
		page, err := restored.List(ctx, client.ListOptions{Prefix: "load/", Cursor: cursor, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			m, _ := restored.Describe(ctx, it.Name)
			for _, v := range m.Versions {
				got, err1 := restored.Get(ctx, it.Name, client.Version(v.Version))
				want, err2 := c.Get(ctx, it.Name, client.Version(v.Version))
				if err1 != nil || err2 != nil {
					// Pruned on the original since the snapshot: both must be gone or both present.
					if client.IsNotFound(err2) {
						continue
					}
					t.Fatalf("%s v%d: restored %v, original %v", it.Name, v.Version, err1, err2)
				}
				if got.Text() != want.Text() {
					t.Fatalf("%s v%d = %q, original %q", it.Name, v.Version, got.Text(), want.Text())
				}
				compared++
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if compared == 0 {
		t.Fatal("the snapshot held none of the writes made under load")
	}
	// A corrupted snapshot is refused and changes nothing.
	bad := append([]byte(nil), snap.Bytes()...)
	bad[len(bad)/2] ^= 1
	dir2 := t.TempDir()
	be2, _ := bolt.Open(filepath.Join(dir2, "coffer.db"))
	s2, _ := New(Options{Backend: be2, Address: "127.0.0.1:0"})
	s2.Start(ctx)
	defer s2.Shutdown(context.Background())
	c2, _ := client.New(client.Config{Address: s2.URL(), MaxRetries: -1})
	if _, err := c2.RestoreSnapshot(ctx, bad); client.ErrorCode(err) != "invalid_snapshot" {
		t.Fatalf("corrupt snapshot = %v", err)
	}
	if st, _ := c2.SealStatus(ctx); st.Initialized {
		t.Fatal("a corrupt snapshot initialized the server")
	}
}

func TestScheduledSnapshotRetention(t *testing.T) {
	s, c, _ := startServer(t)
	ctx := context.Background()
	c.PutText(ctx, "k", "v")
	dir := t.TempDir()
	for i := 0; i < 4; i++ {
		if _, err := s.SnapshotTo(dir, 2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct names
	}
	files, _ := filepath.Glob(filepath.Join(dir, "coffer-*.snapshot"))
	if len(files) != 2 {
		t.Fatalf("kept %d snapshots, want 2: %v", len(files), files)
	}
	st, _ := os.Stat(files[1])
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot mode %v, want 0600", st.Mode().Perm())
	}
}

// countingZeros is a body of left zero bytes that counts what was read.
type countingZeros struct {
	left int64
	read atomic.Int64
}

func (z *countingZeros) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > z.left {
		n = z.left
	}
	clear(p[:n])
	z.left -= n
	z.read.Add(n)
	return int(n), nil
}
