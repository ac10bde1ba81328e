package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// auditFixture writes an audit log as a server would: a first run that
// closes with a signed checkpoint, then a second, still open, whose records
// no checkpoint covers yet. It returns the directory and the public key file.
func auditFixture(t *testing.T) (dir, keyFile string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "audit")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	ctx := context.Background()
	rec := func(typ, decision, path string) *audit.Record {
		return &audit.Record{Type: typ, RequestID: "req-" + path, Op: "secret.read", Path: path,
			Identity: &audit.Identity{Name: "ci"}, Decision: decision, Status: 200, Source: "10.0.0.7"}
	}
	l, err := audit.Open(audit.Options{Dir: dir, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*audit.Record{rec("", "allow", "app/a"), rec("", "deny", "app/b"), rec("intent", "allow", "app/c")} {
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = audit.Open(audit.Options{Dir: dir, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Append(ctx, rec("", "allow", "app/d")); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	keyFile = filepath.Join(root, "audit-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, keyFile
}

func TestAuditSearchFilters(t *testing.T) {
	dir, _ := auditFixture(t)
	ctx := context.Background()
	out, errOut, code := runMain(ctx, "audit", "search", "--dir", dir, "--decision", "deny")
	if code != 0 || !strings.Contains(out, "app/b") || strings.Contains(out, "app/a") || !strings.Contains(errOut, "1 record\n") {
		t.Errorf("search --decision deny: exit %d, out %q, err %q", code, out, errOut)
	}
	out, _, code = runMain(ctx, "audit", "search", "--dir", dir, "--type", "intent")
	if code != 0 || !strings.Contains(out, "intent allow") || !strings.Contains(out, "app/c") || strings.Contains(out, "app/a") {
		t.Errorf("search --type intent: exit %d, out %q", code, out)
	}
	out, _, code = runMain(ctx, "audit", "search", "--dir", dir)
	if code != 0 || strings.Contains(out, "app/c") || !strings.Contains(out, "req-app/a") {
		t.Errorf("search (outcomes only, with request ids): exit %d, out %q", code, out)
	}
	out, _, code = runMain(ctx, "audit", "search", "--dir", dir, "--type", "all")
	if code != 0 || strings.Count(out, "\n") != 7 { // 2 starts, 3+1 records, 1 checkpoint
		t.Errorf("search --type all: exit %d, out %q", code, out)
	}
	for _, bad := range [][]string{{"--decision", "DENY"}, {"--decision", "bogus"}, {"--type", "requests"}} {
		for _, cmd := range []string{"search", "tail"} {
			_, errOut, code := runMain(ctx, append([]string{"audit", cmd, "--dir", dir}, bad...)...)
			if code == 0 || !strings.Contains(errOut, bad[0]) {
				t.Errorf("audit %s %v: exit %d, stderr %q; want a refusal naming the flag", cmd, bad, code, errOut)
			}
		}
	}
}

func TestAuditVerifyReportsUnsignedAndTampering(t *testing.T) {
	dir, keyFile := auditFixture(t)
	ctx := context.Background()
	out, errOut, code := runMain(ctx, "audit", "verify", "--public-key", keyFile, "--dir", dir)
	if code != 0 || !strings.Contains(out, "OK: 7 records (seq 1 to 7), 1 signed checkpoint, in 1 file\n") ||
		!strings.Contains(out, "the last 2 records come after the last checkpoint") {
		t.Fatalf("verify: exit %d, out %q, err %q", code, out, errOut)
	}
	// What verify cannot see alone, it checks when told: where the log
	// must start, a seq it reached, and that every record is signed.
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--min-last-seq", "9"}, "it had reached seq 9: the tail was cut"},
		{[]string{"--first-seq", "2"}, "log starts at seq 1, not 2"},
		{[]string{"--require-signed"}, "not covered by a checkpoint"},
	} {
		out, _, code := runMain(ctx, append([]string{"audit", "verify", "--public-key", keyFile, "--dir", dir}, c.flags...)...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("verify %v: exit %d, out %q; want exit 2 and %q", c.flags, code, out, c.want)
		}
	}
	if out, _, code := runMain(ctx, "audit", "verify", "--public-key", keyFile, "--dir", dir, "--min-last-seq", "5", "--first-seq", "1"); code != 0 {
		t.Errorf("verify --min-last-seq 5 --first-seq 1: exit %d, out %q", code, out)
	}
	files, err := audit.Files(dir)
	if err != nil || len(files) != 1 {
		t.Fatal(files, err)
	}
	b, _ := os.ReadFile(files[0])
	tampered := bytes.Replace(b, []byte(`"app/b"`), []byte(`"app/x"`), 1)
	if err := os.WriteFile(files[0], tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code = runMain(ctx, "audit", "verify", "--public-key", keyFile, "--dir", dir)
	if code != 2 || !strings.Contains(out, "TAMPERED") || !strings.Contains(out, "seq 3") {
		t.Fatalf("verify of an edited record: exit %d, out %q", code, out)
	}
}

// TestDescribeUnauthenticated: the CLI explains a missing or bad token, but
// passes on what a refused login said about its credentials.
func TestDescribeUnauthenticated(t *testing.T) {
	tok := &client.Error{StatusCode: 401, Code: "unauthenticated", Message: "missing, invalid, expired or revoked token; set COFFER_TOKEN or run coffer login"}
	if got := describeError(tok); !strings.Contains(got, "coffer login") {
		t.Errorf("bad token described as %q", got)
	}
	login := &client.Error{StatusCode: 401, Code: "unauthenticated", Message: "invalid role_id or secret_id"}
	if got := describeError(login); got != "invalid role_id or secret_id" {
		t.Errorf("refused login described as %q", got)
	}
}

// TestAuditHashFindsWhatPutStored: `audit hash -` reads its value as
// `secret put NAME -` does, byte for byte, so the same input finds the write.
func TestAuditHashFindsWhatPutStored(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "audit")
	startServer(t, core.Config{Backend: mem.New(), Audit: core.AuditConfig{Dir: dir}})
	run := func(stdin string, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(ctx, args, strings.NewReader(stdin), &out, &errb); code != 0 {
			t.Fatalf("coffer %v: exit %d, %s", args, code, errb.String())
		}
		return out.String()
	}
	const value = "  s3cret with spaces\n"
	run(value, "secret", "put", "app/pw", "-")
	h := strings.TrimSpace(run(value, "audit", "hash", "-"))
	if !strings.HasPrefix(h, "hmac-sha256:") {
		t.Fatalf("audit hash printed %q", h)
	}
	if out := run("", "audit", "search", "--dir", dir, "--hmac", h); !strings.Contains(out, "secret.write") || !strings.Contains(out, "app/pw") {
		t.Fatalf("search --hmac of the written value: %q", out)
	}
	if out := run("", "audit", "search", "--dir", dir, "--hmac", strings.TrimSpace(run("s3cret", "audit", "hash", "-"))); out != "" {
		t.Fatalf("search --hmac of a different value found %q", out)
	}
	// Binary and JSON values are hashed as the server stores them.
	for _, c := range []struct{ name, value, typ string }{
		{"app/key", "\xff\xfe\x00bin", ""},
		{"app/conf", "{ \"user\": \"app\",\n  \"port\": 5432 }\n", "json"},
	} {
		args := []string{"secret", "put", c.name, "-"}
		hash := []string{"audit", "hash", "-"}
		if c.typ != "" {
			args, hash = append(args, "--type", c.typ), append(hash, "--type", c.typ)
		}
		run(c.value, args...)
		h := strings.TrimSpace(run(c.value, hash...))
		if out := run("", "audit", "search", "--dir", dir, "--hmac", h); !strings.Contains(out, c.name) {
			t.Errorf("search --hmac of %s's value: %q", c.name, out)
		}
	}
}

// TestStoredTokenMustBePrivate: `coffer login` keeps the token only in the
// user's own configuration directory, and a stored token that others could
// read or replace is not used.
func TestStoredTokenMustBePrivate(t *testing.T) {
	ctx := context.Background()
	_, _, root := startServer(t, core.Config{Backend: mem.New()})
	t.Setenv("COFFER_TOKEN", "")
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	if _, errOut, code := runMain(ctx, "login", root); code != 0 {
		t.Fatalf("login: exit %d, %s", code, errOut)
	}
	path := filepath.Join(cfg, "coffer", "token")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %v, %v; want mode 0600", fi, err)
	}
	if _, errOut, code := runMain(ctx, "token", "lookup"); code != 0 {
		t.Fatalf("token lookup with the stored token: exit %d, %s", code, errOut)
	}
	os.Chmod(path, 0o644)
	if _, errOut, code := runMain(ctx, "token", "lookup"); code == 0 || !strings.Contains(errOut, "accessible to other users") {
		t.Fatalf("token lookup with a world-readable stored token: exit %d, %q; want a refusal naming the mode", code, errOut)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative/dir")
	t.Setenv("HOME", "")
	if _, errOut, code := runMain(ctx, "login", root); code == 0 || !strings.Contains(errOut, "COFFER_TOKEN") {
		t.Fatalf("login without a configuration directory: exit %d, %q; want a refusal", code, errOut)
	}
}
