package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Triggers of a rotation, recorded in its state and audit records.
const (
	TriggerScheduled = "scheduled"
	TriggerManual    = "manual"
	TriggerEmergency = "emergency"
	TriggerRetry     = "retry"
	TriggerRecovery  = "recovery" // resumed after its runner died
)

// Actor is the name rotation writes versions and audit records as.
const Actor = "coffer-rotation"

// stepError is a failure of one step.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// RotateOptions control an on-demand rotation.
type RotateOptions struct {
	Trigger string // TriggerManual (default) or TriggerEmergency
	// Immediate revokes the previous credential as soon as the new one is
	// current, without the grace window (for compromised credentials).
	Immediate bool
	Actor     string // who asked, for the audit record
}

// Rotate rotates name now and returns its state afterwards. A failed
// attempt is not an error: the state says retrying or failed and why.
// Errors are ErrNoPolicy, ErrBusy, secret errors and storage errors. The
// rotation runs to its end even if ctx is cancelled (it is bounded by the
// step timeouts), so a disconnecting client cannot leave it half done.
func (e *Engine) Rotate(ctx context.Context, name string, o RotateOptions) (*State, error) {
	if err := secret.ValidateName(name); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	pol, src, err := e.effectivePolicy(ctx, name)
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return nil, ErrNoPolicy
	}
	if m, err := e.secrets.Describe(ctx, name); err != nil {
		return nil, err
	} else if m.DeletedAt != nil {
		return nil, secret.ErrDeleted
	}
	l, st, err := e.acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	if o.Trigger == "" {
		o.Trigger = TriggerManual
	}
	if st.RevokeAt != nil {
		// A new rotation supersedes the grace window of the last one.
		if st, err = e.revoke(ctx, l, pol, st); err != nil {
			l.release(ctx, nil)
			return nil, err
		}
	}
	return e.rotate(ctx, l, st, pol, src, o)
}

// rotate runs (or resumes) a rotation under lease l and releases it.
func (e *Engine) rotate(ctx context.Context, l *lease, st *State, pol *Policy, src string, o RotateOptions) (*State, error) {
	rot := e.cfg.Rotators[pol.Rotator]
	now := e.now()
	if rot == nil {
		e.metrics.count(pol.Rotator, OutcomeFailed)
		return l.release(ctx, func(s *State) error {
			s.Status, s.LastError, s.LastErrorAt = StatusFailed, fmt.Sprintf("%v %q", ErrUnknownRotator, pol.Rotator), tp(now)
			return nil
		})
	}
	reason := o.Trigger
	if o.Actor != "" {
		reason += " by " + o.Actor
	}
	// Intent first: a rotation whose record cannot be kept does not run.
	if err := e.audit(ctx, "rotation.start", st.Name, st.PendingVersion, reason, 0, ""); err != nil {
		l.release(ctx, nil)
		return nil, err
	}
	cur, err := e.secrets.Get(ctx, st.Name, secret.Selector{})
	if err != nil && !st.inFlight() {
		l.release(ctx, nil)
		return nil, err
	}
	st, err = l.save(ctx, func(s *State) error {
		if s.Status == StatusFailed {
			e.metrics.Failed.Dec()
		}
		if !s.inFlight() {
			if s.Trigger = o.Trigger; o.Trigger == TriggerScheduled && s.NextDue != nil {
				e.metrics.Lateness.WithLabelValues(e.metrics.label(pol.Rotator)).Observe(now.Sub(*s.NextDue).Seconds())
			}
			s.Step, s.RotationID, s.StartedAt, s.Attempt = StepCreate, newToken(), tp(now), 0
			s.FromVersion, s.PendingVersion, s.Immediate, s.Cancel = cur.Version, 0, o.Immediate, false
		} else {
			s.Immediate = s.Immediate || o.Immediate
		}
		s.Status, s.RetryAt, s.Source, s.Rotator = StatusRotating, nil, src, pol.Rotator
		return nil
	})
	if err != nil {
		l.release(ctx, nil)
		return nil, err
	}
	job := &Job{Name: st.Name, RotationID: st.RotationID, Options: pol.Options, Lookup: e.lookup, Now: e.now}
	err = e.steps(ctx, l, rot, job, st)
	switch {
	case errors.Is(err, errAbandoned):
		l.stopRenewing()
		return st, err
	case err != nil && ctx.Err() != nil:
		// Shutdown or lost leadership, not a failure of the target: no
		// attempt is counted and nothing is tested with a dead context.
		// The lease is given up with the rotation still in flight, so the
		// next runner resumes it from its last durable step.
		e.log.Info("rotation interrupted; the next runner resumes it", "name", st.Name, "step", st.Step)
		l.release(ctx, nil)
		return st, fmt.Errorf("rotation of %s interrupted: %w", st.Name, ctx.Err())
	case err == nil:
		return e.succeed(ctx, l, rot, job, pol, reason)
	default:
		return e.fail(ctx, l, rot, job, pol, reason, err)
	}
}

