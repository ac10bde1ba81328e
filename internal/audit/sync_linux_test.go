package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReservedBlocksKeepFilesExact: preallocation never shows in a file's
// length, and rotated and closed files give the reserved blocks back.
func TestReservedBlocksKeepFilesExact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l, err := Open(Options{Dir: dir, SigningKey: testKey(1), MaxFileBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		if err := l.Append(context.Background(), &Record{Op: "secret.read", Path: "a/b"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if len(files) < 2 {
		t.Fatalf("want rotated files, got %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || b[len(b)-1] != '\n' || bytes.IndexByte(b, 0) >= 0 {
			t.Fatalf("%s: %d bytes, must end in a newline and hold no padding", f, len(b))
		}
		var st syscall.Stat_t
		if err := syscall.Stat(f, &st); err == nil && st.Blocks*512 > int64(len(b))+64<<10 {
			t.Errorf("%s keeps %d bytes of blocks for %d bytes of records", f, st.Blocks*512, len(b))
		}
	}
	if _, err := Verify(files, testKey(1).Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
}
