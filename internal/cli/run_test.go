package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// Values distinctive enough that finding one in output means a leak.
const (
	dbPassword = "db-pw-7f3a9c"
	apiKey     = "api-key-b81e02"
)

// syncBuffer is a bytes.Buffer safe to read while a child writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until buf holds want.
func waitFor(t testing.TB, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never held %q; it is %q", want, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newRunServer starts an initialized, unsealed in-process server holding
// a few secrets, points COFFER_ADDR and COFFER_TOKEN at it, and returns a
// root client.
func newRunServer(t testing.TB) *client.Client {
	t.Helper()
	_, addr, root := startServer(t, core.Config{Backend: mem.New()})
	cl, err := client.New(client.Config{Address: addr, Token: root})
	if err != nil {
		t.Fatal(err)
	}
	db := `{"user": "app", "password": "` + dbPassword + `", "port": 5432, "host-name": "db.internal", "opts": {"ssl": true}, "none": null}`
	put(t, cl, "prod/db", client.PutInput{JSON: json.RawMessage(db)})
	put(t, cl, "prod/api-key", client.PutInput{Text: ptr(apiKey)})
	put(t, cl, "prod/blob", client.PutInput{Bytes: []byte{0xff, 0xfe, 'b', 'i', 'n'}})
	put(t, cl, "prod/nul", client.PutInput{Bytes: []byte{'a', 0, 'b'}})
	put(t, cl, "prod/list", client.PutInput{JSON: json.RawMessage(`[1, 2]`)})
	return cl
}

func ptr[T any](v T) *T { return &v }

// startServer starts an initialized, unsealed in-process server with cfg,
// points COFFER_ADDR and COFFER_TOKEN at it, and returns its core, address
// and root token.
func startServer(t testing.TB, cfg core.Config) (c *core.Core, addr, root string) {
	t.Helper()
	ctx := context.Background()
	c = core.New(cfg)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Core: c}))
	t.Cleanup(srv.Close)
	res, err := c.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Seal)
	t.Setenv("COFFER_ADDR", srv.URL)
	t.Setenv("COFFER_TOKEN", res.RootToken)
	t.Setenv("COFFER_CACERT", "")
	return c, srv.URL, res.RootToken
}