func (e *Engine) lookup(ctx context.Context, name string) (*secret.Value, error) {
	return e.secrets.Get(ctx, name, secret.Selector{})
}

// steps runs the steps from st.Step on, saving each outcome before the next.
func (e *Engine) steps(ctx context.Context, l *lease, rot Rotator, job *Job, st *State) error {
	var err error
	if st.FromVersion != 0 {
		if job.Current, err = e.secrets.Get(ctx, st.Name, secret.Selector{Version: st.FromVersion}); err != nil {
			return &stepError{st.Step, err}
		}
	}
	if st.PendingVersion != 0 {
		if job.Pending, err = e.secrets.Get(ctx, st.Name, secret.Selector{Version: st.PendingVersion}); err != nil {
			return &stepError{st.Step, err}
		}
	}
	for st.Step != "" {
		if st.Cancel {
			return errCancelled
		}
		if err := ctx.Err(); err != nil {
			return &stepError{st.Step, err}
		}
		step, pending := st.Step, 0
		sctx, cancel := context.WithTimeout(ctx, e.cfg.StepTimeout)
		switch step {
		case StepCreate:
			pending, err = e.create(sctx, rot, job, st)
		case StepSet:
			err = rot.Set(sctx, job)
		case StepTest:
			err = rot.Test(sctx, job, job.Pending)
		case StepFinish:
			err = rot.Finish(sctx, job)
		case StepPromote:
			err = e.promote(sctx, st.Name, st.PendingVersion)
		default:
			err = fmt.Errorf("unknown step %q", step)
		}
		cancel()
		if err != nil {
			return &stepError{step, err}
		}
		if step == StepPromote {
			// The bookkeeping of success (clearing the step, scheduling
			// the revocation and the next run) is one write, by succeed;
			// a crash before it repeats the promotion, which is harmless.
			if e.cfg.Failpoint != nil && e.cfg.Failpoint(step) {
				return errAbandoned
			}
			return nil
		}
		ns, err := l.save(ctx, func(s *State) error {
			s.Step = nextStep[step]
			if pending != 0 {
				s.PendingVersion = pending
			}
			return nil
		})
		if err != nil {
			return &stepError{step, err}
		}
		*st = *ns
		if e.cfg.Failpoint != nil && e.cfg.Failpoint(step) {
			return errAbandoned
		}
	}
	return nil
}

// create writes the pending version, or finds the one this rotation wrote
// before a crash (by its idempotency token).
func (e *Engine) create(ctx context.Context, rot Rotator, job *Job, st *State) (int, error) {
	m, err := e.secrets.Describe(ctx, st.Name)
	if err != nil {
		return 0, err
	}
	for _, v := range m.Versions {
		if v.IdempotencyToken == st.RotationID && !v.Destroyed {
			if m.Stages[secret.StagePending] != v.Number {
				if _, err := e.secrets.MoveStage(ctx, st.Name, secret.StagePending, v.Number, 0, Actor); err != nil {
					return 0, err
				}
			}
			job.Pending, err = e.secrets.Get(ctx, st.Name, secret.Selector{Version: v.Number})
			return v.Number, err
		}
	}
	val, typ, err := rot.Create(ctx, job)
	if err != nil {
		return 0, err
	}
	res, err := e.secrets.Put(ctx, secret.PutInput{Name: st.Name, Value: val, Type: typ,
		Stages: []string{secret.StagePending}, IdempotencyToken: st.RotationID, Actor: Actor})
	if err != nil {
		return 0, err
	}
	job.Pending, err = e.secrets.Get(ctx, st.Name, secret.Selector{Version: res.Version})
	return res.Version, err
}

