package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

func (e *env) runCommand() *cobra.Command {
	var (
		specs              []string
		allowBinary, watch bool
		interval, grace    time.Duration
		onChange           string
	)
	cmd := &cobra.Command{
		Use:   "run --secret VAR=NAME[#FIELD] ... [--watch] -- COMMAND [ARG...]",
		Short: "Run a command with secrets in its environment",
		Long: `Run a command with secrets in its environment. Each --secret VAR=NAME puts the current
value of the secret NAME in the variable VAR; VAR=NAME#FIELD puts one field of a JSON
object; VAR_=NAME (a variable ending in _) puts every top-level field of a JSON object in
VAR_FIELD, upper-cased, other characters than A-Z, 0-9 and _ turned into _. The command
inherits coffer's environment, streams and exit status (128+N when signal N killed it);
SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to it. Values never
appear in the command's arguments or in coffer's messages.

--watch checks the secrets every --interval and, when one changes, restarts the command
with the new values (SIGTERM, then SIGKILL after --grace) or, with --on-change signal:HUP,
sends it a signal instead: a running process's environment cannot change, so a signalled
command must fetch new values itself.

  coffer run --secret DB_PASSWORD=prod/db#password --secret API_KEY=prod/api-key -- ./server
  coffer run --secret DB_=prod/db -- ./server        # DB_HOST, DB_USER, DB_PASSWORD, ...
  coffer run --secret DB_=prod/db --watch --interval 1m -- ./server   # restarts on rotation`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !watch {
				for _, f := range []string{"interval", "on-change"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s needs --watch", f)
					}
				}
			}
			if len(specs) == 0 {
				return errors.New("give at least one --secret VAR=NAME[#FIELD]")
			}
			if interval <= 0 {
				return errors.New("--interval must be positive, e.g. 30s")
			}
			if grace < 0 {
				return errors.New("--grace must not be negative")
			}
			r := &runner{
				argv: args, allowBinary: allowBinary, watch: watch, interval: interval, grace: grace,
				stdin: e.stdin, stdout: e.stdout, stderr: lockWriter(e.stderr), baseEnv: os.Environ(),
			}
			for _, s := range specs {
				ref, err := parseSecretRef(s)
				if err != nil {
					return err
				}
				r.refs = append(r.refs, ref)
			}
			var err error
			if r.onChange, err = parseOnChange(onChange); err != nil {
				return err
			}
			if r.c, err = e.client(); err != nil {
				return err
			}
			ctx := cmd.Context()
			secrets, vars, err := r.prepare(ctx)
			if err != nil {
				return err
			}
			// Only now: until the child runs, SIGINT should end coffer itself.
			sigs := make(chan os.Signal, 8)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
			defer signal.Stop(sigs)
			return r.supervise(ctx, secrets, vars, sigs)
		},
	}
	// Everything from the command on is the command's, flags included.
	cmd.Flags().SetInterspersed(false)
	f := cmd.Flags()
	f.StringArrayVar(&specs, "secret", nil, "VAR=NAME, VAR=NAME#FIELD or VAR_=NAME (JSON fields as VAR_FIELD); repeatable")
	f.BoolVar(&allowBinary, "allow-binary", false, "allow binary values (their raw bytes; NUL bytes are still refused)")
	f.BoolVar(&watch, "watch", false, "check the secrets for new versions and act on --on-change")
	f.DurationVar(&interval, "interval", 30*time.Second, "how often --watch checks")
	f.StringVar(&onChange, "on-change", "restart", "restart, or signal:NAME (HUP, INT, QUIT, TERM, USR1, USR2) to signal the command with its environment unchanged")
	f.DurationVar(&grace, "grace", 10*time.Second, "how long a stopping command gets between SIGTERM and SIGKILL")
	return cmd
}

// secretRef is one --secret: which secret goes into which variables.
type secretRef struct {
	spec   string // as given, for messages; holds no value
	envVar string
	name   string
	field  string // a JSON field to pick, or ""
	expand bool   // envVar ends in _: every field becomes envVar+FIELD
}

