//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Bounds that keep the harness finite when something hangs.
const (
	buildTimeout = 5 * time.Minute  // go build of cmd/coffer
	startTimeout = 10 * time.Second // process start to first HTTP answer
	stopTimeout  = 10 * time.Second // SIGTERM to exit, then SIGKILL
	callTimeout  = 10 * time.Second // any single HTTP request
	pollInterval = 2 * time.Millisecond
)

// The secret the read steps fetch, and the 100-byte value of every write.
const readSecret = "bench/read"

var secretValue = strings.Repeat("0123456789", 10)

// trivialBody is the fixed answer of the trivial handler: about the size and
// shape of Coffer's answer to a read.
var trivialBody = []byte(`{"name":"bench/read","version":1,"stages":["current"],"type":"text",` +
	`"value":"0123456789012345678901234567890123456789","created_at":"2025-01-01T00:00:00Z"}` + "\n")

// serveTrivial is the trivial server subprocess: it answers every request
// with trivialBody until it is killed.
func serveTrivial(addr string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(trivialBody)
	})
	return http.ListenAndServe(addr, h)
}

// proc is a server subprocess, its address and its log file.
type proc struct {
	name    string
	url     string // http://127.0.0.1:PORT
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
}

// startProc starts name with args, output appended to logPath.
func startProc(name, url, logPath, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the harness
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, url: url, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for the exit, killing the process after
// stopTimeout. It returns the process's exit error.
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.name, stopTimeout)
	}
	return p.waitErr
}

// kill kills the process if it still runs and waits for it. Safe to repeat.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// failure wraps err with the process's state and the end of its log.
func (p *proc) failure(err error) error {
	select {
	case <-p.done:
		err = fmt.Errorf("%w (the process has exited: %s)", err, p.cmd.ProcessState)
	default:
	}
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s: %w\n--- %s log (end) ---\n%s", p.name, err, p.name, b)
}

// waitStatus polls GET url+path until it answers with one of want. It fails
// if the process exits or startTimeout passes.
func (p *proc) waitStatus(ctx context.Context, path string, want ...int) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(startTimeout)
	for {
		if code, _, err := call(ctx, c, "GET", p.url+path, "", nil); err == nil && contains(want, code) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return p.failure(fmt.Errorf("exited while starting: %v", p.waitErr))
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Errorf("no %v from %s within %v", want, path, startTimeout))
		}
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// buildCoffer builds cmd/coffer into dir and returns the binary's path.
func buildCoffer(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	bin := filepath.Join(dir, "coffer")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/coffer-dev/coffer/cmd/coffer").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/coffer (run bench from inside the module): %w\n%s", err, out)
	}
	return bin, nil
}

// startTrivial starts this binary as the trivial server and waits until it
// answers.
func startTrivial(ctx context.Context, dir string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProc("trivial", "http://"+addr, filepath.Join(dir, "trivial.log"), self, trivialArg, addr)
	if err != nil {
		return nil, err
	}
	if err := p.waitStatus(ctx, "/", http.StatusOK); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// startCoffer writes a configuration (bolt storage and the key-file seal in
// dir) and starts a Coffer server on a free port. It waits until the server
// answers /v1/sys/health with any status.
func startCoffer(ctx context.Context, dir, bin string) (*proc, error) {
	return startCofferWith(ctx, dir, bin, "")
}

// startCofferWith is startCoffer with extra configuration, such as
// `audit { enabled = false }` for the audit-off comparison.
func startCofferWith(ctx context.Context, dir, bin, extra string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("listener \"tcp\" { address = %q }\nstorage \"bolt\" { path = %q }\nseal \"keyfile\" { path = %q }\n%s\n",
		addr, dbPath(dir), filepath.Join(dir, "unseal.key"), extra)
	cfgPath := filepath.Join(dir, "coffer.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	p, err := startProc("coffer", "http://"+addr, filepath.Join(dir, "coffer.log"), bin, "server", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	// 501 before init, 503 sealed, 200 serving: any answer means it is up.
	if err := p.waitStatus(ctx, "/v1/sys/health", 200, 501, 503); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// dbPath is the bolt file of the Coffer server in dir.
func dbPath(dir string) string { return filepath.Join(dir, "data", "coffer.db") }

// fileSize returns the size of the file at path, or 0.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// initCoffer initializes the server (the key-file seal unseals it at once)
// and returns the root token once the server reports healthy.
func initCoffer(ctx context.Context, p *proc) (string, error) {
	c := &http.Client{Timeout: callTimeout}
	code, body, err := call(ctx, c, "POST", p.url+"/v1/sys/init", "", []byte(`{"shares":0,"threshold":0}`))
	if err != nil || code != http.StatusOK {
		return "", p.failure(fmt.Errorf("init: %d %s %v", code, body, err))
	}
	var out struct {
		RootToken string `json:"root_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RootToken == "" {
		return "", p.failure(fmt.Errorf("init answer %q: %v", body, err))
	}
	return out.RootToken, p.waitStatus(ctx, "/v1/sys/health", http.StatusOK)
}

// writeReadSecret writes the secret of the read steps and checks that it
// reads back.
func writeReadSecret(ctx context.Context, url, token string) error {
	c := &http.Client{Timeout: callTimeout}
	code, body, err := call(ctx, c, "PUT", url+"/v1/secrets/"+readSecret, token, writeBody)
	if err != nil || code/100 != 2 {
		return fmt.Errorf("write %s: %d %s %v", readSecret, code, body, err)
	}
	code, body, err = call(ctx, c, "GET", url+"/v1/secrets/"+readSecret, token, nil)
	if err != nil || code != http.StatusOK || !bytes.Contains(body, []byte(secretValue)) {
		return fmt.Errorf("read %s back: %d %s %v", readSecret, code, body, err)
	}
	return nil
}

// restartCoffer stops the server with SIGTERM, starts it again on the same
// configuration and times how long it takes to answer /v1/sys/health with 200
// (key-file unseal, no operator step).
func restartCoffer(ctx context.Context, old *proc) (*proc, restart, error) {
	var r restart
	t0 := time.Now()
	if err := old.stop(); err != nil {
		r.StopError = err.Error() // reported, not fatal: the restart is still measured
	}
	r.StopMs = ms(time.Since(t0))

	args := old.cmd.Args[1:]
	t1 := time.Now()
	p, err := startProc(old.name, old.url, old.logPath, old.cmd.Path, args...)
	if err != nil {
		return old, r, err
	}
	if err := p.waitStatus(ctx, "/v1/sys/health", http.StatusOK); err != nil {
		return p, r, err
	}
	r.ServingMs = ms(time.Since(t1))
	return p, r, nil
}

// call performs one HTTP request and returns the status and the body.
func call(ctx context.Context, c *http.Client, method, url, token string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("X-Coffer-Token", token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