// promote makes version n current (the old current becomes previous) and
// takes pending off it. Safe to repeat.
func (e *Engine) promote(ctx context.Context, name string, n int) error {
	m, err := e.secrets.MoveStage(ctx, name, secret.StageCurrent, n, 0, Actor)
	if err != nil {
		return err
	}
	if m.Stages[secret.StagePending] == n {
		if _, err := e.secrets.RemoveStage(ctx, name, secret.StagePending); err != nil && !errors.Is(err, secret.ErrVersionNotFound) {
			return err
		}
	}
	return nil
}

// rollback takes pending off version n if it is still there.
func (e *Engine) rollback(ctx context.Context, name string, n int) error {
	m, err := e.secrets.Describe(ctx, name)
	if err != nil {
		return err
	}
	if n == 0 || m.Stages[secret.StagePending] != n {
		return nil
	}
	_, err = e.secrets.RemoveStage(ctx, name, secret.StagePending)
	if errors.Is(err, secret.ErrVersionNotFound) {
		err = nil
	}
	return err
}

func clearFlight(s *State) {
	s.Step, s.RotationID, s.StartedAt, s.FromVersion, s.PendingVersion = "", "", nil, 0, 0
	s.Attempt, s.RetryAt, s.Cancel, s.Immediate, s.Trigger = 0, nil, false, false, ""
}

func (e *Engine) succeed(ctx context.Context, l *lease, rot Rotator, job *Job, pol *Policy, reason string) (*State, error) {
	now := e.now()
	sch, _ := ParseSchedule(pol.Schedule)
	st, err := l.save(ctx, func(s *State) error {
		grace := time.Duration(pol.Grace)
		if s.Immediate {
			grace = 0
		}
		if s.FromVersion != 0 && s.FromVersion != s.PendingVersion {
			s.RevokeVersion, s.RevokeAt = s.FromVersion, tp(now.Add(grace))
		}
		s.Status, s.LastError, s.LastErrorAt = StatusScheduled, "", nil
		s.LastRotatedAt, s.LastVersion = tp(now), s.PendingVersion
		s.Rotations++
		s.NextDue = e.nextDue(sch, pol, now)
		clearFlight(s)
		return nil
	})
	if err != nil {
		l.release(ctx, nil)
		return nil, err
	}
	e.metrics.count(pol.Rotator, OutcomeSuccess)
	e.publish(events.Rotated, st.Name, st.LastVersion)
	if err := e.audit(ctx, "rotation.rotate", st.Name, st.LastVersion, reason, 200, ""); err != nil {
		e.log.Error("rotation succeeded but could not be audited", "name", st.Name, "error", err)
	}
	e.log.Info("secret rotated", "name", st.Name, "version", st.LastVersion, "rotator", pol.Rotator)
	if st.RevokeAt != nil && !st.RevokeAt.After(now) {
		if _, err := e.revoke(ctx, l, pol, st); err != nil {
			l.release(ctx, nil)
			return nil, err
		}
	}
	return l.release(ctx, nil)
}

func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.RetryMin
	for i := 1; i < attempt && d < e.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, e.cfg.RetryMax)
	return d/2 + e.cfg.Jitter(d/2)
}