// parseSecretRef parses VAR=NAME[#FIELD]. Secret names cannot hold '#',
// and variable names cannot hold '=', so both cuts are unambiguous.
func parseSecretRef(spec string) (secretRef, error) {
	v, target, ok := strings.Cut(spec, "=")
	if !ok || v == "" || target == "" {
		return secretRef{}, fmt.Errorf("--secret %q: want VAR=NAME or VAR=NAME#FIELD", spec)
	}
	if !validEnvName(v) {
		return secretRef{}, fmt.Errorf("--secret %q: %q is not a variable name: use letters, digits and _, not starting with a digit", spec, v)
	}
	name, field, hasField := strings.Cut(target, "#")
	if name == "" {
		return secretRef{}, fmt.Errorf("--secret %q: the secret name is empty", spec)
	}
	if hasField && field == "" {
		return secretRef{}, fmt.Errorf("--secret %q: the field after # is empty", spec)
	}
	return secretRef{spec: spec, envVar: v, name: name, field: field, expand: !hasField && strings.HasSuffix(v, "_")}, nil
}

func validEnvName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// envSuffix turns a JSON field name into a variable name suffix.
func envSuffix(field string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(field) {
		if r == '_' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// onChange is what --watch does when a secret changes.
type onChange struct {
	restart bool
	sig     syscall.Signal // when !restart
}

func parseOnChange(s string) (onChange, error) {
	if s == "restart" {
		return onChange{restart: true}, nil
	}
	name, ok := strings.CutPrefix(s, "signal:")
	if ok {
		if sig, ok := signalByName(name); ok {
			return onChange{sig: sig}, nil
		}
	}
	return onChange{}, fmt.Errorf("--on-change %q: want restart or signal:NAME with NAME one of HUP, INT, QUIT, TERM, USR1, USR2", s)
}

func signalByName(name string) (syscall.Signal, bool) {
	switch strings.TrimPrefix(strings.ToUpper(name), "SIG") {
	case "HUP":
		return syscall.SIGHUP, true
	case "INT":
		return syscall.SIGINT, true
	case "QUIT":
		return syscall.SIGQUIT, true
	case "TERM":
		return syscall.SIGTERM, true
	case "USR1":
		return syscall.SIGUSR1, true
	case "USR2":
		return syscall.SIGUSR2, true
	}
	return 0, false
}

// runner starts a command with secrets in its environment and supervises
// it. One goroutine, supervise's, owns the child; the poller only reports.
type runner struct {
	c           *client.Client
	refs        []secretRef
	argv        []string
	allowBinary bool
	watch       bool
	interval    time.Duration
	grace       time.Duration
	onChange    onChange

	stdin          io.Reader
	stdout, stderr io.Writer // stderr is shared with the poller: safe for concurrent use
	baseEnv        []string  // the child's environment before the secrets
}

// run is prepare and supervise: the whole command, for tests that feed
// signals through a channel.
func (r *runner) run(ctx context.Context, signals <-chan os.Signal) error {
	secrets, vars, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	return r.supervise(ctx, secrets, vars, signals)
}

// prepare reads the secrets and builds the variables, or says why it
// cannot; nothing has started yet.
func (r *runner) prepare(ctx context.Context) (map[string]*client.Secret, []string, error) {
	secrets, err := r.fetch(ctx)
	if err != nil {
		return nil, nil, err
	}
	vars, err := r.environ(secrets)
	if err != nil {
		return nil, nil, err
	}
	return secrets, vars, nil
}

// fetch reads the current version of every secret the refs name.
func (r *runner) fetch(ctx context.Context) (map[string]*client.Secret, error) {
	out := map[string]*client.Secret{}
	for _, ref := range r.refs {
		if _, ok := out[ref.name]; ok {
			continue
		}
		s, err := r.c.Get(ctx, ref.name, client.Current())
		if err != nil {
			return nil, r.describeFetchError(ctx, ref, err)
		}
		out[ref.name] = s
	}
	return out, nil
}

// describeFetchError says what went wrong reading ref's secret and what
// to do. It builds a new error rather than wrapping: Main's describeError
// would otherwise print only the server's message.
func (r *runner) describeFetchError(ctx context.Context, ref secretRef, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case "not_found":
			return fmt.Errorf("secret %q (--secret %s) does not exist; check the name with `coffer secret list`", ref.name, ref.spec)
		case "forbidden":
			return fmt.Errorf("permission denied reading secret %q (--secret %s): %s; the token needs a policy granting read on it", ref.name, ref.spec, ce.Message)
		case "version_not_found", "destroyed", "deleted", "expired":
			return fmt.Errorf("secret %q (--secret %s) has no current value to read: %s", ref.name, ref.spec, ce.Message)
		}
		return fmt.Errorf("reading secret %q: %s", ref.name, describeError(err))
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return fmt.Errorf("cannot reach the Coffer server at %s to read secret %q: %v\nIs the server running? Check COFFER_ADDR or --address.", r.c.Address(), ref.name, err)
	}
	return fmt.Errorf("reading secret %q: %v", ref.name, err)
}

