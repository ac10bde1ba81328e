package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// clock is an injected clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// target simulates a system holding credentials, the way a database does:
// single-user targets accept one password, alternating ones keep the
// previous working until revoked.
type target struct {
	mu          sync.Mutex
	single      bool
	valid       map[string]bool
	failSet     int // fail this many Set calls
	failTest    int
	failFinish  int
	sets, tests int
}

func newTarget(single bool, initial string) *target {
	return &target{single: single, valid: map[string]bool{initial: true}}
}

func (tg *target) works(v string) bool {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.valid[v]
}

// targetRotator drives a target; it is a rotator like the database ones,
// over an in-memory system.
type targetRotator struct {
	PasswordRotator
	tg *target
}

func (r targetRotator) Set(_ context.Context, j *Job) error {
	r.tg.mu.Lock()
	defer r.tg.mu.Unlock()
	r.tg.sets++
	if r.tg.failSet > 0 {
		r.tg.failSet--
		return errors.New("target unreachable")
	}
	if r.tg.single {
		r.tg.valid = map[string]bool{}
	}
	r.tg.valid[string(j.Pending.Data)] = true
	return nil
}

func (r targetRotator) Test(_ context.Context, j *Job, v *secret.Value) error {
	r.tg.mu.Lock()
	defer r.tg.mu.Unlock()
	r.tg.tests++
	if r.tg.failTest > 0 && v == j.Pending {
		r.tg.failTest--
		return fmt.Errorf("login refused for %s", v.Data) // carries the value: must be scrubbed
	}
	if !r.tg.valid[string(v.Data)] {
		return errors.New("login refused")
	}
	return nil
}

func (r targetRotator) Finish(context.Context, *Job) error {
	r.tg.mu.Lock()
	defer r.tg.mu.Unlock()
	if r.tg.failFinish > 0 {
		r.tg.failFinish--
		return errors.New("finish refused")
	}
	return nil
}

func (r targetRotator) Revoke(_ context.Context, j *Job) error {
	r.tg.mu.Lock()
	defer r.tg.mu.Unlock()
	delete(r.tg.valid, string(j.Previous.Data))
	return nil
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

type harness struct {
	t       *testing.T
	clock   *clock
	secrets *secret.Service
	engine  *Engine
	bus     *events.Bus
	tg      *target
	store   *mem.Backend

	mu     sync.Mutex
	audits []*audit.Record
	crash  string // failpoint: abandon after this step
}

func newHarness(t *testing.T, single bool, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, store: mem.New()}
	h.bus = events.New(h.clock.Now)
	h.secrets = secret.New(h.store, h.clock.Now)
	h.secrets.PublishTo(h.bus)
	h.tg = newTarget(single, "initial-password")
	cfg := Config{
		Store: h.store, Secrets: h.secrets, Events: h.bus, Now: h.clock.Now,
		Jitter:   func(time.Duration) time.Duration { return 0 },
		Rotators: map[string]Rotator{"password": PasswordRotator{}, "target": targetRotator{tg: h.tg}},
		Audit: func(_ context.Context, r *audit.Record) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.audits = append(h.audits, r)
			return nil
		},
		Failpoint: func(step string) bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.crash == step {
				h.crash = ""
				return true
			}
			return false
		},
		RetryMin: time.Minute, RetryMax: time.Hour,
	}
	if mod != nil {
		mod(&cfg)
	}
	h.engine = New(cfg)
	return h
}

