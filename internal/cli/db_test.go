package cli

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestDBAndLeaseCommands drives coffer db and coffer lease against an
// in-process server and the real PostgreSQL.
func TestDBAndLeaseCommands(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	c, _, _ := startServer(t, core.Config{Backend: mem.New()})

	// The admin password comes from a file, never the command line.
	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	adminRole := "coffer_cli_admin_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if _, err := admin.Exec("CREATE ROLE " + adminRole + " LOGIN SUPERUSER PASSWORD 'pw-from-file'"); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: users, then Coffer's pool, then the admin role.
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP ROLE IF EXISTS " + adminRole); err != nil {
			t.Errorf("drop admin role: %v", err)
		}
	})
	t.Cleanup(func() {
		if res, err := c.Leases.RevokePrefix(context.Background(), "db/"); err != nil || res.Pending > 0 {
			t.Errorf("cleanup: revoke leases = %+v, %v", res, err)
		}
		c.DB.Reset()
	})
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("pw-from-file\n"), 0o600)
	u, _ := url.Parse(dbURL)
	u.User = nil
	connURL := strings.Replace(u.String(), "://", "://{{username}}:{{password}}@", 1)

	run := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runMain(ctx, args...)
		if code != wantCode {
			t.Fatalf("coffer %s = %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		return out + errOut
	}
	out := run(0, "db", "config", "write", "pg", "--plugin", "postgresql", "--connection-url", connURL,
		"--username", adminRole, "--password-file", pwFile, "--allowed-roles", "readonly")
	if !strings.Contains(out, "Password stored: true") || strings.Contains(out, "pw-from-file") {
		t.Errorf("config write printed %q", out)
	}
	run(0, "db", "role", "write", "readonly", "--db", "pg", "--default-ttl", "10m", "--max-ttl", "1h",
		"--creation-statements", "CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}};")
	if out := run(0, "db", "role", "list"); out != "readonly\n" {
		t.Errorf("role list = %q", out)
	}
	out = run(0, "db", "creds", "readonly", "--format", "env")
	m := regexp.MustCompile(`DB_USERNAME=(\S+)\nDB_PASSWORD=(\S+)\nLEASE_ID=(\S+)\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("creds printed %q", out)
	}
	user, leaseID := m[1], m[3]
	if out := run(0, "lease", "list", "db/creds/readonly/"); strings.TrimSpace(out) != leaseID {
		t.Errorf("lease list = %q, want %s", out, leaseID)
	}
	if out := run(0, "lease", "renew", leaseID, "--increment", "30m"); !strings.Contains(out, "Renewable:   true") || strings.Contains(out, "capped") {
		t.Errorf("lease renew printed %q", out)
	}
	if out := run(0, "lease", "renew", leaseID, "--increment", "48h"); !strings.Contains(out, "Warning: the increment was capped") {
		t.Errorf("lease renew past max_ttl printed %q", out)
	}
	if out := run(1, "lease", "revoke", "--prefix", "db/creds/read"); !strings.Contains(out, "must end with /") {
		t.Errorf("revoke --prefix without a trailing slash printed %q", out)
	}
	if out := run(0, "lease", "revoke", leaseID); !strings.Contains(out, "Revoked "+leaseID) {
		t.Errorf("lease revoke printed %q", out)
	}
	var n int
	admin.QueryRow("SELECT count(*) FROM pg_roles WHERE rolname = $1", user).Scan(&n)
	if n != 0 {
		t.Error("the user still exists after coffer lease revoke")
	}
	if out := run(1, "lease", "revoke", leaseID); !strings.Contains(out, "no lease") {
		t.Errorf("second revoke printed %q", out)
	}
	run(0, "db", "creds", "readonly")
	run(0, "db", "creds", "readonly")
	if out := run(0, "lease", "revoke", "--prefix", "db/creds/readonly/"); !strings.Contains(out, "Revoked 2 leases") {
		t.Errorf("revoke --prefix printed %q", out)
	}
	if out := run(0, "db", "rotate-root", "pg"); !strings.Contains(out, "Root rotated:") {
		t.Errorf("rotate-root printed %q", out)
	}
	run(0, "db", "creds", "readonly") // still works with the rotated admin password
	if out := run(1, "db", "config", "delete", "pg"); !strings.Contains(out, "delete them first") {
		t.Errorf("config delete in use printed %q", out)
	}
}