func (e *Engine) fail(ctx context.Context, l *lease, rot Rotator, job *Job, pol *Policy, reason string, cause error) (*State, error) {
	now := e.now()
	cancelled := errors.Is(cause, errCancelled)
	msg := scrub(cause.Error(), job)
	code := "rotation_failed"
	var se *stepError
	if errors.As(cause, &se) {
		code = se.step + "_failed"
	}
	st, err := l.save(ctx, func(s *State) error {
		if !cancelled {
			s.Attempt++
		}
		s.LastError, s.LastErrorAt = msg, tp(now)
		return nil
	})
	if err != nil {
		l.release(ctx, nil)
		return nil, err
	}
	if !cancelled && st.Attempt < pol.maxAttempts() {
		st, err = l.release(ctx, func(s *State) error {
			s.Status, s.RetryAt = StatusRetrying, tp(now.Add(e.backoff(s.Attempt)))
			return nil
		})
		e.metrics.count(pol.Rotator, OutcomeError)
		if aerr := e.audit(ctx, "rotation.rotate", job.Name, 0, reason+"; will retry", 500, code); aerr != nil {
			e.log.Error("failed rotation attempt could not be audited", "name", job.Name, "error", aerr)
		}
		e.log.Warn("rotation attempt failed; retrying", "name", job.Name, "rotator", pol.Rotator, "attempt", st.Attempt, "error", msg)
		return st, err
	}
	promoted, note := e.abandon(ctx, rot, job, st)
	sch, _ := ParseSchedule(pol.Schedule)
	st, err = l.release(ctx, func(s *State) error {
		if promoted {
			s.LastRotatedAt, s.LastVersion = tp(now), s.PendingVersion
		}
		if cancelled {
			s.Status, s.LastError = StatusScheduled, "cancelled: "+note
		} else {
			if s.Status != StatusFailed {
				e.metrics.Failed.Inc()
			}
			s.Status, s.LastError = StatusFailed, msg+"; "+note
			s.Failures++
		}
		s.NextDue = e.nextDue(sch, pol, now)
		clearFlight(s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cancelled {
		if aerr := e.audit(ctx, "rotation.cancel", job.Name, 0, note, 200, ""); aerr != nil {
			e.log.Error("rotation cancel could not be audited", "name", job.Name, "error", aerr)
		}
		return st, nil
	}
	e.metrics.count(pol.Rotator, OutcomeFailed)
	e.publish(events.RotationFailed, job.Name, 0)
	if aerr := e.audit(ctx, "rotation.rotate", job.Name, 0, reason+"; gave up: "+note, 500, code); aerr != nil {
		e.log.Error("failed rotation could not be audited", "name", job.Name, "error", aerr)
	}
	e.log.Error("rotation failed after every attempt", "name", job.Name, "rotator", pol.Rotator, "error", st.LastError)
	return st, nil
}

// abandon resolves a rotation that will not continue so that current
// works: it rolls back (pending removed) when current still works on the
// target, and otherwise promotes pending if that works. It reports whether
// it promoted and what it did.
func (e *Engine) abandon(ctx context.Context, rot Rotator, job *Job, st *State) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 2*e.cfg.StepTimeout)
	defer cancel()
	if st.PendingVersion == 0 {
		return false, "nothing was written; current is unchanged"
	}
	rollback := func(why string) (bool, string) {
		if err := e.rollback(ctx, st.Name, st.PendingVersion); err != nil {
			return false, fmt.Sprintf("%s, but removing pending from version %d failed: %v", why, st.PendingVersion, err)
		}
		return false, fmt.Sprintf("%s; rolled back: pending removed from version %d, current unchanged", why, st.PendingVersion)
	}
	if st.Step == StepCreate || st.Step == StepSet && job.Pending == nil {
		return rollback("the target was not changed")
	}
	if job.Current == nil || rot.Test(ctx, job, job.Current) == nil {
		return rollback("current still works on the target")
	}
	if job.Pending != nil && rot.Test(ctx, job, job.Pending) == nil {
		if err := e.promote(ctx, st.Name, st.PendingVersion); err != nil {
			return false, fmt.Sprintf("current no longer works on the target and the new value does, but promoting version %d failed: %v", st.PendingVersion, err)
		}
		return true, fmt.Sprintf("current no longer worked on the target but the new value does, so version %d was promoted", st.PendingVersion)
	}
	return false, fmt.Sprintf("neither current nor pending (version %d, kept for inspection) works on the target: fix the target, then rotate again", st.PendingVersion)
}

// revoke ends the grace window of st.RevokeVersion under lease l.
func (e *Engine) revoke(ctx context.Context, l *lease, pol *Policy, st *State) (*State, error) {
	rot := e.cfg.Rotators[pol.Rotator]
	v, now := st.RevokeVersion, e.now()
	m, err := e.secrets.Describe(ctx, st.Name)
	if err != nil {
		return st, err
	}
	var rerr error
	skip := ""
	switch {
	case rot == nil:
		rerr = fmt.Errorf("%w %q", ErrUnknownRotator, pol.Rotator)
	case v == 0:
		skip = "nothing to revoke"
	case m.CurrentVersion() == v:
		skip = "the version is current again (rolled back)"
	default:
		prev, err := e.secrets.Get(ctx, st.Name, secret.Selector{Version: v})
		if errors.Is(err, secret.ErrDestroyed) || errors.Is(err, secret.ErrVersionNotFound) {
			skip = "the version is gone"
			break
		}
		if err != nil {
			return st, err
		}
		cur, err := e.secrets.Get(ctx, st.Name, secret.Selector{})
		if err != nil {
			return st, err
		}
		job := &Job{Name: st.Name, Options: pol.Options, Current: cur, Previous: prev, Lookup: e.lookup, Now: e.now}
		sctx, cancel := context.WithTimeout(ctx, e.cfg.StepTimeout)
		rerr = rot.Revoke(sctx, job)
		cancel()
		if rerr != nil && ctx.Err() != nil {
			return st, fmt.Errorf("revocation for %s interrupted: %w", st.Name, ctx.Err())
		}
		if rerr != nil {
			rerr = errors.New(scrub(rerr.Error(), job))
		}
	}
	if rerr != nil {
		e.metrics.count(pol.Rotator, OutcomeRevokeError)
		if aerr := e.audit(ctx, "rotation.revoke", st.Name, v, "grace window ended; will retry", 500, "revoke_failed"); aerr != nil {
			e.log.Error("failed revocation could not be audited", "name", st.Name, "error", aerr)
		}
		e.log.Warn("revoking the previous credential failed; retrying", "name", st.Name, "version", v, "error", rerr)
		return l.save(ctx, func(s *State) error {
			s.LastError, s.LastErrorAt = fmt.Sprintf("revoke version %d: %v", v, rerr), tp(now)
			s.RevokeAt = tp(now.Add(e.backoff(3)))
			return nil
		})
	}
	if m.Stages[secret.StagePrevious] == v {
		if _, err := e.secrets.RemoveStage(ctx, st.Name, secret.StagePrevious); err != nil && !errors.Is(err, secret.ErrVersionNotFound) {
			return st, err
		}
	}
	if skip == "" {
		e.metrics.count(pol.Rotator, OutcomeRevoked)
		if aerr := e.audit(ctx, "rotation.revoke", st.Name, v, "grace window ended", 200, ""); aerr != nil {
			e.log.Error("revocation could not be audited", "name", st.Name, "error", aerr)
		}
	}
	return l.save(ctx, func(s *State) error {
		s.RevokeAt, s.RevokeVersion = nil, 0
		if strings.HasPrefix(s.LastError, "revoke ") {
			s.LastError, s.LastErrorAt = "", nil
		}
		return nil
	})
}

// Cancel stops the rotation in flight: it is rolled back when current
// still works on the target (or completed when only the new value does).
// A rotation running elsewhere is asked to stop after its current step.
func (e *Engine) Cancel(ctx context.Context, name, actor string) (*State, error) {
	if err := secret.ValidateName(name); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	if st, err := e.getState(ctx, name); err != nil {
		return nil, err
	} else if st == nil || !st.inFlight() {
		return nil, ErrNotRotating
	}
	l, st, err := e.acquire(ctx, name)
	if errors.Is(err, ErrBusy) {
		return e.change(ctx, name, "", func(s *State) error {
			if !s.inFlight() {
				return ErrNotRotating
			}
			s.Cancel = true
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	if !st.inFlight() {
		l.release(ctx, nil)
		return nil, ErrNotRotating
	}
	pol, _, err := e.effectivePolicy(ctx, name)
	if err != nil {
		l.release(ctx, nil)
		return nil, err
	}
	var rot Rotator
	if pol != nil {
		rot = e.cfg.Rotators[pol.Rotator]
	}
	note := "no rotator; pending removed"
	promoted := false
	if rot == nil {
		_ = e.rollback(ctx, name, st.PendingVersion)
	} else {
		job := &Job{Name: name, RotationID: st.RotationID, Options: pol.Options, Lookup: e.lookup, Now: e.now}
		if st.FromVersion != 0 {
			job.Current, _ = e.secrets.Get(ctx, name, secret.Selector{Version: st.FromVersion})
		}
		if st.PendingVersion != 0 {
			job.Pending, _ = e.secrets.Get(ctx, name, secret.Selector{Version: st.PendingVersion})
		}
		promoted, note = e.abandon(ctx, rot, job, st)
	}
	now := e.now()
	if aerr := e.audit(ctx, "rotation.cancel", name, st.PendingVersion, "by "+actor+": "+note, 200, ""); aerr != nil {
		e.log.Error("rotation cancel could not be audited", "name", name, "error", aerr)
	}
	return l.release(ctx, func(s *State) error {
		if promoted {
			s.LastRotatedAt, s.LastVersion = tp(now), s.PendingVersion
		}
		s.Status, s.LastError, s.LastErrorAt = StatusScheduled, "cancelled: "+note, tp(now)
		clearFlight(s)
		return nil
	})
}

// ---- the scheduler ----

// RunDue is the scheduler's tick: it enrols secrets under prefix policies
// (every SyncEvery), then takes at most Batch secrets whose next action is
// due (a revocation, a retry, a rotation left by a dead runner, or a
// scheduled rotation) and runs them, Concurrency at a time. Work beyond the
// batch waits for the next tick, so catching up after downtime is spread
// out rather than a stampede, and a secret that missed several runs
// rotates once. It returns how many secrets it took.
func (e *Engine) RunDue(ctx context.Context) (int, error) {
	e.maybeSync(ctx)
	now := e.now()
	keys, err := e.store.List(ctx, nextPrefix, "", e.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var due []string
	seen := map[string]bool{}
	overdue := time.Duration(0)
	for _, k := range keys {
		t, name, ok := parseNextKey(k)
		if !ok || t.After(now) {
			break
		}
		if overdue == 0 && t.UnixNano() > 0 { // the epoch marks crash recovery, not lateness
			overdue = now.Sub(t)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		if e.dropStale(ctx, k, t, name) {
			continue
		}
		due = append(due, name)
	}
	e.metrics.Overdue.Set(overdue.Seconds())
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, e.cfg.Concurrency)
	)
	for _, name := range due {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break // shutting down: leave the rest for the next runner
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := e.process(ctx, name); err != nil && ctx.Err() == nil {
				e.log.Warn("scheduled rotation work failed", "name", name, "error", err)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return len(due), firstErr
}

// dropStale deletes an index key that no longer matches its state.
func (e *Engine) dropStale(ctx context.Context, key string, t time.Time, name string) bool {
	st, err := e.getState(ctx, name)
	if err != nil || (st != nil && st.NextAt.Equal(t)) {
		return false
	}
	_ = e.store.Update(ctx, func(tx storage.Tx) error {
		st, err := readState(tx, name)
		if err != nil || (st != nil && st.NextAt.Equal(t)) {
			return err
		}
		return tx.Delete(key)
	})
	return true
}

// process does whatever is due for one secret.
func (e *Engine) process(ctx context.Context, name string) error {
	l, st, err := e.acquire(ctx, name)
	if errors.Is(err, ErrBusy) {
		return nil
	}
	if err != nil {
		return err
	}
	pol, src, err := e.effectivePolicy(ctx, name)
	if err != nil {
		l.release(ctx, nil)
		return err
	}
	m, merr := e.secrets.Describe(ctx, name)
	if pol == nil || errors.Is(merr, secret.ErrNotFound) {
		// The policy or the secret is gone: leave the schedule.
		if st.inFlight() && merr == nil {
			_ = e.rollback(ctx, name, st.PendingVersion)
		}
		l.stopRenewing()
		return e.store.Update(ctx, func(tx storage.Tx) error {
			cur, err := readState(tx, name)
			if err != nil || cur == nil || cur.LeaseOwner != l.owner {
				return err
			}
			if cur.Status == StatusFailed {
				e.metrics.Failed.Dec()
			}
			return deleteState(tx, cur)
		})
	}
	if merr != nil {
		l.release(ctx, nil)
		return merr
	}
	now := e.now()
	if m.DeletedAt != nil && !st.inFlight() {
		// Deleted secrets do not rotate; check again at the next due time.
		sch, _ := ParseSchedule(pol.Schedule)
		_, err := l.release(ctx, func(s *State) error {
			s.NextDue = e.nextDue(sch, pol, now)
			return nil
		})
		return err
	}
	if st.RevokeAt != nil && (!st.RevokeAt.After(now) || (!st.inFlight() && st.NextDue != nil && !st.NextDue.After(now))) {
		if st, err = e.revoke(ctx, l, pol, st); err != nil {
			l.release(ctx, nil)
			return err
		}
	}
	switch {
	case st.inFlight() && (st.RetryAt == nil || !st.RetryAt.After(now)):
		trigger := TriggerRetry
		if st.Status == StatusRotating {
			trigger = TriggerRecovery
			e.log.Warn("resuming a rotation left by a runner that stopped", "name", name, "step", st.Step)
		}
		_, err = e.rotate(ctx, l, st, pol, src, RotateOptions{Trigger: trigger})
	case !st.inFlight() && st.NextDue != nil && !st.NextDue.After(now):
		_, err = e.rotate(ctx, l, st, pol, src, RotateOptions{Trigger: TriggerScheduled})
	default:
		_, err = l.release(ctx, nil)
	}
	if errors.Is(err, errAbandoned) || (err != nil && ctx.Err() != nil) {
		return nil // a simulated crash, or shutdown: the next runner resumes
	}
	return err
}

// maybeSync enrols secrets under prefix policies and recounts failed
// rotations, at most every SyncEvery.
func (e *Engine) maybeSync(ctx context.Context) {
	e.syncMu.Lock()
	now := e.now()
	if !e.lastSync.IsZero() && now.Sub(e.lastSync) < e.cfg.SyncEvery {
		e.syncMu.Unlock()
		return
	}
	e.lastSync = now
	e.syncMu.Unlock()
	prefixes, err := e.PrefixPolicies(ctx)
	if err != nil {
		e.log.Warn("listing rotation prefixes failed", "error", err)
		return
	}
	for _, p := range prefixes {
		if err := e.syncPrefix(ctx, p); err != nil {
			e.log.Warn("enrolling secrets under a rotation prefix failed", "prefix", p, "error", err)
		}
	}
	failed, after := 0, ""
	for {
		keys, err := e.store.List(ctx, statePrefix, after, 500)
		if err != nil || len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			if st, err := e.getState(ctx, strings.TrimPrefix(k, statePrefix)); err == nil && st != nil && st.Status == StatusFailed {
				failed++
			}
		}
	}
	e.metrics.Failed.Set(float64(failed))
}

// syncPrefix enrols the secrets under prefix that it governs and that are
// not enrolled under it yet.
func (e *Engine) syncPrefix(ctx context.Context, prefix string) error {
	pol, err := readPolicy(func(k string) ([]byte, error) { return e.store.Get(ctx, k) }, prefixPrefix+prefix)
	if err != nil || pol == nil {
		return err
	}
	sch, err := ParseSchedule(pol.Schedule)
	if err != nil {
		return err
	}
	prefixes, err := e.PrefixPolicies(ctx)
	if err != nil {
		return err
	}
	source := "prefix:" + prefix
	cursor := ""
	for {
		page, err := e.secrets.List(ctx, secret.ListInput{Prefix: prefix, Cursor: cursor, Limit: secret.MaxListLimit})
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			if longestPrefix(prefixes, it.Name) != prefix {
				continue
			}
			if st, err := e.getState(ctx, it.Name); err != nil {
				return err
			} else if st != nil && st.Source == source && st.Rotator == pol.Rotator {
				continue
			}
			err := e.store.Update(ctx, func(tx storage.Tx) error {
				if _, err := tx.Get(policyPrefix + it.Name); err == nil {
					return nil // its own policy wins
				} else if !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				return e.enrolTx(tx, it.Name, source, pol, sch, false)
			})
			if err != nil {
				return err
			}
		}
		if page.NextCursor == "" {
			return nil
		}
		cursor = page.NextCursor
	}
}

func longestPrefix(prefixes []string, name string) string {
	best := ""
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) && len(p) > len(best) {
			best = p
		}
	}
	return best
}

// ---- emergency ----

// MaxEmergency bounds how many secrets one emergency rotation takes.
const MaxEmergency = 1000

// Report is the outcome of an emergency rotation.
type Report struct {
	Prefix string `json:"prefix"`
	// ReadableBy names the policies whose readable secrets were chosen,
	// when the caller asked for that (set by the API).
	ReadableBy []string  `json:"readable_by,omitempty"`
	Rotated    []Rotated `json:"rotated"`
	Failed     []Failure `json:"failed"`
	// Denied counts secrets under the prefix the caller may not rotate
	// (not named: the caller may not be allowed to know them).
	Denied    int  `json:"denied"`
	Truncated bool `json:"truncated,omitempty"` // more than MaxEmergency secrets: run again
}

// Rotated names a secret that rotated and its new current version.
type Rotated struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// Failure names a secret that did not rotate and why.
type Failure struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// Emergency rotates every secret under prefix that allow accepts, now,
// revoking previous credentials at once unless keepGrace, Concurrency at a
// time, and reports what rotated and what failed.
func (e *Engine) Emergency(ctx context.Context, prefix string, allow func(name string) bool, keepGrace bool, actor string) (*Report, error) {
	if err := secret.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	rep := &Report{Prefix: prefix, Rotated: []Rotated{}, Failed: []Failure{}}
	var names []string
	cursor := ""
	for len(names) < MaxEmergency {
		page, err := e.secrets.List(ctx, secret.ListInput{Prefix: prefix, Cursor: cursor, Limit: secret.MaxListLimit})
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			switch {
			case !allow(it.Name):
				rep.Denied++
			case len(names) == MaxEmergency:
				rep.Truncated = true
			default:
				names = append(names, it.Name)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		sem = make(chan struct{}, e.cfg.Concurrency)
	)
	for _, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := e.Rotate(ctx, name, RotateOptions{Trigger: TriggerEmergency, Immediate: !keepGrace, Actor: actor})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				rep.Failed = append(rep.Failed, Failure{name, publicError(err)})
			case st.Status == StatusScheduled && st.LastError == "":
				rep.Rotated = append(rep.Rotated, Rotated{name, st.LastVersion})
			default:
				rep.Failed = append(rep.Failed, Failure{name, st.Status + ": " + st.LastError})
			}
		}()
	}
	wg.Wait()
	slicesSortBy(rep.Rotated, func(r Rotated) string { return r.Name })
	slicesSortBy(rep.Failed, func(f Failure) string { return f.Name })
	return rep, nil
}