func (h *harness) put(name, value string) {
	h.t.Helper()
	if _, err := h.secrets.Put(context.Background(), secret.PutInput{Name: name, Value: []byte(value)}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) policy(name string, p Policy) {
	h.t.Helper()
	if _, err := h.engine.SetPolicy(context.Background(), name, p, "tester"); err != nil {
		h.t.Fatalf("SetPolicy(%s): %v", name, err)
	}
}

func (h *harness) runDue() int {
	h.t.Helper()
	n, err := h.engine.RunDue(context.Background())
	if err != nil {
		h.t.Fatalf("RunDue: %v", err)
	}
	return n
}

func (h *harness) state(name string) *State {
	h.t.Helper()
	st, err := h.engine.Status(context.Background(), name)
	if err != nil {
		h.t.Fatalf("Status(%s): %v", name, err)
	}
	return st.State
}

func (h *harness) current(name string) *secret.Value {
	h.t.Helper()
	v, err := h.secrets.Get(context.Background(), name, secret.Selector{})
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

func (h *harness) stages(name string) map[string]int {
	h.t.Helper()
	m, err := h.secrets.Describe(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return m.Stages
}

func (h *harness) attempts(rotator, outcome string) int {
	return int(value(h.engine.metrics.Attempts.WithLabelValues(rotator, outcome)))
}

func (h *harness) auditOps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.audits {
		out = append(out, fmt.Sprintf("%s:%d", r.Op, r.Status))
	}
	return out
}

func TestScheduleEvery(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("app/key", "v1-value")
	h.policy("app/key", Policy{Schedule: "every 30d", Rotator: "password", Options: json.RawMessage(`{"length":24}`)})
	start := h.clock.Now()
	if st := h.state("app/key"); st.NextDue == nil || !st.NextDue.Equal(start.Add(30*24*time.Hour)) {
		t.Fatalf("NextDue = %v, want %v", st.NextDue, start.Add(30*24*time.Hour))
	}
	h.clock.Advance(30*24*time.Hour - time.Second)
	if n := h.runDue(); n != 0 {
		t.Fatalf("RunDue one second early took %d secrets", n)
	}
	if v := h.current("app/key"); v.Version != 1 {
		t.Fatalf("rotated early: current is version %d", v.Version)
	}
	h.clock.Advance(time.Second)
	if n := h.runDue(); n != 1 {
		t.Fatalf("RunDue at the due time took %d secrets, want 1", n)
	}
	v := h.current("app/key")
	if v.Version != 2 || len(v.Data) != 24 || string(v.Data) == "v1-value" {
		t.Fatalf("after rotation current = version %d (%d bytes), want a new 24-character version 2", v.Version, len(v.Data))
	}
	st := h.state("app/key")
	if st.Status != StatusScheduled || st.Rotations != 1 || st.LastVersion != 2 || !st.NextDue.Equal(h.clock.Now().Add(30*24*time.Hour)) {
		t.Fatalf("state after rotation = %+v", st)
	}
	if h.attempts("password", OutcomeSuccess) != 1 {
		t.Fatalf("success counter = %d, want 1", h.attempts("password", OutcomeSuccess))
	}
	if got := h.auditOps(); strings.Join(got, ",") != "rotation.start:0,rotation.rotate:200,rotation.revoke:200" {
		t.Fatalf("audit records = %v", got)
	}
	evs, _, _, _ := h.bus.Read(0, 100)
	found := false
	for _, ev := range evs {
		found = found || (ev.Type == events.Rotated && ev.Name == "app/key" && ev.Version == 2)
	}
	if !found {
		t.Fatalf("no rotated event in %+v", evs)
	}
}

func TestScheduleCron(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("app/cron", "x-value")
	h.policy("app/cron", Policy{Schedule: "0 3 * * *", Rotator: "password"})
	want := time.Date(2030, 1, 1, 3, 0, 0, 0, time.UTC)
	if st := h.state("app/cron"); !st.NextDue.Equal(want) {
		t.Fatalf("NextDue = %v, want %v", st.NextDue, want)
	}
	h.clock.Advance(3 * time.Hour)
	h.runDue()
	if st := h.state("app/cron"); st.Rotations != 1 || !st.NextDue.Equal(want.Add(24*time.Hour)) {
		t.Fatalf("after the 03:00 run: rotations %d, next %v", st.Rotations, st.NextDue)
	}
}

func TestJitterSpreadsNextRun(t *testing.T) {
	h := newHarness(t, false, func(c *Config) {
		c.Jitter = func(max time.Duration) time.Duration { return max / 2 }
	})
	h.put("app/j", "x-value")
	h.policy("app/j", Policy{Schedule: "every 1d", Jitter: Duration(2 * time.Hour), Rotator: "password"})
	if st := h.state("app/j"); !st.NextDue.Equal(h.clock.Now().Add(25 * time.Hour)) {
		t.Fatalf("NextDue = %v, want start + 1d + 1h of jitter", st.NextDue)
	}
}

func TestGraceWindow(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("db/app", "initial-password")
	h.policy("db/app", Policy{Schedule: "every 7d", Grace: Duration(time.Hour), Rotator: "target"})
	st, err := h.engine.Rotate(context.Background(), "db/app", RotateOptions{Actor: "alice"})
	if err != nil || st.Status != StatusScheduled {
		t.Fatalf("Rotate = %+v, %v", st, err)
	}
	newPw := string(h.current("db/app").Data)
	if !h.tg.works(newPw) || !h.tg.works("initial-password") {
		t.Fatal("inside the grace window both the new and the old password must work")
	}
	if s := h.stages("db/app"); s["previous"] != 1 || s["current"] != 2 {
		t.Fatalf("stages = %v", s)
	}
	h.clock.Advance(59 * time.Minute)
	h.runDue()
	if !h.tg.works("initial-password") || h.stages("db/app")["previous"] != 1 {
		t.Fatal("the old password was revoked before the grace window ended")
	}
	h.clock.Advance(time.Minute)
	h.runDue()
	if h.tg.works("initial-password") {
		t.Fatal("the old password still works after the grace window")
	}
	if !h.tg.works(newPw) {
		t.Fatal("the new password stopped working")
	}
	if s := h.stages("db/app"); s["previous"] != 0 {
		t.Fatalf("previous stage kept after the grace window: %v", s)
	}
	if st := h.state("db/app"); st.RevokeAt != nil || h.attempts("target", OutcomeRevoked) != 1 {
		t.Fatalf("state after revoke = %+v", st)
	}
}

func TestRetryWithBackoffThenSuccess(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("db/r", "initial-password")
	h.policy("db/r", Policy{Schedule: "every 1d", Rotator: "target"})
	h.tg.failSet = 2
	h.clock.Advance(24 * time.Hour)
	h.runDue()
	st := h.state("db/r")
	if st.Status != StatusRetrying || st.Attempt != 1 || st.Step != StepSet || st.PendingVersion != 2 || !strings.Contains(st.LastError, "target unreachable") {
		t.Fatalf("after a failed Set: %+v", st)
	}
	if v := h.current("db/r"); v.Version != 1 {
		t.Fatalf("a failed step moved current to version %d", v.Version)
	}
	if h.stages("db/r")["pending"] != 2 {
		t.Fatalf("pending not kept for the retry: %v", h.stages("db/r"))
	}
	// The first retry waits RetryMin (1m) with half of it jittered (0 here).
	h.clock.Advance(29 * time.Second)
	h.runDue()
	if h.tg.sets != 1 {
		t.Fatalf("retried before the backoff: %d sets", h.tg.sets)
	}
	h.clock.Advance(time.Second)
	h.runDue()
	if st := h.state("db/r"); st.Attempt != 2 || st.Status != StatusRetrying {
		t.Fatalf("after the second failure: %+v", st)
	}
	if d := h.state("db/r").RetryAt.Sub(h.clock.Now()); d != time.Minute {
		t.Fatalf("second backoff = %v, want 1m (doubling)", d)
	}
	h.clock.Advance(time.Minute)
	h.runDue()
	st = h.state("db/r")
	if st.Status != StatusScheduled || st.LastError != "" || st.Step != "" || h.current("db/r").Version != 2 {
		t.Fatalf("after the successful retry: %+v, current v%d", st, h.current("db/r").Version)
	}
	if m := h.stages("db/r"); m["pending"] != 0 {
		t.Fatalf("pending left after success: %v", m)
	}
	if h.attempts("target", OutcomeError) != 2 || h.attempts("target", OutcomeSuccess) != 1 {
		t.Fatalf("counters error=%d success=%d", h.attempts("target", OutcomeError), h.attempts("target", OutcomeSuccess))
	}
	// One pending version, reused by every attempt.
	m, _ := h.secrets.Describe(context.Background(), "db/r")
	if len(m.Versions) != 2 {
		t.Fatalf("retries wrote %d versions, want 2", len(m.Versions))
	}
}

func TestFailedAfterMaxAttemptsRollsBack(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("db/f", "initial-password")
	h.policy("db/f", Policy{Schedule: "every 1d", Rotator: "target", MaxAttempts: 3})
	h.tg.failTest = 100
	h.clock.Advance(24 * time.Hour)
	for range 3 {
		h.runDue()
		h.clock.Advance(time.Hour)
	}
	st := h.state("db/f")
	if st.Status != StatusFailed || st.Failures != 1 || st.Step != "" || !strings.Contains(st.LastError, "rolled back") {
		t.Fatalf("after 3 failed attempts: %+v", st)
	}
	if strings.Contains(st.LastError, string(h.mustGet("db/f", 2).Data)) {
		t.Fatalf("last error carries the pending value: %q", st.LastError)
	}
	if v := h.current("db/f"); v.Version != 1 || !h.tg.works(string(v.Data)) {
		t.Fatalf("current = v%d; it must be untouched and still work", v.Version)
	}
	if s := h.stages("db/f"); s["pending"] != 0 {
		t.Fatalf("pending left dangling: %v", s)
	}
	if h.attempts("target", OutcomeFailed) != 1 || value(h.engine.metrics.Failed) != 1 {
		t.Fatalf("failed counter %d, failed gauge %v", h.attempts("target", OutcomeFailed), value(h.engine.metrics.Failed))
	}
	evs, _, _, _ := h.bus.Read(0, 100)
	found := false
	for _, ev := range evs {
		found = found || ev.Type == events.RotationFailed
	}
	if !found {
		t.Fatal("no rotation_failed event")
	}
	ops := strings.Join(h.auditOps(), ",")
	if !strings.Contains(ops, "rotation.rotate:500") {
		t.Fatalf("no failure audit record in %s", ops)
	}
	// The next scheduled run tries again and, the target healthy, succeeds.
	h.tg.failTest = 0
	h.clock.Advance(24 * time.Hour)
	h.runDue()
	if st := h.state("db/f"); st.Status != StatusScheduled || value(h.engine.metrics.Failed) != 0 {
		t.Fatalf("after recovery: %+v, gauge %v", st, value(h.engine.metrics.Failed))
	}
}

func (h *harness) mustGet(name string, v int) *secret.Value {
	h.t.Helper()
	val, err := h.secrets.Get(context.Background(), name, secret.Selector{Version: v})
	if err != nil {
		h.t.Fatal(err)
	}
	return val
}

// A single-user target already switched to the new password when the
// rotation gives up: current no longer works, so pending is promoted.
func TestFailedAfterSetPromotesWhenOnlyPendingWorks(t *testing.T) {
	h := newHarness(t, true, nil)
	h.put("db/s", "initial-password")
	h.policy("db/s", Policy{Schedule: "every 1d", Rotator: "target", MaxAttempts: 1})
	h.tg.failFinish = 100
	st, err := h.engine.Rotate(context.Background(), "db/s", RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusFailed || !strings.Contains(st.LastError, "promoted") {
		t.Fatalf("state = %+v", st)
	}
	if v := h.current("db/s"); v.Version != 2 || !h.tg.works(string(v.Data)) {
		t.Fatalf("current v%d must work on the target", v.Version)
	}
}

func TestCatchUpWithoutStampede(t *testing.T) {
	h := newHarness(t, false, func(c *Config) { c.Batch = 10 })
	for i := range 45 {
		name := fmt.Sprintf("fleet/s%02d", i)
		h.put(name, "value-"+name)
		h.policy(name, Policy{Schedule: "every 30d", Rotator: "password"})
	}
	// The server was down for 100 days: three runs were missed.
	h.clock.Advance(100 * 24 * time.Hour)
	total := 0
	for tick := 1; tick <= 5; tick++ {
		n := h.runDue()
		if n > 10 {
			t.Fatalf("tick %d took %d secrets; the batch is 10", tick, n)
		}
		if tick == 1 && value(h.engine.metrics.Overdue) < (70*24*time.Hour).Seconds() {
			t.Fatalf("overdue gauge = %v, want about 70 days", value(h.engine.metrics.Overdue))
		}
		total += n
		h.clock.Advance(10 * time.Second)
	}
	if total != 45 {
		t.Fatalf("took %d secrets over 5 ticks, want 45", total)
	}
	for i := range 45 {
		st := h.state(fmt.Sprintf("fleet/s%02d", i))
		if st.Rotations != 1 {
			t.Fatalf("%s rotated %d times catching up, want once", st.Name, st.Rotations)
		}
		if st.NextDue.Sub(h.clock.Now()) < 29*24*time.Hour {
			t.Fatalf("%s next due %v: scheduled from the catch-up, not the missed runs", st.Name, st.NextDue)
		}
	}
	if n := h.runDue(); n != 0 {
		t.Fatalf("after catching up RunDue took %d", n)
	}
	if got := value(h.engine.metrics.Overdue); got != 0 {
		t.Fatalf("overdue gauge after catching up = %v", got)
	}
}

func TestCrashAfterEachStepResumes(t *testing.T) {
	for _, step := range []string{StepCreate, StepSet, StepTest, StepFinish, StepPromote} {
		t.Run(step, func(t *testing.T) {
			h := newHarness(t, true, func(c *Config) { c.LeaseTTL = 30 * time.Second })
			h.put("db/c", "initial-password")
			h.policy("db/c", Policy{Schedule: "every 1d", Rotator: "target"})
			h.crash = step
			h.clock.Advance(24 * time.Hour)
			h.runDue() // the runner "dies" after the step
			st := h.state("db/c")
			if st.Status != StatusRotating {
				t.Fatalf("after the crash: %+v", st)
			}
			// Within the dead runner's lease nobody takes over.
			h.clock.Advance(10 * time.Second)
			h.runDue()
			if st := h.state("db/c"); st.Status != StatusRotating || st.Rotations != 0 {
				t.Fatalf("taken over inside the lease: %+v", st)
			}
			h.clock.Advance(30 * time.Second)
			h.runDue()
			st = h.state("db/c")
			if st.Status != StatusScheduled || st.Rotations != 1 || st.Step != "" {
				t.Fatalf("after recovery: %+v", st)
			}
			cur := h.current("db/c")
			if cur.Version != 2 || !h.tg.works(string(cur.Data)) {
				t.Fatalf("current v%d does not work on the target after recovery", cur.Version)
			}
			if s := h.stages("db/c"); s["pending"] != 0 {
				t.Fatalf("pending dangling: %v", s)
			}
			m, _ := h.secrets.Describe(context.Background(), "db/c")
			if len(m.Versions) != 2 {
				t.Fatalf("recovery wrote %d versions, want 2", len(m.Versions))
			}
		})
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("db/x", "initial-password")
	h.policy("db/x", Policy{Schedule: "every 1d", Rotator: "target"})
	if _, err := h.engine.Cancel(context.Background(), "db/x", "alice"); !errors.Is(err, ErrNotRotating) {
		t.Fatalf("Cancel with nothing in flight = %v, want ErrNotRotating", err)
	}
	h.tg.failTest = 100
	st, err := h.engine.Rotate(context.Background(), "db/x", RotateOptions{})
	if err != nil || st.Status != StatusRetrying {
		t.Fatalf("Rotate = %+v, %v", st, err)
	}
	st, err = h.engine.Cancel(context.Background(), "db/x", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusScheduled || st.Step != "" || !strings.Contains(st.LastError, "cancelled") {
		t.Fatalf("after cancel: %+v", st)
	}
	if s := h.stages("db/x"); s["pending"] != 0 || s["current"] != 1 {
		t.Fatalf("stages after cancel: %v", s)
	}
	if n := h.runDue(); n != 0 {
		t.Fatalf("a cancelled rotation was retried (%d)", n)
	}
}

func TestPrefixPolicy(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("payments/a", "a-value")
	h.put("payments/b", "b-value")
	h.put("payments/own", "own-value")
	h.put("other/c", "c-value")
	h.policy("payments/own", Policy{Schedule: "every 1d", Rotator: "password"})
	if _, err := h.engine.SetPrefixPolicy(context.Background(), "payments/", Policy{Schedule: "every 7d", Rotator: "password"}, "tester"); err != nil {
		t.Fatal(err)
	}
	h.put("payments/later", "later-value") // enrolled by the next sync
	h.clock.Advance(6 * time.Minute)
	h.runDue()
	for name, want := range map[string]string{"payments/a": "prefix:payments/", "payments/later": "prefix:payments/", "payments/own": "secret"} {
		st, err := h.engine.Status(context.Background(), name)
		if err != nil || st.State == nil || st.Source != want {
			t.Fatalf("Status(%s) = %+v, %v; want source %s", name, st, err, want)
		}
	}
	if _, err := h.engine.Status(context.Background(), "other/c"); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("Status(other/c) error = %v, want ErrNoPolicy", err)
	}
	h.clock.Advance(7 * 24 * time.Hour)
	h.runDue()
	for _, name := range []string{"payments/a", "payments/b", "payments/later", "payments/own"} {
		if v := h.current(name); v.Version != 2 {
			t.Fatalf("%s at version %d after 7 days, want 2", name, v.Version)
		}
	}
}

func TestEmergency(t *testing.T) {
	h := newHarness(t, false, nil)
	for _, n := range []string{"payments/db", "payments/api", "payments/nopolicy", "payments/hidden"} {
		h.put(n, "value-of-"+n)
	}
	h.policy("payments/db", Policy{Schedule: "every 30d", Grace: Duration(24 * time.Hour), Rotator: "target"})
	h.tg.valid["value-of-payments/db"] = true
	h.policy("payments/api", Policy{Rotator: "password"})
	rep, err := h.engine.Emergency(context.Background(), "payments/", func(n string) bool { return n != "payments/hidden" }, false, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rotated) != 2 || rep.Rotated[0].Name != "payments/api" || rep.Rotated[1].Name != "payments/db" || rep.Rotated[1].Version != 2 {
		t.Fatalf("rotated = %+v", rep.Rotated)
	}
	if len(rep.Failed) != 1 || rep.Failed[0].Name != "payments/nopolicy" || !strings.Contains(rep.Failed[0].Error, "no rotation policy") {
		t.Fatalf("failed = %+v", rep.Failed)
	}
	if rep.Denied != 1 {
		t.Fatalf("denied = %d, want 1", rep.Denied)
	}
	// Emergency rotation revokes the compromised value at once, grace or not.
	if h.tg.works("value-of-payments/db") {
		t.Fatal("the compromised password still works after an emergency rotation")
	}
}

func TestPolicyValidation(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("v/s", "value")
	tests := []struct {
		name  string
		p     Policy
		field string
	}{
		{"no rotator", Policy{Schedule: "every 1d"}, "rotator"},
		{"unknown rotator", Policy{Rotator: "nope"}, "rotator"},
		{"bad schedule", Policy{Schedule: "sometimes", Rotator: "password"}, "schedule"},
		{"too frequent", Policy{Schedule: "every 10s", Rotator: "password"}, "schedule"},
		{"bad cron", Policy{Schedule: "61 * * * *", Rotator: "password"}, "schedule"},
		{"grace too long", Policy{Schedule: "every 1d", Grace: Duration(24 * time.Hour), Rotator: "password"}, "grace"},
		{"jitter too long", Policy{Schedule: "0 * * * *", Jitter: Duration(2 * time.Hour), Rotator: "password"}, "jitter"},
		{"unknown option", Policy{Rotator: "password", Options: json.RawMessage(`{"lenght":3}`)}, "options"},
		{"bad password policy", Policy{Rotator: "password", Options: json.RawMessage(`{"length":5000}`)}, "options.length"},
		{"attempts", Policy{Rotator: "password", MaxAttempts: 99}, "max_attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.engine.SetPolicy(context.Background(), "v/s", tt.p, "tester")
			var ve *secret.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("SetPolicy(%+v) = %v, want a validation error on %s", tt.p, err, tt.field)
			}
		})
	}
	if _, err := h.engine.SetPolicy(context.Background(), "v/missing", Policy{Rotator: "password"}, "t"); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("policy on a missing secret: %v", err)
	}
}

func TestParseSchedule(t *testing.T) {
	base := time.Date(2030, 1, 1, 12, 30, 0, 0, time.UTC)
	tests := []struct {
		in   string
		next time.Time
	}{
		{"every 30d", base.Add(30 * 24 * time.Hour)},
		{"30d", base.Add(30 * 24 * time.Hour)},
		{"every 1w2d", base.Add(9 * 24 * time.Hour)},
		{"every 90m", base.Add(90 * time.Minute)},
		{"every 1d12h", base.Add(36 * time.Hour)},
		{"0 3 * * *", time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)},
		{"*/15 * * * *", time.Date(2030, 1, 1, 12, 45, 0, 0, time.UTC)},
		{"@daily", time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"", time.Time{}},
	}
	for _, tt := range tests {
		s, err := ParseSchedule(tt.in)
		if err != nil {
			t.Fatalf("ParseSchedule(%q) error %v", tt.in, err)
		}
		if got := s.Next(base); !got.Equal(tt.next) {
			t.Fatalf("ParseSchedule(%q).Next(%v) = %v, want %v", tt.in, base, got, tt.next)
		}
	}
	for _, bad := range []string{"every", "every -1d", "every 1x", "1 2 3", "* * * * * * *", "every 0s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Fatalf("ParseSchedule(%q) accepted", bad)
		}
	}
}