// environ turns the secrets into KEY=VALUE entries, in the order of the
// refs. Its errors name secrets, fields and variables, never values.
func (r *runner) environ(secrets map[string]*client.Secret) ([]string, error) {
	var vars []string
	setBy := map[string]string{} // variable -> the --secret that set it
	add := func(ref secretRef, key, value string) error {
		if prev, ok := setBy[key]; ok {
			return fmt.Errorf("%s is set by both --secret %s and --secret %s", key, prev, ref.spec)
		}
		if strings.IndexByte(value, 0) >= 0 {
			return fmt.Errorf("the value for %s (--secret %s) holds a NUL byte, which an environment variable cannot", key, ref.spec)
		}
		setBy[key] = ref.spec
		vars = append(vars, key+"="+value)
		return nil
	}
	for _, ref := range r.refs {
		s := secrets[ref.name]
		if s.Type == "binary" && !r.allowBinary {
			return nil, fmt.Errorf("secret %q (--secret %s) is binary; pass --allow-binary to put its raw bytes in the environment", ref.name, ref.spec)
		}
		switch {
		case ref.field != "":
			obj, err := jsonObject(s, ref)
			if err != nil {
				return nil, err
			}
			raw, ok := obj[ref.field]
			if !ok {
				return nil, fmt.Errorf("secret %q has no field %q (--secret %s)", ref.name, ref.field, ref.spec)
			}
			if err := add(ref, ref.envVar, fieldValue(raw)); err != nil {
				return nil, err
			}
		case ref.expand:
			obj, err := jsonObject(s, ref)
			if err != nil {
				return nil, fmt.Errorf("%w; %s ends in _, which spreads a JSON object's fields over %sFIELD variables: drop the _ to use the whole value", err, ref.envVar, ref.envVar)
			}
			fields := make([]string, 0, len(obj))
			for k := range obj {
				fields = append(fields, k)
			}
			sort.Strings(fields)
			for _, k := range fields {
				if k == "" {
					return nil, fmt.Errorf("secret %q has a field with an empty name, which cannot name a variable (--secret %s)", ref.name, ref.spec)
				}
				if err := add(ref, ref.envVar+envSuffix(k), fieldValue(obj[k])); err != nil {
					return nil, err
				}
			}
		default:
			if err := add(ref, ref.envVar, string(s.Data)); err != nil {
				return nil, err
			}
		}
	}
	return vars, nil
}

