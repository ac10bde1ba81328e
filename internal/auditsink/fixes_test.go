package auditsink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
)

// capture is a Sink that keeps what it receives.
type capture struct {
	mu  sync.Mutex
	got map[uint64]*audit.Record
	dup int // records received twice
}

func (c *capture) Send(_ context.Context, recs []*audit.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[uint64]*audit.Record{}
	}
	for _, r := range recs {
		if c.got[r.Seq] != nil {
			c.dup++
		}
		c.got[r.Seq] = r
	}
	return nil
}

func (c *capture) rec(seq uint64) *audit.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[seq]
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func openLogKey(t *testing.T, dir string, key ed25519.PrivateKey) *audit.Log {
	t.Helper()
	l, err := audit.Open(audit.Options{Dir: dir, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func start(t *testing.T, cfg Config) *Runner {
	t.Helper()
	run, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return run
}

func onlyFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(m) != 1 {
		t.Fatalf("log files in %s: %v %v", dir, m, err)
	}
	return m[0]
}

// TestSinkShipsOnlyDurableRecords reproduces a failed fsync: a record is
// written to the active file but not made durable, the writer truncates it
// and the next record reuses its seq. The sink must never ship the record
// that was rolled back (its request was refused), and must ship the one
// that took its seq.
func TestSinkShipsOnlyDurableRecords(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	l := openLogKey(t, dir, key)
	appendN(t, l, 3)
	sink := &capture{}
	run := start(t, Config{Dir: dir, Log: logOf(l), Name: "x", Sink: sink, Poll: 5 * time.Millisecond})
	waitFor(t, "initial delivery", func() bool { return run.Cursor() == l.LastSeq() })
	durable := l.LastSeq()

	// Build a valid next line (right seq, prev and hash) the way a write
	// whose fsync is about to fail leaves one: continue a copy of the log in
	// another directory and take the record it adds.
	path := onlyFile(t, dir)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	cp := t.TempDir()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cp, filepath.Base(path)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	l2 := openLogKey(t, cp, key) // writes its start record: seq durable+1
	l2.Close()
	b2, err := os.ReadFile(filepath.Join(cp, filepath.Base(path)))
	if err != nil {
		t.Fatal(err)
	}
	tail := b2[size:]
	line := tail[:bytes.IndexByte(tail, '\n')+1]
	if !bytes.Contains(line, []byte(`"type":"start"`)) {
		t.Fatalf("unexpected line %s", line)
	}

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(line); err != nil {
		t.Fatal(err)
	}
	f.Close()
	time.Sleep(300 * time.Millisecond) // dozens of polls
	if r := sink.rec(durable + 1); r != nil || run.Cursor() != durable {
		t.Fatalf("sink shipped seq %d before it was durable (record %+v, cursor %d)", durable+1, r, run.Cursor())
	}

	// The fsync fails: the writer truncates, and the next record takes the seq.
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	real := &audit.Record{Type: audit.TypeRequest, Op: "secret.read", RequestID: "real"}
	if err := l.Append(context.Background(), real); err != nil {
		t.Fatal(err)
	}
	if real.Seq != durable+1 {
		t.Fatalf("real record seq = %d, want %d", real.Seq, durable+1)
	}
	waitFor(t, "delivery of the real record", func() bool { return run.Cursor() == real.Seq })
	if r := sink.rec(real.Seq); r == nil || r.RequestID != "real" || r.Hash != real.Hash {
		t.Fatalf("seq %d delivered as %+v, want the real record", real.Seq, r)
	}
}

// TestSinkFollowsReplacedLog: no log while sealed (the sink waits without
// errors), then the log opened on unseal, then the one opened on the next
// unseal.
func TestSinkFollowsReplacedLog(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	var cur atomic.Pointer[audit.Log]
	sink := &capture{}
	run := start(t, Config{Dir: dir, Log: cur.Load, Name: "x", Sink: sink, Poll: 5 * time.Millisecond})
	time.Sleep(50 * time.Millisecond)
	if run.Cursor() != 0 || run.Errors() != 0 || sink.count() != 0 {
		t.Fatalf("sealed: cursor %d, errors %d, records %d", run.Cursor(), run.Errors(), sink.count())
	}
	l1, err := audit.Open(audit.Options{Dir: dir, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l1, 2)
	cur.Store(l1)
	waitFor(t, "delivery from the first log", func() bool { return run.Cursor() == l1.LastSeq() })
	cur.Store(nil)
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLogKey(t, dir, key)
	appendN(t, l2, 2)
	cur.Store(l2)
	waitFor(t, "delivery from the second log", func() bool { return run.Cursor() == l2.LastSeq() })
	for seq := uint64(1); seq <= l2.LastSeq(); seq++ {
		if sink.rec(seq) == nil {
			t.Fatalf("seq %d never delivered", seq)
		}
	}
}

func TestNewNeedsLog(t *testing.T) {
	if _, err := New(Config{Dir: t.TempDir(), Name: "x", Sink: &capture{}}); err == nil {
		t.Fatal("New without Log succeeded")
	}
}

// TestUnreadableCursorStartsOver: an empty or garbled cursor file (a crash
// mid-save) must not keep the server from starting; the sink starts over.
func TestUnreadableCursorStartsOver(t *testing.T) {
	for _, content := range []string{"", "\x00\x00\x00", "12x\n"} {
		dir := t.TempDir()
		l := openLog(t, dir)
		appendN(t, l, 2)
		if err := os.WriteFile(filepath.Join(dir, "sink-x.cursor"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		run, err := New(Config{Dir: dir, Log: logOf(l), Name: "x", Sink: &capture{}, Poll: 5 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("cursor %q: %v", content, err)
		}
		if run.Cursor() != 0 || !strings.Contains(logs.String(), "level=WARN") {
			t.Fatalf("cursor %q: cursor %d, logs %q", content, run.Cursor(), logs.String())
		}
		sink := run.cfg.Sink.(*capture)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { run.Run(ctx); close(done) }()
		waitFor(t, "delivery", func() bool { return run.Cursor() == l.LastSeq() })
		cancel()
		<-done
		if sink.rec(1) == nil {
			t.Fatalf("cursor %q: seq 1 not delivered", content)
		}
		b, err := os.ReadFile(filepath.Join(dir, "sink-x.cursor"))
		if err != nil || strings.TrimSpace(string(b)) != strconv.FormatUint(l.LastSeq(), 10) {
			t.Fatalf("cursor file after delivery = %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "sink-x.cursor.tmp")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temporary cursor file left behind: %v", err)
		}
	}
}

// TestWebhookRedirectIsFailure: a collector answering 302 has not received
// the batch; following the redirect would turn the POST into a body-less
// GET (whose 200 counted as delivered) and send the API key elsewhere.
func TestWebhookRedirectIsFailure(t *testing.T) {
	var followed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/collect" {
			io.Copy(io.Discard, r.Body)
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		followed.Add(1)
	}))
	defer srv.Close()
	for _, hc := range []*http.Client{nil, {Timeout: 5 * time.Second}} {
		wh := &Webhook{URL: srv.URL + "/collect", Headers: map[string]string{"X-Api-Key": "s3cr3t"}, Client: hc}
		if err := wh.Send(context.Background(), []*audit.Record{{Seq: 7}}); err == nil {
			t.Fatal("Send succeeded on a 302")
		}
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("redirect followed %d times", n)
	}

	// Through a Runner: the cursor does not move, the failure counts.
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 2)
	run := start(t, Config{Dir: dir, Log: logOf(l), Name: "siem", Sink: &Webhook{URL: srv.URL + "/collect"}, MaxRetry: 20 * time.Millisecond})
	waitFor(t, "failed sends", func() bool { return run.Errors() >= 2 })
	if run.Cursor() != 0 || followed.Load() != 0 {
		t.Fatalf("cursor %d after redirects only, %d followed", run.Cursor(), followed.Load())
	}
}

// shortTempDir returns a directory whose path fits a unix socket address.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func checkSyslogMsg(t *testing.T, msg string) {
	t.Helper()
	if !strings.HasPrefix(msg, "<85>1 ") || !strings.HasSuffix(msg, "}") {
		t.Fatalf("syslog message = %q", msg)
	}
}

// TestSyslogUnixgram: /dev/log is a datagram socket; "unix" must reach it,
// one message per datagram, without octet counting.
func TestSyslogUnixgram(t *testing.T) {
	p := filepath.Join(shortTempDir(t), "log")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 3)
	start(t, Config{Dir: dir, Log: logOf(l), Name: "syslog", Sink: &Syslog{Network: "unix", Address: p}})
	buf := make([]byte, 64<<10)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 4; i++ { // the start record and three requests
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", i, err)
		}
		msg := string(buf[:n])
		checkSyslogMsg(t, msg)
		if strings.Count(msg, "<85>1 ") != 1 {
			t.Fatalf("datagram holds more than one message: %q", msg)
		}
	}
}

// TestSyslogUnixStream: a unix stream socket (some syslog daemons) gets
// newline-terminated messages.
func TestSyslogUnixStream(t *testing.T) {
	p := filepath.Join(shortTempDir(t), "log")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	l := openLog(t, dir)
	appendN(t, l, 3)
	start(t, Config{Dir: dir, Log: logOf(l), Name: "syslog", Sink: &Syslog{Network: "unix", Address: p}})
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	sc := bufio.NewScanner(c)
	sc.Buffer(nil, 1<<20)
	for i := 0; i < 4; i++ {
		if !sc.Scan() {
			t.Fatalf("after %d lines: %v", i, sc.Err())
		}
		checkSyslogMsg(t, sc.Text())
	}
}

// TestWebhookErrorHidesURL: a failed POST names the collector's host, not
// its URL, whose query may carry a token.
func TestWebhookErrorHidesURL(t *testing.T) {
	w := &Webhook{URL: "http://127.0.0.1:1/collect?token=s3cr3t-collector-token"}
	err := w.Send(context.Background(), []*audit.Record{{Seq: 1}})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Send to a closed port = %v; want an error naming the host only", err)
	}
}
