// Package e2e builds the coffer binary and drives it as a user would: a real
// server process on bolt storage, the CLI, restarts and crashes.
package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coffer-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "coffer")
	out, err := exec.Command("go", "build", "-tags", "coffer_testhooks", "-o", binary, "github.com/coffer-dev/coffer/cmd/coffer").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build coffer: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// node is one server process and the environment its CLI calls use.
type node struct {
	t      testing.TB
	config string
	addr   string
	url    string
	env    []string
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

func newNode(t testing.TB, dir, seal, tlsBlock string) *node {
	t.Helper()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`
listener "tcp" {
  address = %q
  %s
}
storage "bolt" { path = %q }
%s
`, addr, tlsBlock, filepath.Join(dir, "data", "coffer.db"), seal)
	path := filepath.Join(dir, "coffer.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if tlsBlock != "" {
		scheme = "https"
	}
	n := &node{t: t, config: path, addr: addr, url: scheme + "://" + addr}
	n.env = append(os.Environ(), "COFFER_ADDR="+n.url, "XDG_CONFIG_HOME="+filepath.Join(dir, "home"), "COFFER_TOKEN=")
	return n
}

func (n *node) start() { n.startWith(nil) } // nil: the test's own environment

func (n *node) stop() {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.cmd.Wait(); err != nil {
		n.t.Fatalf("server exit after SIGTERM: %v\n%s", err, n.log)
	}
	n.cmd = nil
}

func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	n.cmd.Wait()
	n.cmd = nil
}

// run runs the CLI and returns stdout, stderr and the exit code.
func (n *node) run(stdin string, args ...string) (string, string, int) {
	n.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = n.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// ok runs the CLI and fails the test unless it exits 0.
func (n *node) ok(stdin string, args ...string) string {
	n.t.Helper()
	out, errOut, code := n.run(stdin, args...)
	if code != 0 {
		n.t.Fatalf("coffer %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (n *node) setToken(tok string) {
	n.env = append(n.env, "COFFER_TOKEN="+tok)
}

func TestShamirInitUnsealRestart(t *testing.T) {
	n := newNode(t, t.TempDir(), `seal "shamir" {}`, "")
	n.start()
	if _, _, code := n.run("", "status"); code != 2 {
		t.Fatalf("status before init: exit %d, want 2 (sealed)", code)
	}
	var init struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(n.ok("", "operator", "init", "--shares", "5", "--threshold", "3", "--json")), &init); err != nil {
		t.Fatal(err)
	}
	if len(init.Keys) != 5 || !strings.HasPrefix(init.RootToken, "cof_") {
		t.Fatalf("init = %+v", init)
	}
	n.setToken(init.RootToken)
	if _, errOut, code := n.run("", "secret", "list"); code != 1 || !strings.Contains(errOut, "sealed") {
		t.Fatalf("list while sealed: exit %d, %q", code, errOut)
	}
	unseal := func() {
		for i, k := range []string{init.Keys[0], init.Keys[3], init.Keys[4]} {
			out := n.ok(k+"\n", "operator", "unseal")
			if i < 2 && !strings.Contains(out, fmt.Sprintf("Progress:     %d/3", i+1)) {
				t.Fatalf("unseal %d output:\n%s", i, out)
			}
		}
		n.ok("", "status")
	}
	unseal()

	n.ok("", "secret", "put", "prod/db/password", "hunter2", "--tag", "team=pay")
	n.ok("", "secret", "put", "prod/db/password", "hunter3")
	n.ok(`{"user":"app","password":"pw"}`, "secret", "put", "prod/db/config", "-", "--type", "json")
	bin := filepath.Join(t.TempDir(), "key.bin")
	os.WriteFile(bin, []byte{0, 0xff, 1, 2}, 0o600)
	n.ok("", "secret", "put", "prod/hmac", "@"+bin)

	n.stop()
	n.start()
	if _, _, code := n.run("", "status"); code != 2 {
		t.Fatalf("status after restart: exit %d, want 2", code)
	}
	unseal()

	if got := n.ok("", "secret", "get", "prod/db/password"); got != "hunter3" {
		t.Fatalf("get after restart = %q", got)
	}
	if got := n.ok("", "secret", "get", "prod/db/password", "--stage", "previous"); got != "hunter2" {
		t.Fatalf("get previous = %q", got)
	}
	if got := n.ok("", "secret", "get", "prod/db/config", "--field", "password"); got != "pw" {
		t.Fatalf("get field = %q", got)
	}
	if got := n.ok("", "secret", "get", "prod/hmac"); got != "\x00\xff\x01\x02" {
		t.Fatalf("get binary = %q", got)
	}
	if got := n.ok("", "secret", "list", "prod/"); got != "prod/db/config\nprod/db/password\nprod/hmac\n" {
		t.Fatalf("list = %q", got)
	}
	desc := n.ok("", "secret", "describe", "prod/db/password")
	for _, want := range []string{"team=pay", "current", "previous", "by root"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}
	// Bad unseal key, wrong CAS and a missing secret give clear errors.
	if _, errOut, code := n.run("", "secret", "put", "prod/db/password", "x", "--cas", "1"); code != 1 || !strings.Contains(errOut, "latest is 2") {
		t.Fatalf("cas: exit %d %q", code, errOut)
	}
	if _, errOut, code := n.run("", "secret", "get", "prod/none"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("missing: exit %d %q", code, errOut)
	}
	n.ok("", "operator", "seal")
	if _, errOut, code := n.run("bm90IGEga2V5\n", "operator", "unseal"); code != 1 || !strings.Contains(errOut, "malformed") {
		t.Fatalf("bad unseal key: exit %d %q", code, errOut)
	}
}

func TestKeyFileSealAndLogin(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "unseal.key")
	n := newNode(t, dir, fmt.Sprintf(`seal "keyfile" { path = %q }`, keyFile), "")
	n.start()
	out := n.ok("", "operator", "init")
	tok := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "Root token: ", 2)[1], "\n", 2)[0])
	if st, _ := os.Stat(keyFile); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file missing or not 0600: %v", st)
	}
	n.ok(tok+"\n", "login", "-")
	tokenPath := filepath.Join(dir, "home", "coffer", "token")
	if st, err := os.Stat(tokenPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	n.ok("", "secret", "put", "k", "v")
	n.stop()
	n.start() // unseals itself from the key file
	n.ok("", "status")
	if got := n.ok("", "secret", "get", "k"); got != "v" {
		t.Fatalf("get after restart = %q", got)
	}
	if _, errOut, code := n.run("not-a-token\n", "login", "-"); code != 1 || !strings.Contains(errOut, "not authenticated") {
		t.Fatalf("login with bad token: exit %d %q", code, errOut)
	}
	// A world-readable key file is refused at start.
	n.stop()
	os.Chmod(keyFile, 0o644)
	cmd := exec.Command(binary, "server", "--config", n.config)
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "0600") {
		t.Fatalf("server with 0644 key file: %v\n%s", err, msg)
	}
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	n := newNode(t, dir, `seal "keyfile" { path = "`+filepath.Join(dir, "k")+`" }`,
		fmt.Sprintf("tls_cert_file = %q\n  tls_key_file = %q", certFile, keyFile))
	n.start()
	if _, errOut, code := n.run("", "status"); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("status without CA: exit %d %q", code, errOut)
	}
	n.env = append(n.env, "COFFER_CACERT="+certFile)
	n.ok("", "operator", "init")
	n.ok("", "status")
	// Plain HTTP to the TLS port is refused.
	if resp, err := http.Get("http://" + n.addr + "/v1/sys/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP to TLS listener = %d", resp.StatusCode)
		}
	}
}