// jsonObject decodes a JSON object value. Decoding errors are not
// passed on: they quote the value.
func jsonObject(s *client.Secret, ref secretRef) (map[string]json.RawMessage, error) {
	if s.Type != "json" {
		return nil, fmt.Errorf("secret %q is %s, not a JSON object (--secret %s)", ref.name, s.Type, ref.spec)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(s.Data, &obj) != nil || obj == nil {
		return nil, fmt.Errorf("secret %q is JSON but not an object (--secret %s)", ref.name, ref.spec)
	}
	return obj, nil
}

// fieldValue is a JSON field as a variable's value: strings as they are,
// null as "", anything else as compact JSON.
func fieldValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

// childEnv is the parent's environment with vars replacing same-named entries.
func (r *runner) childEnv(vars []string) []string {
	set := map[string]bool{}
	for _, kv := range vars {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	// The child gets its secrets, not the credential that fetched them.
	set["COFFER_TOKEN"] = true
	env := make([]string, 0, len(r.baseEnv)+len(vars))
	for _, kv := range r.baseEnv {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}

// child is a started command.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait has returned; cmd.ProcessState is then set
}

func (c *child) signal(sig os.Signal) {
	_ = c.cmd.Process.Signal(sig) // fails only when it has exited, which done reports
}

// start starts the command. A command that cannot start ends coffer with
// the shell's statuses: 127 when it is not found, 126 otherwise.
func (r *runner) start(vars []string) (*child, error) {
	cmd := exec.Command(r.argv[0], r.argv[1:]...)
	cmd.Env = r.childEnv(vars)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r.stdin, r.stdout, r.stderr
	// Streams that are not files are copied; a grandchild that keeps
	// them open must not keep coffer waiting after the child exits.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		fmt.Fprintf(r.stderr, "Error: cannot start %s: %v\n", r.argv[0], err)
		return nil, &exitError{code}
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the status is read from ProcessState
		close(c.done)
	}()
	return c, nil
}

// exitResult turns the child's end into coffer's: nil for 0, else an
// exitError with its status, 128+N when signal N killed it.
func exitResult(c *child) error {
	ps := c.cmd.ProcessState
	code := ps.ExitCode()
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code == 0 {
		return nil
	}
	return &exitError{code}
}

// supervise starts the child, forwards signals to it, acts on secret
// changes when watching, and returns once the child has exited. When ctx
// ends it stops the child as a restart would.
func (r *runner) supervise(ctx context.Context, secrets map[string]*client.Secret, vars []string, signals <-chan os.Signal) error {
	ch, err := r.start(vars)
	if err != nil {
		return err
	}
	var changes <-chan map[string]*client.Secret
	if r.watch {
		pollCtx, stopPolling := context.WithCancel(ctx)
		c := make(chan map[string]*client.Secret)
		var wg sync.WaitGroup
		wg.Go(func() { r.poll(pollCtx, versions(secrets), c) })
		defer func() {
			stopPolling()
			wg.Wait()
		}()
		changes = c
	}
	for {
		select {
		case sig := <-signals:
			ch.signal(sig)
		case <-ch.done:
			return exitResult(ch)
		case <-ctx.Done():
			r.stop(ch, signals)
			return exitResult(ch)
		case fresh := <-changes:
			what := describeChanges(secrets, fresh)
			if !r.onChange.restart {
				r.warnf("%s; sending %s to the command", what, signalName(r.onChange.sig))
				secrets = fresh
				ch.signal(r.onChange.sig)
				continue
			}
			newVars, err := r.environ(fresh)
			secrets = fresh // do not retry an unusable version at every check
			if err != nil {
				r.warnf("%s but cannot be used, so the command keeps the old values: %v", what, err)
				continue
			}
			r.warnf("%s; restarting the command", what)
			if r.stop(ch, signals) {
				return exitResult(ch) // a signal came for us meanwhile: end, do not restart
			}
			if ch, err = r.start(newVars); err != nil {
				return err
			}
		}
	}
}

// stop sends the child SIGTERM, then SIGKILL after the grace period, and
// waits for it to exit. Signals arriving meanwhile are forwarded; stop
// reports whether any did.
func (r *runner) stop(ch *child, signals <-chan os.Signal) (signalled bool) {
	ch.signal(syscall.SIGTERM)
	t := time.NewTimer(r.grace)
	defer t.Stop()
	for {
		select {
		case <-ch.done:
			return signalled
		case sig := <-signals:
			ch.signal(sig)
			signalled = true
		case <-t.C:
			r.warnf("the command did not exit within %s of SIGTERM; killing it", r.grace)
			_ = ch.cmd.Process.Kill()
			<-ch.done
			return signalled
		}
	}
}

// poll reads the secrets every interval and sends out the set whenever a
// version differs from known. Failures are reported once each and retried.
func (r *runner) poll(ctx context.Context, known map[string]int, out chan<- map[string]*client.Secret) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fresh, err := r.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				r.warnf("cannot check the secrets for changes (will keep trying every %s): %v", r.interval, err)
				lastErr = msg
			}
			continue
		}
		if lastErr != "" {
			r.warnf("checking the secrets for changes again")
			lastErr = ""
		}
		v := versions(fresh)
		if maps.Equal(known, v) {
			continue
		}
		select {
		case out <- fresh:
			known = v
		case <-ctx.Done():
			return
		}
	}
}

func versions(secrets map[string]*client.Secret) map[string]int {
	v := make(map[string]int, len(secrets))
	for n, s := range secrets {
		v[n] = s.Version
	}
	return v
}

// describeChanges says which secrets moved to which version.
func describeChanges(old, fresh map[string]*client.Secret) string {
	var parts []string
	for n, s := range fresh {
		if o := old[n]; o == nil || o.Version != s.Version {
			from := 0
			if o != nil {
				from = o.Version
			}
			parts = append(parts, fmt.Sprintf("%s changed from version %d to %d", n, from, s.Version))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func signalName(sig syscall.Signal) string {
	for _, n := range []string{"HUP", "INT", "QUIT", "TERM", "USR1", "USR2"} {
		if s, _ := signalByName(n); s == sig {
			return "SIG" + n
		}
	}
	return sig.String()
}

func (r *runner) warnf(format string, args ...any) {
	fmt.Fprintf(r.stderr, "coffer run: "+format+"\n", args...)
}

// lockWriter makes w safe for concurrent writes, unless it is a file:
// exec hands files to the child as they are, keeping it a terminal's or
// a journal's, while any other writer is copied through a pipe.
func lockWriter(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); ok {
		return w
	}
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex // serializes Write
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
