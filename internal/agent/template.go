package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
)

// renderDebounce lets a burst of events (a rotation touches several
// secrets) end in one render.
const renderDebounce = 50 * time.Millisecond

// maxCommandOutput bounds what a template command may write to the log.
const maxCommandOutput = 8 << 10

// templateFuncStubs are the template functions with the right signatures,
// for parsing; rendering binds real ones.
func templateFuncStubs() template.FuncMap {
	return template.FuncMap{
		"secret":        func(string) (string, error) { return "", nil },
		"secretField":   func(string, string) (string, error) { return "", nil },
		"secretVersion": func(string) (int, error) { return 0, nil },
		"env":           os.Getenv,
	}
}

// tmpl is one configured template and what its last render read.
type tmpl struct {
	cfg Template
	t   *template.Template
	// Owned by the renderer goroutine.
	retry   *backoff
	retryAt time.Time // zero: no retry pending
}

// renderer keeps the templates rendered: after login, when an event
// touches a secret a template read, after a resynchronisation, and every
// interval. Rendering happens on one goroutine (run); the notify methods
// are safe for concurrent use.
type renderer struct {
	templates []*tmpl
	get       func(ctx context.Context, s selector) (reply, error)
	log       *slog.Logger
	metrics   *metrics
	interval  time.Duration

	mu    sync.Mutex                      // guards deps and dirty
	deps  []map[string]bool               // per template: the names its last render read
	dirty map[int]bool                    // templates to render
	wake  chan struct{}                   // buffered 1: dirty is not empty
	ready func(ctx context.Context) error // blocks until the agent holds a token
}

func newRenderer(cfgs []Template, get func(context.Context, selector) (reply, error), ready func(context.Context) error,
	log *slog.Logger, m *metrics, interval time.Duration, retry func() *backoff) (*renderer, error) {
	r := &renderer{get: get, ready: ready, log: log, metrics: m, interval: interval,
		dirty: map[int]bool{}, wake: make(chan struct{}, 1)}
	for _, c := range cfgs {
		t, err := template.New(c.name()).Option("missingkey=error").Funcs(templateFuncStubs()).Parse(c.text)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", c.name(), err)
		}
		r.templates = append(r.templates, &tmpl{cfg: c, t: t, retry: retry()})
		r.deps = append(r.deps, map[string]bool{})
	}
	return r, nil
}

// notify marks the templates that read name for rendering.
func (r *renderer) notify(name string) {
	r.mu.Lock()
	n := 0
	for i, d := range r.deps {
		if d[name] {
			r.dirty[i] = true
			n++
		}
	}
	r.mu.Unlock()
	if n > 0 {
		r.signal()
	}
}

// notifyAll marks every template for rendering.
func (r *renderer) notifyAll() {
	r.mu.Lock()
	for i := range r.templates {
		r.dirty[i] = true
	}
	r.mu.Unlock()
	r.signal()
}

func (r *renderer) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run renders until ctx ends.
func (r *renderer) run(ctx context.Context) {
	if len(r.templates) == 0 {
		return
	}
	if r.ready(ctx) != nil {
		return
	}
	r.notifyAll()
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		retry := r.nextRetry()
		var retryC <-chan time.Time
		var timer *time.Timer
		if !retry.IsZero() {
			timer = time.NewTimer(time.Until(retry))
			retryC = timer.C
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-tick.C:
			r.notifyAll()
		case <-retryC:
			r.markDueRetries()
		}
		if timer != nil {
			timer.Stop()
		}
		if !sleep(ctx, renderDebounce) {
			return
		}
		r.mu.Lock()
		due := r.dirty
		r.dirty = map[int]bool{}
		r.mu.Unlock()
		for i, t := range r.templates {
			if due[i] {
				r.render(ctx, i, t)
			}
		}
	}
}

func (r *renderer) nextRetry() time.Time {
	var at time.Time
	for _, t := range r.templates {
		if !t.retryAt.IsZero() && (at.IsZero() || t.retryAt.Before(at)) {
			at = t.retryAt
		}
	}
	return at
}

