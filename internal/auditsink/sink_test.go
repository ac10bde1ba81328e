package auditsink

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
)

func openLog(t *testing.T, dir string) *audit.Log {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l, err := audit.Open(audit.Options{Dir: dir, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// logOf returns a Config.Log that always returns l.
func logOf(l *audit.Log) func() *audit.Log { return func() *audit.Log { return l } }

func appendN(t *testing.T, l *audit.Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := l.Append(context.Background(), &audit.Record{Type: audit.TypeRequest, Op: "secret.read", Path: fmt.Sprintf("p/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestDeadWebhookCatchesUp: the collector refuses for a while; appends do
// not wait for it; once it answers, every record arrives, in order.
func TestDeadWebhookCatchesUp(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	var up atomic.Bool
	var mu sync.Mutex
	got := map[uint64]bool{}
	var order []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var recs []audit.Record
		json.NewDecoder(r.Body).Decode(&recs)
		mu.Lock()
		for _, rec := range recs {
			if !got[rec.Seq] {
				got[rec.Seq] = true
				order = append(order, rec.Seq)
			}
		}
		mu.Unlock()
	}))
	defer srv.Close()
	run, err := New(Config{Dir: dir, Log: logOf(l), Name: "siem", Sink: &Webhook{URL: srv.URL}, MaxRetry: 50 * time.Millisecond, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	appendN(t, l, 300) // the dead collector must not slow these down
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("appends took %v while the sink was down", el)
	}
	waitFor(t, "failed sends", func() bool { return run.Errors() > 0 })
	if lag := l.LastSeq() - run.Cursor(); lag < 300 {
		t.Fatalf("lag while down = %d, want >= 300", lag)
	}
	up.Store(true)
	waitFor(t, "catch-up", func() bool { return run.Cursor() == l.LastSeq() })
	mu.Lock()
	defer mu.Unlock()
	for seq := uint64(1); seq <= l.LastSeq(); seq++ {
		if !got[seq] {
			t.Fatalf("record %d never reached the collector", seq)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Fatalf("records out of order: %d after %d", order[i], order[i-1])
		}
	}
	// A new runner resumes from the persisted cursor instead of starting over.
	again, _ := New(Config{Dir: dir, Log: logOf(l), Name: "siem", Sink: &Webhook{URL: srv.URL}})
	if again.Cursor() != run.Cursor() {
		t.Fatalf("cursor after restart = %d, want %d", again.Cursor(), run.Cursor())
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 3)
	run, _ := New(Config{Dir: dir, Log: logOf(l), Name: "syslog", Sink: &Syslog{Network: "udp", Address: pc.LocalAddr().String()}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	buf := make([]byte, 64<<10)
	var msgs []string
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(msgs) < 4 { // the start record and three requests
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(msgs), err)
		}
		msgs = append(msgs, string(buf[:n]))
	}
	if !strings.HasPrefix(msgs[1], "<85>1 ") || !strings.Contains(msgs[1], `"op":"secret.read"`) {
		t.Fatalf("syslog message = %q", msgs[1])
	}
}
