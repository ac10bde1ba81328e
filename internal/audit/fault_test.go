package audit

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFailClosedDiskFull makes the new file of a rotation land on /dev/full,
// whose writes fail with a real ENOSPC, then "frees space".
func TestFailClosedDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	var full atomic.Bool
	clock := newTestClock()
	opts := testOptions(t)
	opts.Now = clock.Now
	opts.MaxFileAge = time.Hour
	opts.openFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if full.Load() {
			return os.OpenFile("/dev/full", os.O_RDWR, 0)
		}
		return os.OpenFile(name, flag, perm)
	}
	l := openLog(t, opts)
	appendN(t, l, 0, 3)
	ctx := context.Background()

	full.Store(true)
	clock.Advance(2 * time.Hour) // the next Append rotates onto the full disk
	for i := range 3 {
		err := l.Append(ctx, request(100+i))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Append %d on a full disk = %v, want ErrUnavailable", i, err)
		}
		if i == 0 && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("first failure = %v, want ENOSPC", err)
		}
		if h := l.Healthy(); !errors.Is(h, ErrUnavailable) {
			t.Errorf("Healthy = %v, want ErrUnavailable", h)
		}
		if got := l.Failures(); got != uint64(i+1) {
			t.Errorf("Failures = %d, want %d", got, i+1)
		}
	}
	// The old file was closed with a checkpoint before the rotation failed.
	if got := l.LastSeq(); got != 5 {
		t.Errorf("LastSeq = %d, want 5 (start, 3 records, checkpoint)", got)
	}

	full.Store(false)
	rec := request(200)
	if err := l.Append(ctx, rec); err != nil {
		t.Fatalf("Append after space came back = %v", err)
	}
	if rec.Seq != 6 {
		t.Errorf("seq after recovery = %d, want 6: failed records leave no gap", rec.Seq)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy after recovery = %v", err)
	}
	if got := l.Failures(); got != 3 {
		t.Errorf("Failures after recovery = %d, want 3", got)
	}
	closeLog(t, l)
	if got, want := fileNames(t, opts.Dir), []string{fileName(1), fileName(6)}; !slices.Equal(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	for _, r := range readAll(t, opts.Dir) {
		if r.RequestID == "req-000100" || r.RequestID == "req-000101" || r.RequestID == "req-000102" {
			t.Errorf("refused record %s is in the log", r.RequestID)
		}
	}
	mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
}
