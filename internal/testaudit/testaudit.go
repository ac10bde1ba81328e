// Package testaudit helps tests look at the audit log a server wrote, and
// make it fail for real: a tiny tmpfs that a test fills up.
package testaudit

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/coffer-dev/coffer/internal/audit"
)

// Records reads every record of the audit log in dir, in order.
func Records(t testing.TB, dir string) []*audit.Record {
	t.Helper()
	r, err := audit.NewReader(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []*audit.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

// TinyTmpfs mounts a 256 KiB tmpfs for the test and returns its directory.
// Mounting needs root: elsewhere the test is skipped, unless
// COFFER_REQUIRE_TMPFS is set (as CI sets it), which makes it fail instead.
func TinyTmpfs(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("COFFER_REQUIRE_TMPFS") != "" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// FillDisk fills the file system holding dir and returns a func that frees
// the space again.
func FillDisk(t testing.TB, dir string) (free func()) {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	return func() { os.Remove(filler) }
}