// publicError is an error's message for a report.
func publicError(err error) string {
	var ve *secret.ValidationError
	switch {
	case errors.Is(err, ErrNoPolicy), errors.Is(err, ErrBusy), errors.Is(err, secret.ErrDeleted),
		errors.Is(err, secret.ErrExpired), errors.Is(err, secret.ErrNotFound), errors.As(err, &ve):
		return err.Error()
	}
	return "internal error; see the server log"
}

// ---- audit, events, scrubbing ----

func (e *Engine) audit(ctx context.Context, op, name string, version int, reason string, status int, code string) error {
	if e.cfg.Audit == nil {
		return nil
	}
	return e.cfg.Audit(ctx, &audit.Record{Op: op, Path: name, Version: version, Reason: reason, Status: status, Error: code,
		Identity: &audit.Identity{Name: Actor, Method: "internal"}})
}

func (e *Engine) publish(typ, name string, version int) {
	if e.cfg.Events != nil {
		e.cfg.Events.Publish(events.Event{Type: typ, Name: name, Version: version})
	}
}

// maxErrorLen bounds an error kept in the state.
const maxErrorLen = 500

// scrub removes the job's secret values (whole, and each string field of
// a JSON value) from an error message and bounds its length: errors are
// shown to operators and must never carry a credential.
func scrub(msg string, j *Job) string {
	for _, v := range []*secret.Value{j.Current, j.Pending, j.Previous} {
		if v == nil {
			continue
		}
		for _, s := range sensitiveStrings(v.Data) {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen] + "..."
	}
	return msg
}

func sensitiveStrings(data []byte) []string {
	var out []string
	if len(data) >= 4 {
		out = append(out, string(data))
	}
	var obj map[string]any
	if json.Unmarshal(data, &obj) == nil {
		for k, v := range obj {
			s, ok := v.(string)
			if !ok || len(s) < 4 {
				continue
			}
			switch k {
			case "engine", "host", "username", "dbname", "port", "master_secret":
				continue // identifiers, useful in errors
			}
			out = append(out, s)
		}
	}
	return out
}

func slicesSortBy[T any](s []T, key func(T) string) {
	slices.SortFunc(s, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}