func TestDeletePolicyLeavesSchedule(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("d/s", "value")
	h.policy("d/s", Policy{Schedule: "every 1d", Rotator: "password"})
	if err := h.engine.DeletePolicy(context.Background(), "d/s"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.engine.Status(context.Background(), "d/s"); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("Status after delete = %v", err)
	}
	keys, _ := h.store.List(context.Background(), nextPrefix, "", 0)
	if len(keys) != 0 {
		t.Fatalf("index keys left: %v", keys)
	}
}

func TestPasswordFieldOfJSON(t *testing.T) {
	h := newHarness(t, false, nil)
	if _, err := h.secrets.Put(context.Background(), secret.PutInput{Name: "j/api", Type: secret.TypeJSON, Value: []byte(`{"user":"svc","key":"old-key-value"}`)}); err != nil {
		t.Fatal(err)
	}
	h.policy("j/api", Policy{Rotator: "password", Options: json.RawMessage(`{"field":"key","length":40,"exclude_punctuation":true}`)})
	if _, err := h.engine.Rotate(context.Background(), "j/api", RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	var obj map[string]string
	if err := json.Unmarshal(h.current("j/api").Data, &obj); err != nil {
		t.Fatal(err)
	}
	if obj["user"] != "svc" || len(obj["key"]) != 40 {
		t.Fatalf("rotated value = %v", obj)
	}
}

// blockingRotator's Set waits for its context to end while block is set,
// as a call to a slow target does when the server shuts down.
type blockingRotator struct {
	targetRotator
	block   *bool
	started chan struct{}
}

func (r blockingRotator) Set(ctx context.Context, j *Job) error {
	if *r.block {
		r.started <- struct{}{}
		<-ctx.Done()
		return fmt.Errorf("target call: %v", ctx.Err()) // not wrapped, as real clients often do
	}
	return r.targetRotator.Set(ctx, j)
}

// TestShutdownIsNotAFailedAttempt: a rotation interrupted by shutdown (or
// lost leadership) releases its lease without counting an attempt, and
// the next runner resumes it.
func TestShutdownIsNotAFailedAttempt(t *testing.T) {
	block := true
	started := make(chan struct{}, 1)
	h := newHarness(t, false, func(c *Config) {
		c.Rotators["blocking"] = nil // named now for the metrics; set below, once the target exists
	})
	h.engine.cfg.Rotators["blocking"] = blockingRotator{targetRotator: targetRotator{tg: h.tg}, block: &block, started: started}
	h.put("s/db", "initial-password")
	h.policy("s/db", Policy{Schedule: "every 1d", Rotator: "blocking", MaxAttempts: 1})
	h.clock.Advance(25 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.engine.RunDue(ctx); done <- err }()
	<-started
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("RunDue after shutdown = %v", err)
	}
	st, err := h.engine.getState(context.Background(), "s/db")
	if err != nil {
		t.Fatal(err)
	}
	if st.Attempt != 0 || st.Status != StatusRotating || st.Step != StepSet || st.LeaseOwner != "" || st.LastError != "" || st.Failures != 0 {
		t.Fatalf("state after shutdown = %+v, want in flight at set, no attempt counted, lease released", st)
	}
	if n := h.attempts("blocking", OutcomeError) + h.attempts("blocking", OutcomeFailed); n != 0 {
		t.Fatalf("%d failed attempts counted for a shutdown", n)
	}
	for _, op := range h.auditOps() {
		if strings.HasSuffix(op, ":500") {
			t.Fatalf("audit records after shutdown: %v", h.auditOps())
		}
	}
	// The next runner (here, the same engine after a restart) resumes at once.
	block = false
	h.runDue()
	if v := h.current("s/db"); v.Version != 2 || !h.tg.works(string(v.Data)) {
		t.Fatalf("after resuming: current v%d", v.Version)
	}
}