func (r *renderer) markDueRetries() {
	now := time.Now()
	r.mu.Lock()
	for i, t := range r.templates {
		if !t.retryAt.IsZero() && !t.retryAt.After(now) {
			r.dirty[i] = true
		}
	}
	r.mu.Unlock()
}

// render renders template i and, if its output changed, writes it and
// runs its command and signal.
func (r *renderer) render(ctx context.Context, i int, t *tmpl) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, deps, err := r.execute(rctx, t)
	r.mu.Lock()
	if err != nil {
		// Keep watching what the failed render and the last good one read.
		for n := range deps {
			r.deps[i][n] = true
		}
	} else {
		r.deps[i] = deps
	}
	r.mu.Unlock()
	if err == nil {
		var changed bool
		changed, err = r.write(t, out)
		if err == nil {
			t.retry.reset()
			t.retryAt = time.Time{}
			if !changed {
				r.metrics.renders.WithLabelValues("unchanged").Inc()
				return
			}
			r.metrics.renders.WithLabelValues("changed").Inc()
			r.log.Info("template rendered", "template", t.cfg.name(), "destination", t.cfg.Destination)
			r.afterChange(ctx, t)
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	r.metrics.renders.WithLabelValues("error").Inc()
	d := t.retry.next()
	t.retryAt = time.Now().Add(d)
	r.log.Warn("template render failed; retrying", "template", t.cfg.name(), "retry_in", d.Round(time.Millisecond), "error", err)
}

// execute renders t into memory and returns what it read.
func (r *renderer) execute(ctx context.Context, t *tmpl) ([]byte, map[string]bool, error) {
	deps := map[string]bool{}
	values := map[string]*secretValue{} // one read per name per render
	value := func(name string) (*secretValue, error) {
		deps[name] = true
		if v, ok := values[name]; ok {
			return v, nil
		}
		v, err := r.read(ctx, name)
		if err != nil {
			return nil, err
		}
		values[name] = v
		return v, nil
	}
	tt, err := t.t.Clone()
	if err != nil {
		return nil, deps, err
	}
	tt.Funcs(template.FuncMap{
		"secret": func(name string) (string, error) {
			v, err := value(name)
			if err != nil {
				return "", err
			}
			return string(v.data), nil
		},
		"secretField": func(name, field string) (string, error) {
			v, err := value(name)
			if err != nil {
				return "", err
			}
			return v.field(field)
		},
		"secretVersion": func(name string) (int, error) {
			v, err := value(name)
			if err != nil {
				return 0, err
			}
			return v.version, nil
		},
	})
	var buf bytes.Buffer
	if err := tt.Execute(&buf, nil); err != nil {
		return nil, deps, err
	}
	return buf.Bytes(), deps, nil
}

// secretValue is a value as templates see it.
type secretValue struct {
	name    string
	version int
	typ     string
	data    []byte // text as is, JSON as its JSON text, binary decoded
}

// field returns a field of a JSON object value: a string as it is, null as
// "", numbers, booleans, objects and arrays as compact JSON.
func (v *secretValue) field(field string) (string, error) {
	if v.typ != "json" {
		return "", fmt.Errorf("secretField %q: the value is %s, not a JSON object", v.name, v.typ)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v.data, &obj); err != nil {
		return "", fmt.Errorf("secretField %q: the value is not a JSON object", v.name)
	}
	raw, ok := obj[field]
	if !ok {
		return "", fmt.Errorf("secretField %q: no field %q", v.name, field)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	// As `coffer run` does: null is empty, anything else compact JSON.
	if string(raw) == "null" {
		return "", nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("secretField %q: field %q is not valid JSON", v.name, field)
	}
	return buf.String(), nil
}

// read gets the current value of name through the cache. Its errors never
// hold the value.
func (r *renderer) read(ctx context.Context, name string) (*secretValue, error) {
	if !validName(name) {
		return nil, fmt.Errorf("secret %q: not a valid name", name)
	}
	rep, err := r.get(ctx, selector{name: name})
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	if rep.e == nil {
		return nil, fmt.Errorf("secret %q: %s", name, describeAnswer(rep.ans))
	}
	var w struct {
		Version     int             `json:"version"`
		Type        string          `json:"type"`
		Value       json.RawMessage `json:"value"`
		ValueBase64 string          `json:"value_base64"`
	}
	if err := json.Unmarshal(rep.e.body, &w); err != nil {
		return nil, fmt.Errorf("secret %q: the server's answer is not JSON", name)
	}
	v := &secretValue{name: name, version: w.Version, typ: w.Type}
	switch w.Type {
	case "text":
		var s string
		if err := json.Unmarshal(w.Value, &s); err != nil {
			return nil, fmt.Errorf("secret %q: the text value is not a JSON string", name)
		}
		v.data = []byte(s)
	case "json":
		v.data = w.Value
	default:
		b, err := base64.StdEncoding.DecodeString(w.ValueBase64)
		if err != nil {
			return nil, fmt.Errorf("secret %q: bad base64 value", name)
		}
		v.data = b
	}
	return v, nil
}

// describeAnswer summarises a server error answer without its body's
// other content.
func describeAnswer(a answer) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(a.body, &e) == nil && e.Error.Code != "" {
		return fmt.Sprintf("%s: %s (HTTP %d)", e.Error.Code, e.Error.Message, a.status)
	}
	return fmt.Sprintf("HTTP %d", a.status)
}

// write replaces the destination when out differs from it; it reports
// whether it wrote.
func (r *renderer) write(t *tmpl, out []byte) (bool, error) {
	dest := t.cfg.Destination
	if old, err := os.ReadFile(dest); err == nil && bytes.Equal(old, out) {
		if fi, err := os.Stat(dest); err == nil && fi.Mode().Perm() != t.cfg.perms {
			if err := os.Chmod(dest, t.cfg.perms); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	if err := writeFileAtomic(dest, out, t.cfg.perms); err != nil {
		return false, err
	}
	return true, nil
}

// afterChange runs the template's command and sends its signal.
func (r *renderer) afterChange(ctx context.Context, t *tmpl) {
	if t.cfg.Command != "" {
		if err := r.runCommand(ctx, t); err != nil {
			r.metrics.commands.WithLabelValues("error").Inc()
			r.log.Error("template command failed", "template", t.cfg.name(), "error", err)
		} else {
			r.metrics.commands.WithLabelValues("ok").Inc()
		}
	}
	if t.cfg.Signal != "" {
		if err := signalPIDFile(t.cfg.PIDFile, t.cfg.Signal); err != nil {
			r.metrics.commands.WithLabelValues("error").Inc()
			r.log.Error("template signal failed", "template", t.cfg.name(), "pid_file", t.cfg.PIDFile, "error", err)
		} else {
			r.metrics.commands.WithLabelValues("ok").Inc()
			r.log.Info("template signal sent", "template", t.cfg.name(), "signal", t.cfg.Signal)
		}
	}
}

func (r *renderer) runCommand(ctx context.Context, t *tmpl) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", t.cfg.Command)
	out := &limitedBuffer{max: maxCommandOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second // a child keeping the pipes open does not hold the agent
	start := time.Now()
	err := cmd.Run()
	attrs := []any{"template", t.cfg.name(), "duration", time.Since(start).Round(time.Millisecond)}
	output := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", t.cfg.commandTimeout)
		}
		// A failing command's output is what explains it; commands that
		// echo the rendered secrets should not print them on failure.
		r.log.Warn("template command failed", append(attrs, "output", output)...)
		return err
	}
	r.log.Info("template command ran", attrs...)
	if output != "" {
		r.log.Debug("template command output", append(attrs, "output", output)...)
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it and counts the rest.
type limitedBuffer struct {
	max     int
	buf     bytes.Buffer
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
		b.dropped += len(p) - min(room, len(p))
	} else {
		b.dropped += len(p)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	if b.dropped > 0 {
		return b.buf.String() + " [" + strconv.Itoa(b.dropped) + " more bytes]"
	}
	return b.buf.String()
}

// signalPIDFile sends sig to the process whose id is in path.
func signalPIDFile(path, sig string) error {
	s, err := parseSignal(sig)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return errors.New("the pid file does not hold a process id")
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(s)
}