func put(t testing.TB, c *client.Client, name string, in client.PutInput) {
	t.Helper()
	if _, err := c.Put(context.Background(), name, in); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

// runMain runs `coffer args...` and returns its output and exit code.
func runMain(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errb syncBuffer
	code = Main(ctx, args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestRun(t *testing.T) {
	newRunServer(t)
	t.Setenv("API_KEY", "from-the-parent") // replaced by the secret
	t.Setenv("KEEP_ME", "inherited")
	tests := []struct {
		name       string
		args       []string
		wantOut    string // exact stdout
		wantCode   int
		wantErr    string // in stderr
		notStarted bool   // the command must not have run
	}{
		{
			name:     "variables, a field and the exit status",
			args:     []string{"--secret", "DB_PASSWORD=prod/db#password", "--secret", "API_KEY=prod/api-key", "--", "/bin/sh", "-c", `echo "$DB_PASSWORD"; echo "$API_KEY"; echo "$KEEP_ME"; exit 3`},
			wantOut:  dbPassword + "\n" + apiKey + "\ninherited\n",
			wantCode: 3,
		},
		{
			name:    "non-string fields as JSON",
			args:    []string{"--secret", "PORT=prod/db#port", "--secret", "OPTS=prod/db#opts", "--secret", "NONE=prod/db#none", "--", "/bin/sh", "-c", `echo "$PORT $OPTS [$NONE]"`},
			wantOut: "5432 {\"ssl\":true} []\n",
		},
		{
			name:    "a JSON object spread over VAR_FIELD variables",
			args:    []string{"--secret", "DB_=prod/db", "--", "/bin/sh", "-c", `echo "$DB_USER|$DB_PASSWORD|$DB_PORT|$DB_HOST_NAME|$DB_OPTS"`},
			wantOut: "app|" + dbPassword + "|5432|db.internal|{\"ssl\":true}\n",
		},
		{
			name:    "without -- the command's own flags stay its own",
			args:    []string{"--secret", "K=prod/api-key", "/bin/sh", "-c", `echo "$K"`, "--secret"},
			wantOut: apiKey + "\n",
		},
		{
			name:    "values never in the command line",
			args:    []string{"--secret", "DB_=prod/db", "--secret", "API_KEY=prod/api-key", "--", "/bin/sh", "-c", `tr '\0' ' ' < /proc/$$/cmdline; echo`},
			wantOut: "/bin/sh -c tr '\\0' ' ' < /proc/$$/cmdline; echo \n",
		},
		{
			name:    "binary allowed",
			args:    []string{"--allow-binary", "--secret", "BLOB=prod/blob", "--", "/bin/sh", "-c", `printf '%s' "$BLOB"`},
			wantOut: "\xff\xfebin",
		},
		{
			name:       "binary refused",
			args:       []string{"--secret", "BLOB=prod/blob", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    `secret "prod/blob" (--secret BLOB=prod/blob) is binary; pass --allow-binary`,
			notStarted: true,
		},
		{
			name:       "NUL bytes refused",
			args:       []string{"--allow-binary", "--secret", "N=prod/nul", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    "holds a NUL byte",
			notStarted: true,
		},
		{
			name:       "missing secret",
			args:       []string{"--secret", "API_KEY=prod/api-key", "--secret", "X=prod/nope", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    `secret "prod/nope" (--secret X=prod/nope) does not exist`,
			notStarted: true,
		},
		{
			name:       "missing field",
			args:       []string{"--secret", "X=prod/db#nope", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    `secret "prod/db" has no field "nope"`,
			notStarted: true,
		},
		{
			name:       "field of a text secret",
			args:       []string{"--secret", "X=prod/api-key#f", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    `secret "prod/api-key" is text, not a JSON object`,
			notStarted: true,
		},
		{
			name:       "spreading a text secret",
			args:       []string{"--secret", "KEY_=prod/api-key", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    "drop the _ to use the whole value",
			notStarted: true,
		},
		{
			name:       "spreading a JSON array",
			args:       []string{"--secret", "L_=prod/list", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    "is JSON but not an object",
			notStarted: true,
		},
		{
			name:       "a variable set twice",
			args:       []string{"--secret", "DB_=prod/db", "--secret", "DB_USER=prod/api-key", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    "DB_USER is set by both --secret DB_=prod/db and --secret DB_USER=prod/api-key",
			notStarted: true,
		},
		{
			name:       "bad variable name",
			args:       []string{"--secret", "1X=prod/db", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    `"1X" is not a variable name`,
			notStarted: true,
		},
		{
			name:       "no secret",
			args:       []string{"--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    "give at least one --secret",
			notStarted: true,
		},
		{
			name:       "--interval without --watch",
			args:       []string{"--secret", "K=prod/api-key", "--interval", "1s", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    "--interval needs --watch",
			notStarted: true,
		},
		{
			name:       "bad --on-change",
			args:       []string{"--secret", "K=prod/api-key", "--watch", "--on-change", "signal:KILL", "--", "/bin/sh", "-c", "echo started"},
			wantCode:   1,
			wantErr:    "want restart or signal:NAME",
			notStarted: true,
		},
		{
			name:     "command not found",
			args:     []string{"--secret", "K=prod/api-key", "--", "/nonexistent/cmd"},
			wantCode: 127,
			wantErr:  "cannot start /nonexistent/cmd",
		},
		{
			name:     "killed by a signal",
			args:     []string{"--secret", "K=prod/api-key", "--", "/bin/sh", "-c", "kill -USR2 $$"},
			wantCode: 128 + int(syscall.SIGUSR2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runMain(context.Background(), append([]string{"run"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, errOut)
			}
			if tt.notStarted {
				if out != "" {
					t.Errorf("the command ran: stdout %q", out)
				}
			} else if out != tt.wantOut {
				t.Errorf("stdout %q, want %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q, want it to hold %q", errOut, tt.wantErr)
			}
			for _, v := range []string{dbPassword, apiKey, "\xfebin"} {
				if strings.Contains(errOut, v) {
					t.Errorf("stderr %q holds a secret value", errOut)
				}
			}
		})
	}
}

func TestRunPermissionDenied(t *testing.T) {
	root := newRunServer(t)
	ctx := context.Background()
	if _, err := root.ApplyPolicies(ctx, map[string]string{"api": `path "prod/api-key" { capabilities = ["read"] }`}, false); err != nil {
		t.Fatal(err)
	}
	tok, err := root.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("COFFER_TOKEN", tok.Token)
	out, errOut, code := runMain(ctx, "run", "--secret", "K=prod/api-key", "--secret", "DB_=prod/db", "--", "/bin/sh", "-c", "echo started")
	if code != 1 || out != "" || !strings.Contains(errOut, `permission denied reading secret "prod/db" (--secret DB_=prod/db)`) {
		t.Fatalf("run without read on prod/db: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestRunServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	t.Setenv("COFFER_ADDR", addr)
	t.Setenv("COFFER_TOKEN", "t")
	out, errOut, code := runMain(context.Background(), "run", "--secret", "K=prod/api-key", "--", "/bin/sh", "-c", "echo started")
	if code != 1 || out != "" || !strings.Contains(errOut, "cannot reach the Coffer server at "+addr) || !strings.Contains(errOut, "Is the server running?") {
		t.Fatalf("run with the server down: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// newTestRunner returns a runner of c for argv with refs, writing to out.
func newTestRunner(t testing.TB, c *client.Client, out *syncBuffer, argv []string, refs ...string) *runner {
	t.Helper()
	r := &runner{c: c, argv: argv, interval: time.Hour, grace: 5 * time.Second, onChange: onChange{restart: true},
		stdin: strings.NewReader(""), stdout: out, stderr: out, baseEnv: os.Environ()}
	for _, s := range refs {
		ref, err := parseSecretRef(s)
		if err != nil {
			t.Fatal(err)
		}
		r.refs = append(r.refs, ref)
	}
	return r
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestRunForwardsSignals feeds signals through the channel that
// signal.Notify fills in production.
func TestRunForwardsSignals(t *testing.T) {
	c := newRunServer(t)
	tests := []struct {
		name     string
		script   string
		sig      os.Signal
		wantCode int
		wantOut  string
	}{
		{"trapped TERM", `trap 'echo "term $K"; exit 42' TERM; echo ready; while :; do sleep 0.05; done`, syscall.SIGTERM, 42, "term " + apiKey},
		{"trapped INT", `trap 'echo int; exit 7' INT; echo ready; while :; do sleep 0.05; done`, syscall.SIGINT, 7, "int"},
		{"untrapped USR1", `echo ready; while :; do sleep 0.05; done`, syscall.SIGUSR1, 128 + int(syscall.SIGUSR1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			r := newTestRunner(t, c, &out, []string{"/bin/sh", "-c", tt.script}, "K=prod/api-key")
			sigs := make(chan os.Signal, 1)
			done := make(chan error, 1)
			go func() { done <- r.run(context.Background(), sigs) }()
			waitFor(t, &out, "ready")
			sigs <- tt.sig
			select {
			case err := <-done:
				if got := exitCode(err); got != tt.wantCode {
					t.Fatalf("run = %v (exit %d), want exit %d", err, got, tt.wantCode)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the command did not end after the signal")
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("output %q, want it to hold %q", out.String(), tt.wantOut)
			}
		})
	}
}

// TestRunWatchRestart changes a secret under a watching run and expects
// the command to start again with the new value.
func TestRunWatchRestart(t *testing.T) {
	c := newRunServer(t)
	put(t, c, "prod/rotating", client.PutInput{Text: ptr("first-value")})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"run", "--secret", "V=prod/rotating", "--watch", "--interval", "100ms", "--grace", "5s", "--",
			"/bin/sh", "-c", `trap 'exit 0' TERM; echo "start $V"; while :; do sleep 0.05; done`}, strings.NewReader(""), &out, &errOut)
	}()
	waitFor(t, &out, "start first-value\n")
	put(t, c, "prod/rotating", client.PutInput{Text: ptr("second-value")})
	waitFor(t, &out, "start second-value\n")
	cancel()
	select {
	case got := <-code:
		if got != 0 {
			t.Fatalf("run ended with exit %d, want 0 (the command's own on TERM); stderr %q", got, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not end after its context")
	}
	if want := "prod/rotating changed from version 1 to 2; restarting the command"; !strings.Contains(errOut.String(), want) {
		t.Fatalf("stderr %q, want it to hold %q", errOut.String(), want)
	}
	if strings.Contains(errOut.String(), "second-value") {
		t.Fatalf("stderr %q holds a secret value", errOut.String())
	}
}

// TestRunWatchSignal: with --on-change signal:HUP the command is signalled,
// not restarted, and its environment stays as it was.
func TestRunWatchSignal(t *testing.T) {
	c := newRunServer(t)
	put(t, c, "prod/rotating", client.PutInput{Text: ptr("first-value")})
	var out syncBuffer
	r := newTestRunner(t, c, &out, []string{"/bin/sh", "-c", `trap 'echo "hup $V"' HUP; trap 'exit 0' TERM; echo "start $V"; while :; do sleep 0.05; done`}, "V=prod/rotating")
	r.watch, r.interval, r.onChange = true, 50*time.Millisecond, onChange{sig: syscall.SIGHUP}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.run(ctx, make(chan os.Signal)) }()
	waitFor(t, &out, "start first-value\n")
	put(t, c, "prod/rotating", client.PutInput{Text: ptr("second-value")})
	waitFor(t, &out, "hup first-value\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run = %v, want nil", err)
	}
	if n := strings.Count(out.String(), "start "); n != 1 {
		t.Fatalf("the command started %d times, want once; output %q", n, out.String())
	}
}

func TestParseSecretRef(t *testing.T) {
	tests := []struct {
		spec    string
		want    secretRef
		wantErr bool
	}{
		{spec: "DB=prod/db", want: secretRef{envVar: "DB", name: "prod/db"}},
		{spec: "DB=prod/db#password", want: secretRef{envVar: "DB", name: "prod/db", field: "password"}},
		{spec: "DB_=prod/db", want: secretRef{envVar: "DB_", name: "prod/db", expand: true}},
		{spec: "DB_=prod/db#user", want: secretRef{envVar: "DB_", name: "prod/db", field: "user"}}, // a field is never spread
		{spec: "_x1=a=b", want: secretRef{envVar: "_x1", name: "a=b"}},                             // names may hold =
		{spec: "DB", wantErr: true},
		{spec: "=prod/db", wantErr: true},
		{spec: "DB=", wantErr: true},
		{spec: "DB=#f", wantErr: true},
		{spec: "DB=prod/db#", wantErr: true},
		{spec: "9DB=prod/db", wantErr: true},
		{spec: "D-B=prod/db", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseSecretRef(tt.spec)
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseSecretRef(%q) = %+v, want an error", tt.spec, got)
			}
			continue
		}
		tt.want.spec = tt.spec
		if err != nil || got != tt.want {
			t.Errorf("parseSecretRef(%q) = %+v, %v, want %+v", tt.spec, got, err, tt.want)
		}
	}
}

func TestEnvSuffix(t *testing.T) {
	tests := []struct{ in, want string }{
		{"password", "PASSWORD"},
		{"host-name", "HOST_NAME"},
		{"a.b c", "A_B_C"},
		{"ünï", "_N_"}, // non-ASCII letters become one _ each
		{"x_1", "X_1"},
	}
	for _, tt := range tests {
		if got := envSuffix(tt.in); got != tt.want {
			t.Errorf("envSuffix(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
