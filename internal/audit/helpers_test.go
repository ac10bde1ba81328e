package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is an injectable clock that moves only when told.
type testClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey returns a deterministic Ed25519 key.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// testOptions returns options for a log in a fresh temporary directory.
func testOptions(tb testing.TB) Options {
	tb.Helper()
	return Options{
		Dir:        filepath.Join(tb.TempDir(), "audit"),
		SigningKey: testKey(1),
		Now:        newTestClock().Now,
	}
}

// openLog opens a log that is closed when the test ends (if it is still open).
func openLog(tb testing.TB, opts Options) *Log {
	tb.Helper()
	l, err := Open(opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// request returns a typical request record.
func request(i int) *Record {
	return &Record{
		RequestID: fmt.Sprintf("req-%06d", i),
		Op:        "secret.read",
		Path:      fmt.Sprintf("kv/app/db-password-%d", i),
		Version:   i%7 + 1,
		Identity:  &Identity{Name: "ci-deployer", ID: "id-123", Method: "approle", Policies: []string{"deploy", "read-db"}},
		Source:    "10.0.0.7",
		Decision:  "allow",
		Policy:    "deploy",
		Rule:      "kv/app/*",
		Status:    200,
		LatencyUS: int64(100 + i),
		HMACs:     map[string]string{"token": "hmac-sha256:00ff"},
	}
}

// appendN appends n request records numbered from first.
func appendN(tb testing.TB, l *Log, first, n int) []*Record {
	tb.Helper()
	recs := make([]*Record, n)
	for i := range n {
		recs[i] = request(first + i)
		if err := l.Append(context.Background(), recs[i]); err != nil {
			tb.Fatalf("Append(%d): %v", first+i, err)
		}
	}
	return recs
}

// closeLog closes l and fails the test on error.
func closeLog(tb testing.TB, l *Log) {
	tb.Helper()
	if err := l.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

// readAll returns every record in dir, checked by a Reader.
func readAll(tb testing.TB, dir string) []*Record {
	tb.Helper()
	r, err := NewReader(dir, 0)
	if err != nil {
		tb.Fatalf("NewReader: %v", err)
	}
	defer r.Close()
	var recs []*Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			tb.Fatalf("Next after %d records: %v", len(recs), err)
		}
		recs = append(recs, rec)
	}
}

// mustVerify verifies dir and fails the test on any problem.
func mustVerify(tb testing.TB, dir string, opts VerifyOptions) *Report {
	tb.Helper()
	files, err := Files(dir)
	if err != nil {
		tb.Fatalf("Files: %v", err)
	}
	rep, err := VerifyWith(files, opts)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	if rep.Problem != nil {
		tb.Fatalf("Verify: %v", rep.Problem)
	}
	return rep
}

func keys(k ...ed25519.PrivateKey) []ed25519.PublicKey {
	pubs := make([]ed25519.PublicKey, len(k))
	for i := range k {
		pubs[i] = pubOf(k[i])
	}
	return pubs
}

// fileNames returns the base names of the log files in dir.
func fileNames(tb testing.TB, dir string) []string {
	tb.Helper()
	files, err := Files(dir)
	if err != nil {
		tb.Fatalf("Files: %v", err)
	}
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	return files
}

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// blockNextSync makes the first fsync after arm() wait: entered is closed
// when the writer reaches it, and the fsync goes ahead once release is
// closed. Appends made meanwhile queue up behind it.
func blockNextSync(opts *Options) (arm func(), entered, release chan struct{}) {
	var armed atomic.Bool
	entered, release = make(chan struct{}), make(chan struct{})
	opts.beforeSync = func() {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
	}
	return func() { armed.Store(true) }, entered, release
}