func TestPrefixMustEndInSlash(t *testing.T) {
	h := newHarness(t, false, nil)
	_, err := h.engine.SetPrefixPolicy(context.Background(), "pay", Policy{Rotator: "password"}, "t")
	var ve *secret.ValidationError
	if !errors.As(err, &ve) || ve.Field != "prefix" {
		t.Fatalf("SetPrefixPolicy(pay) = %v, want a validation error on prefix", err)
	}
}

// TestPolicyChangesWaitForRotationInFlight: deleting a prefix policy or
// changing the rotator that governs a rotation in flight would leave the
// target with a credential Coffer rolls back; both wait until it ends.
func TestPolicyChangesWaitForRotationInFlight(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, false, nil)
	h.put("p/s", "initial-password")
	if _, err := h.engine.SetPrefixPolicy(ctx, "p/", Policy{Rotator: "target"}, "t"); err != nil {
		t.Fatal(err)
	}
	h.tg.failTest = 1
	if st, err := h.engine.Rotate(ctx, "p/s", RotateOptions{}); err != nil || st.Status != StatusRetrying {
		t.Fatalf("Rotate = %+v, %v; want retrying", st, err)
	}
	if err := h.engine.DeletePrefixPolicy(ctx, "p/"); !errors.Is(err, ErrBusy) {
		t.Fatalf("DeletePrefixPolicy during a rotation = %v, want ErrBusy", err)
	}
	if _, err := h.engine.SetPrefixPolicy(ctx, "p/", Policy{Rotator: "password"}, "t"); !errors.Is(err, ErrBusy) {
		t.Fatalf("changing the prefix's rotator during a rotation = %v, want ErrBusy", err)
	}
	if _, err := h.engine.SetPrefixPolicy(ctx, "p/", Policy{Rotator: "target", Options: json.RawMessage(`{"length":12}`)}, "t"); !errors.Is(err, ErrBusy) {
		t.Fatalf("changing the prefix's options during a rotation = %v, want ErrBusy", err)
	}
	if _, err := h.engine.SetPolicy(ctx, "p/s", Policy{Rotator: "password"}, "t"); !errors.Is(err, ErrBusy) {
		t.Fatalf("a secret policy overriding the prefix during a rotation = %v, want ErrBusy", err)
	}
	// The schedule may change.
	if _, err := h.engine.SetPrefixPolicy(ctx, "p/", Policy{Rotator: "target", Schedule: "every 7d"}, "t"); err != nil {
		t.Fatalf("changing only the schedule: %v", err)
	}
	// The rotation finishes with the rotator it started with.
	h.clock.Advance(2 * time.Hour)
	h.runDue()
	if v := h.current("p/s"); v.Version != 2 || !h.tg.works(string(v.Data)) {
		t.Fatalf("after the retry: v%d", v.Version)
	}
	if err := h.engine.DeletePrefixPolicy(ctx, "p/"); err != nil {
		t.Fatalf("DeletePrefixPolicy after the rotation: %v", err)
	}

	// A secret's own policy.
	h.put("o/s", "own-initial")
	h.tg.valid["own-initial"] = true
	h.policy("o/s", Policy{Rotator: "target"})
	h.tg.failTest = 1
	if st, err := h.engine.Rotate(ctx, "o/s", RotateOptions{}); err != nil || st.Status != StatusRetrying {
		t.Fatalf("Rotate = %+v, %v; want retrying", st, err)
	}
	if _, err := h.engine.SetPolicy(ctx, "o/s", Policy{Rotator: "password"}, "t"); !errors.Is(err, ErrBusy) {
		t.Fatalf("changing the rotator during a rotation = %v, want ErrBusy", err)
	}
	if _, err := h.engine.SetPolicy(ctx, "o/s", Policy{Rotator: "target", Schedule: "every 30d"}, "t"); err != nil {
		t.Fatalf("changing only the schedule: %v", err)
	}
}

