//go:build linux

package audit

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFailClosedPartialWrite fills the "disk" for real with RLIMIT_FSIZE:
// the kernel writes part of a batch, then fails it with EFBIG (Go ignores
// SIGXFSZ). The log must refuse, truncate the partial line away, keep
// refusing while the limit holds, and continue the chain once it is lifted.
func TestFailClosedPartialWrite(t *testing.T) {
	opts := testOptions(t)
	l := openLog(t, opts)
	// Make the audit file larger than anything else this process writes, so
	// that the limit below only bites the audit file.
	for i := range 64 {
		rec := request(i)
		rec.Reason = strings.Repeat("r", 4096)
		if err := l.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(opts.Dir, fileName(1))
	good := fileSize(t, path)
	last := l.LastSeq()

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	restore := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatalf("restore RLIMIT_FSIZE: %v", err)
		}
	}
	lim := syscall.Rlimit{Cur: uint64(good) + 100, Max: old.Max} // a record is ~500 bytes: 100 of them land
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	t.Cleanup(restore)

	for i := range 2 {
		err := l.Append(context.Background(), request(1000+i))
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.EFBIG) {
			restore()
			t.Fatalf("Append %d past the size limit = %v, want ErrUnavailable wrapping EFBIG", i, err)
		}
	}
	restore()
	if got := fileSize(t, path); got != good {
		t.Errorf("file is %d bytes after the failed writes, want %d: partial line not truncated", got, good)
	}
	if got := l.Failures(); got != 2 {
		t.Errorf("Failures = %d, want 2", got)
	}
	if l.Healthy() == nil {
		t.Error("Healthy = nil during the fault")
	}

	rec := request(2000)
	if err := l.Append(context.Background(), rec); err != nil {
		t.Fatalf("Append after the limit was lifted = %v", err)
	}
	if rec.Seq != last+1 {
		t.Errorf("seq after recovery = %d, want %d", rec.Seq, last+1)
	}
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy after recovery = %v", err)
	}

	// Close cannot write its final checkpoint past the limit either: it says so.
	good = fileSize(t, path)
	lim.Cur = uint64(good) + 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	err := l.Close()
	restore()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Close past the size limit = %v, want ErrUnavailable", err)
	}
	if got := fileSize(t, path); got != good {
		t.Errorf("file is %d bytes after the failed Close, want %d", got, good)
	}
	rep := mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey)})
	if rep.Checkpoints != 0 || rep.Unsigned != rep.Records || rep.Records != last+1 {
		t.Errorf("report %+v, want %d records none of them signed", rep, last+1)
	}

	// The next Open continues, and its Close signs everything.
	l = openLog(t, opts)
	closeLog(t, l)
	mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
}
