package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerPostgresUnreachable: `coffer server` that cannot reach
// PostgreSQL says so, naming host and port, without the password and
// without the hint meant for clients (COFFER_ADDR).
func TestServerPostgresUnreachable(t *testing.T) {
	dir := t.TempDir()
	cfg := `
listener "tcp" { address = "127.0.0.1:0" }
storage "postgres" { url = "postgres://postgres:hunter2@127.0.0.1:1/x" }
seal "keyfile" { path = "` + filepath.Join(dir, "unseal.key") + `" }
audit { enabled = false }
`
	path := filepath.Join(dir, "coffer.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runMain(context.Background(), "server", "--config", path)
	if code != 1 || !strings.Contains(errOut, "PostgreSQL is unreachable at 127.0.0.1:1") ||
		strings.Contains(errOut, "COFFER_ADDR") || strings.Contains(errOut, "hunter2") {
		t.Fatalf("coffer server with PostgreSQL unreachable: exit %d, stderr %q", code, errOut)
	}
}