func TestParseDurationBounds(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1d12h", 36 * time.Hour, true},
		{"2w", 14 * 24 * time.Hour, true},
		{"36500d", 36500 * 24 * time.Hour, true},
		{"30502w", 0, false}, // ~585 years: used to wrap around to about 10 days
		{"100000d", 0, false},
		{"5215w", 0, false}, // just over 100 years
		{"36500d1h", 0, false},
		{"9000000h", 0, false},
		{"-1d", 0, false},
		{"1x", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestDurationUnmarshalError(t *testing.T) {
	for _, in := range []string{`{"grace":"soon"}`, `{"grace":true}`, `{"grace":"30502w"}`, `{"grace":99999999999999}`} {
		var v struct {
			Grace Duration `json:"grace"`
		}
		err := json.Unmarshal([]byte(in), &v)
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) || te.Field != "grace" || !strings.HasPrefix(te.Value, "a duration") {
			t.Errorf("Unmarshal(%s) = %#v, want an UnmarshalTypeError on grace whose value starts with \"a duration\"", in, err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {2 * time.Hour, "2h"}, {24 * time.Hour, "1d"}, {36 * time.Hour, "1d12h"},
		{90 * time.Minute, "1h30m"}, {90 * time.Second, "1m30s"}, {200 * time.Millisecond, "200ms"},
		{30 * 24 * time.Hour, "30d"},
	}
	for _, tt := range tests {
		got := FormatDuration(tt.in)
		if got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := ParseDuration(got); err != nil || back != tt.in {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", tt.in, back, err)
		}
	}
}

func TestScheduleErrorsNameTheProblem(t *testing.T) {
	tests := []struct{ in, want string }{
		{"61 * * * *", "minute field"},
		{"0 24 * * *", "hour field"},
		{"0 3 0 * *", "day-of-month field"},
		{"0 3 * 13 *", "month field"},
		{"0 3 * * 8", "day-of-week field"},
		{"0-61/5 * * * *", "minute field"},
	}
	for _, tt := range tests {
		_, err := ParseSchedule(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSchedule(%q) = %v, want an error naming the %s", tt.in, err, tt.want)
		}
	}
}

func TestOptionTypeErrorNamesTheOption(t *testing.T) {
	h := newHarness(t, false, nil)
	h.put("v/s", "value")
	_, err := h.engine.SetPolicy(context.Background(), "v/s", Policy{Rotator: "password", Options: json.RawMessage(`{"length":"abc"}`)}, "t")
	var ve *secret.ValidationError
	if !errors.As(err, &ve) || ve.Field != "options.length" || !strings.Contains(ve.Msg, "whole number") || strings.Contains(err.Error(), "Go struct") {
		t.Fatalf("SetPolicy with length \"abc\" = %v, want a validation error on options.length", err)
	}
}
