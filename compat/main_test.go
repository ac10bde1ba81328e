package compat_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// server is the one Coffer dev server every test in this package drives.
var server struct {
	bin   string // the coffer binary
	url   string // http://127.0.0.1:PORT
	root  string // root token
	logMu sync.Mutex
	log   bytes.Buffer // the server's stderr, shown when a test fails
}

// TestMain builds the coffer binary from the parent module (this module
// cannot import Coffer's internal packages), starts "coffer server --dev"
// on a free loopback port, and stops it after the tests.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coffer-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	server.bin = filepath.Join(dir, "coffer")
	build := exec.Command("go", "build", "-o", server.bin, "./cmd/coffer")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build coffer:", err)
		return 1
	}
	stop, err := startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start coffer:", err)
		server.logMu.Lock()
		fmt.Fprintln(os.Stderr, server.log.String())
		server.logMu.Unlock()
		return 1
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop coffer:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

type logWriter struct{}

func (logWriter) Write(p []byte) (int, error) {
	server.logMu.Lock()
	defer server.logMu.Unlock()
	return server.log.Write(p)
}

func startServer() (stop func() error, err error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(server.bin, "server", "--dev", "--listen", addr)
	cmd.Env = append(os.Environ(), "COFFER_TOKEN=", "COFFER_ADDR=")
	cmd.Stderr = logWriter{}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	tokenC := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if tok, ok := strings.CutPrefix(line, "export COFFER_TOKEN="); ok {
				tokenC <- tok
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { done <- cmd.Wait() }()
	stop = func() error {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
			return nil
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("server did not stop within 15s of SIGINT")
		}
	}
	select {
	case server.root = <-tokenC:
	case err := <-done:
		return nil, fmt.Errorf("server exited before printing its token: %v", err)
	case <-time.After(30 * time.Second):
		stop()
		return nil, fmt.Errorf("server printed no token within 30s")
	}
	server.url = "http://" + addr
	// The token is printed once the server serves; check anyway.
	resp, err := http.Get(server.url + "/vault/v1/sys/health")
	if err != nil {
		stop()
		return nil, err
	}
	resp.Body.Close()
	return stop, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// cli runs the coffer CLI against the server with the given token and
// returns its standard output.
func cli(t testing.TB, tok string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, server.bin, args...)
	cmd.Env = append(os.Environ(), "COFFER_ADDR="+server.url, "COFFER_TOKEN="+tok)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("coffer %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// dumpLogOnFailure shows the server's log when the test fails.
func dumpLogOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			server.logMu.Lock()
			defer server.logMu.Unlock()
			t.Logf("server log:\n%s", server.log.String())
		}
	})
}