func TestConfigRefusesPlainNonLoopback(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.hcl")
	os.WriteFile(cfg, []byte(`listener "tcp" { address = "0.0.0.0:0" }
storage "bolt" { path = "`+dir+`/db" }`), 0o600)
	out, err := exec.Command(binary, "server", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "tls_cert_file") {
		t.Fatalf("server on 0.0.0.0 without TLS: %v\n%s", err, out)
	}
	os.WriteFile(cfg, []byte(`listener "tcp" { address = "127.0.0.1:0" }
storage "bolt" { path = "`+dir+`/db" }
colour = "blue"`), 0o600)
	out, err = exec.Command(binary, "server", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "colour") {
		t.Fatalf("server with unknown attribute: %v\n%s", err, out)
	}
}

func TestDevServer(t *testing.T) {
	addr := freeAddr(t)
	data := t.TempDir()
	start := func() (*exec.Cmd, string, string) {
		cmd := exec.Command(binary, "server", "--dev", "--listen", addr, "--dev-data", data)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		b := make([]byte, 4096)
		for !strings.Contains(buf.String(), "export COFFER_TOKEN=") {
			k, err := stdout.Read(b)
			if err != nil {
				t.Fatalf("dev server output: %v\n%s", err, buf.String())
			}
			buf.Write(b[:k])
		}
		t.Logf("dev server ready after %v", time.Since(began))
		out := buf.String()
		addrLine := strings.SplitN(strings.SplitN(out, "export COFFER_ADDR=", 2)[1], "\n", 2)[0]
		tok := strings.SplitN(strings.SplitN(out, "export COFFER_TOKEN=", 2)[1], "\n", 2)[0]
		return cmd, strings.TrimSpace(addrLine), strings.TrimSpace(tok)
	}
	cmd, url, tok := start()
	n := &node{t: t, env: append(os.Environ(), "COFFER_ADDR="+url, "COFFER_TOKEN="+tok)}
	n.ok("", "secret", "put", "dev/x", "kept")
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	cmd, url2, tok2 := start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if url2 != url || tok2 != tok {
		t.Fatalf("restart with --dev-data changed address or token: %s %s", url2, tok2)
	}
	if got := n.ok("", "secret", "get", "dev/x"); got != "kept" {
		t.Fatalf("get after dev restart = %q", got)
	}
}

func writeSelfSigned(t testing.TB, dir string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}
