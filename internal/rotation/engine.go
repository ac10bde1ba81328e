// Package rotation rotates secrets on schedules, on demand and in bulk for
// incident response, and never fails silently.
//
// A rotation writes the new value as a pending version, has a Rotator set
// it on the target system and test it there (by logging in with it), then
// promotes it to current; the old value becomes previous and keeps working
// for the policy's grace window, after which the rotator revokes it. Each
// step's state is made durable before the step touches anything outside
// Coffer, so a rotation interrupted by a crash is resumed from its last
// step, and a step that fails leaves current untouched, is retried with
// backoff, and after MaxAttempts marks the rotation failed: a metric, an
// event, an audit record and the status shown by coffer secret describe.
//
// Schedules live in storage: a per-secret state and an index of next-run
// times, so they survive restarts. Engine.RunDue is the scheduler's tick;
// the server calls it on one node only.
package rotation

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage"
)

var (
	// ErrNoPolicy means the secret has no rotation policy, of its own or from a prefix.
	ErrNoPolicy = errors.New("no rotation policy applies to this secret")
	// ErrBusy means another runner holds the secret's rotation lease.
	ErrBusy = errors.New("a rotation of this secret is already running")
	// ErrNotRotating is returned by Cancel when no rotation is in flight.
	ErrNotRotating = errors.New("no rotation of this secret is in progress")
	// ErrUnknownRotator means a policy names a rotator the server does not have.
	ErrUnknownRotator = errors.New("unknown rotator")
	// errAbandoned is returned when a failpoint simulated a crash.
	errAbandoned = errors.New("rotation abandoned by a failpoint")
	// errCancelled stops a run whose cancellation was requested.
	errCancelled = errors.New("rotation cancelled")
)

// DefaultStepTimeout bounds each step of a rotation unless
// Config.StepTimeout says otherwise; rotators' own timeouts (a webhook's)
// are capped at it.
const DefaultStepTimeout = 2 * time.Minute

// Store is what the engine needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Config configures an Engine. Zero values mean defaults.
type Config struct {
	Store   Store
	Secrets *secret.Service
	Events  *events.Bus                                // nil: no events
	Audit   func(context.Context, *audit.Record) error // nil: no audit records
	Logger  *slog.Logger
	Now     func() time.Time
	// Jitter returns a random duration in [0, max); nil draws from crypto/rand.
	Jitter func(max time.Duration) time.Duration
	// Rotators by name (password, postgresql, mysql, webhook).
	Rotators map[string]Rotator

	Batch       int           // due secrets taken per RunDue (default 16): catch-up is spread over ticks
	Concurrency int           // rotations run at once by RunDue and Emergency (default 2)
	LeaseTTL    time.Duration // a runner's lease, renewed while it works (default 30s)
	StepTimeout time.Duration // bound on each step (default DefaultStepTimeout)
	RetryMin    time.Duration // first retry delay, doubled per attempt (default 30s)
	RetryMax    time.Duration // longest retry delay (default 1h)
	SyncEvery   time.Duration // how often RunDue enrols secrets under prefix policies (default 5m)
	// Failpoint, for crash tests, is called after each step's outcome is
	// durable with the name of the step just done; returning true abandons
	// the run on the spot, as a crash would.
	Failpoint func(step string) bool
}

// Engine runs rotations. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	store   Store
	secrets *secret.Service
	log     *slog.Logger
	now     func() time.Time
	metrics *Metrics

	syncMu   sync.Mutex // guards lastSync
	lastSync time.Time
}

// New returns an Engine.
func New(cfg Config) *Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = cryptoJitter
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.LeaseTTL, 30*time.Second)
	def(&cfg.StepTimeout, DefaultStepTimeout)
	def(&cfg.RetryMin, 30*time.Second)
	def(&cfg.RetryMax, time.Hour)
	def(&cfg.SyncEvery, 5*time.Minute)
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	names := make([]string, 0, len(cfg.Rotators))
	for n := range cfg.Rotators {
		names = append(names, n)
	}
	return &Engine{cfg: cfg, store: cfg.Store, secrets: cfg.Secrets, log: cfg.Logger,
		now: func() time.Time { return cfg.Now().UTC() }, metrics: newMetrics(names)}
}

func cryptoJitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(max)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- policies ----

// SetPolicy stores the rotation policy of one secret, which must exist. It
// returns the policy as stored, with the options' secrets redacted unless
// this call generated or supplied them (a webhook's new signing key is
// shown this once; a key kept from before is not).
func (e *Engine) SetPolicy(ctx context.Context, name string, p Policy, actor string) (*Policy, error) {
	if err := secret.ValidateName(name); err != nil {
		return nil, err
	}
	m, err := e.secrets.Describe(ctx, name)
	if err != nil {
		return nil, err
	}
	if m.DeletedAt != nil {
		return nil, secret.ErrDeleted
	}
	cur, err := e.secrets.Get(ctx, name, secret.Selector{})
	if err != nil {
		cur = nil // no current value: rotators that pin from it ask for options instead
	}
	return e.putPolicy(ctx, policyPrefix+name, name, cur, p, actor, func(tx storage.Tx, sch Schedule, prev, p *Policy) error {
		st, err := readState(tx, name)
		if err != nil {
			return err
		}
		if st != nil && st.inFlight() {
			// The rotation in flight continues with whatever policy
			// governs the secret when it resumes; a different rotator or
			// options would roll back what the old one set on the target.
			gov := prev
			if st.Source != "secret" {
				if gov, err = governingTx(tx, st.Source); err != nil {
					return err
				}
			}
			if !sameRotator(gov, p) {
				return fmt.Errorf("%w: a rotation of %s is in progress; wait for it or cancel it (coffer secret rotate %s --cancel) before changing its rotator or options", ErrBusy, name, name)
			}
		}
		return e.enrolTx(tx, name, "secret", p, sch, true)
	})
}

// governingTx reads the prefix policy a state's source ("prefix:P")
// names, or returns nil.
func governingTx(tx storage.Tx, source string) (*Policy, error) {
	prefix, ok := strings.CutPrefix(source, "prefix:")
	if !ok {
		return nil, nil
	}
	return readPolicy(tx.Get, prefixPrefix+prefix)
}

// sameRotator reports whether a and b rotate the same way: the same
// rotator with the same (normalised) options. Schedules may differ.
func sameRotator(a, b *Policy) bool {
	return a != nil && b != nil && a.Rotator == b.Rotator && bytes.Equal(a.Options, b.Options)
}

// SetPrefixPolicy stores a policy for every secret under prefix that has
// no policy of its own (the longest matching prefix wins). Secrets under it
// are enrolled now and, for secrets created later, by RunDue within SyncEvery.
func (e *Engine) SetPrefixPolicy(ctx context.Context, prefix string, p Policy, actor string) (*Policy, error) {
	if prefix == "" || !strings.HasSuffix(prefix, "/") {
		return nil, invalid("prefix", "must end in \"/\" (payments/, not payments): a policy for \"pay\" would also govern \"payroll/...\"")
	}
	if err := secret.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := e.checkPrefixChange(ctx, prefix, p); err != nil {
		return nil, err
	}
	existing, err := e.PrefixPolicies(ctx)
	if err != nil {
		return nil, err
	}
	if len(existing) >= MaxPrefixPolicies && !slices.Contains(existing, prefix) {
		return nil, invalid("prefix", "there are already %d prefix policies, the limit; delete one or set policies per secret", MaxPrefixPolicies)
	}
	out, err := e.putPolicy(ctx, prefixPrefix+prefix, prefix, nil, p, actor, nil)
	if err != nil {
		return nil, err
	}
	if err := e.syncPrefix(ctx, prefix); err != nil {
		e.log.Warn("enrolling secrets under a rotation prefix failed; RunDue retries", "prefix", prefix, "error", err)
	}
	return out, nil
}

// putPolicy checks p with its rotator and stores it at key; enrol, when
// set, runs in the same transaction with the policy stored before (or
// nil) and the new one. cur is the secret's current value (nil for a
// prefix). It returns the stored policy with the secrets kept from the
// previous options redacted (see FreshRedactor).
func (e *Engine) putPolicy(ctx context.Context, key, subject string, cur *secret.Value, p Policy, actor string, enrol func(tx storage.Tx, sch Schedule, prev, np *Policy) error) (*Policy, error) {
	now := e.now()
	sch, err := p.validate(now)
	if err != nil {
		return nil, err
	}
	rot, ok := e.cfg.Rotators[p.Rotator]
	if !ok {
		return nil, invalid("rotator", "%q is not a rotator; want one of %s", p.Rotator, strings.Join(e.RotatorNames(), ", "))
	}
	var out *Policy
	err = e.store.Update(ctx, func(tx storage.Tx) error {
		var old json.RawMessage
		prev, err := readPolicy(tx.Get, key)
		if err != nil {
			return err
		}
		if prev != nil && prev.Rotator == p.Rotator {
			old = prev.Options
		}
		opts, err := rot.Check(p.Options, old, PolicyInfo{Name: subject, Grace: time.Duration(p.Grace), Current: cur})
		if err != nil {
			return err
		}
		np := p
		np.Options, np.UpdatedAt, np.UpdatedBy = opts, now, actor
		raw, err := json.Marshal(&np)
		if err != nil {
			return err
		}
		if err := tx.Put(key, raw); err != nil {
			return err
		}
		if enrol != nil {
			if err := enrol(tx, sch, prev, &np); err != nil {
				return err
			}
		}
		out = e.shown(&np, old)
		return nil
	})
	return out, err
}

// shown returns p as the caller who just set it may see it: secrets in
// the options that the call generated or supplied are shown, those kept
// from old are redacted.
func (e *Engine) shown(p *Policy, old json.RawMessage) *Policy {
	if r, ok := e.cfg.Rotators[p.Rotator].(FreshRedactor); ok {
		c := *p
		c.Options = r.RedactKept(p.Options, old)
		return &c
	}
	return e.redact(p)
}

// enrolTx creates or refreshes the state of a secret governed by p. With
// reschedule, an existing schedule is recomputed (the policy changed).
func (e *Engine) enrolTx(tx storage.Tx, name, source string, p *Policy, sch Schedule, reschedule bool) error {
	st, err := readState(tx, name)
	if err != nil {
		return err
	}
	var old time.Time
	if st == nil {
		st = &State{Name: name, Status: StatusScheduled}
		reschedule = true
	} else {
		old = st.NextAt
		if !reschedule && st.Source == source && st.Rotator == p.Rotator {
			return nil
		}
	}
	st.Source, st.Rotator = source, p.Rotator
	if reschedule {
		st.NextDue = e.nextDue(sch, p, e.now())
	}
	return writeState(tx, st, old)
}

func (e *Engine) nextDue(sch Schedule, p *Policy, from time.Time) *time.Time {
	n := sch.Next(from)
	if n.IsZero() {
		return nil
	}
	n = n.Add(e.cfg.Jitter(time.Duration(p.Jitter))).UTC()
	return &n
}

func readPolicy(get func(string) ([]byte, error), key string) (*Policy, error) {
	raw, err := get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Policy
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("decode rotation policy: %w", err)
	}
	return &p, nil
}

// DeletePolicy removes a secret's own policy (a prefix policy may then
// apply). A rotation in flight must finish or be cancelled first.
func (e *Engine) DeletePolicy(ctx context.Context, name string) error {
	if err := secret.ValidateName(name); err != nil {
		return err
	}
	prefixPol, prefix, err := e.prefixPolicyFor(ctx, name)
	if err != nil {
		return err
	}
	return e.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(policyPrefix + name); errors.Is(err, storage.ErrNotFound) {
			return ErrNoPolicy
		} else if err != nil {
			return err
		}
		st, err := readState(tx, name)
		if err != nil {
			return err
		}
		if st != nil && st.inFlight() {
			return fmt.Errorf("%w: cancel it first (coffer secret rotate %s --cancel)", ErrBusy, name)
		}
		if err := tx.Delete(policyPrefix + name); err != nil {
			return err
		}
		if st == nil {
			return nil
		}
		if prefixPol != nil {
			sch, _ := ParseSchedule(prefixPol.Schedule)
			return e.enrolTx(tx, name, "prefix:"+prefix, prefixPol, sch, true)
		}
		return deleteState(tx, st)
	})
}

// checkPrefixChange refuses a prefix policy that would change the rotator
// or options of a rotation in flight under prefix: the rotation resumes
// with whatever policy governs the secret then, and a different rotator
// would roll back on the target what the first one set there. The check
// runs before the write, so a rotation starting in between is not seen;
// rotations start rarely enough for that window not to matter in practice.
func (e *Engine) checkPrefixChange(ctx context.Context, prefix string, p Policy) error {
	prev, err := readPolicy(func(k string) ([]byte, error) { return e.store.Get(ctx, k) }, prefixPrefix+prefix)
	if err != nil {
		return err
	}
	if prev != nil && prev.Rotator == p.Rotator {
		if rot, ok := e.cfg.Rotators[p.Rotator]; ok {
			opts, err := rot.Check(p.Options, prev.Options, PolicyInfo{Name: prefix, Grace: time.Duration(p.Grace)})
			if err != nil {
				return err
			}
			if bytes.Equal(opts, prev.Options) {
				return nil // same rotator and options: only the schedule changes
			}
		}
	}
	// Rotations governed by this prefix's policy, or by a shorter prefix's
	// that this one now overrides.
	name, err := e.inFlightUnder(ctx, prefix, func(source string) bool {
		p, ok := strings.CutPrefix(source, "prefix:")
		return ok && len(p) <= len(prefix)
	})
	if err != nil || name == "" {
		return err
	}
	return fmt.Errorf("%w: a rotation of %s is in progress under %s; wait for it or cancel it (coffer secret rotate %s --cancel) before changing the rotator or options that govern it", ErrBusy, name, prefix, name)
}

// inFlightUnder returns a secret under prefix whose rotation is in flight
// and whose state's source satisfies match, or "".
func (e *Engine) inFlightUnder(ctx context.Context, prefix string, match func(source string) bool) (string, error) {
	after := ""
	for {
		keys, err := e.store.List(ctx, statePrefix+prefix, after, 500)
		if err != nil || len(keys) == 0 {
			return "", err
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			st, err := e.getState(ctx, strings.TrimPrefix(k, statePrefix))
			if err != nil {
				return "", err
			}
			if st != nil && st.inFlight() && match(st.Source) {
				return st.Name, nil
			}
		}
	}
}

// DeletePrefixPolicy removes a prefix policy. Secrets it governed leave
// the schedule when next due (or move to a shorter prefix's policy). A
// rotation in flight under it must finish or be cancelled first: it
// would otherwise be resumed without a policy, or with another one.
func (e *Engine) DeletePrefixPolicy(ctx context.Context, prefix string) error {
	if _, err := e.store.Get(ctx, prefixPrefix+prefix); errors.Is(err, storage.ErrNotFound) {
		return ErrNoPolicy
	} else if err != nil {
		return err
	}
	name, err := e.inFlightUnder(ctx, prefix, func(source string) bool { return source == "prefix:"+prefix })
	if err != nil {
		return err
	}
	if name != "" {
		return fmt.Errorf("%w: a rotation of %s under this prefix is in progress; wait for it or cancel it first (coffer secret rotate %s --cancel)", ErrBusy, name, name)
	}
	return e.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(prefixPrefix + prefix); errors.Is(err, storage.ErrNotFound) {
			return ErrNoPolicy
		} else if err != nil {
			return err
		}
		return tx.Delete(prefixPrefix + prefix)
	})
}

// PrefixPolicy returns the policy stored for exactly prefix, options redacted.
func (e *Engine) PrefixPolicy(ctx context.Context, prefix string) (*Policy, error) {
	p, err := readPolicy(func(k string) ([]byte, error) { return e.store.Get(ctx, k) }, prefixPrefix+prefix)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNoPolicy
	}
	return e.redact(p), nil
}

// MaxPrefixPolicies bounds the prefix policies: each secret without a
// policy of its own is matched against all of them.
const MaxPrefixPolicies = 1000

// PrefixPolicies lists the prefixes that have a policy (at most
// MaxPrefixPolicies, which SetPrefixPolicy enforces).
func (e *Engine) PrefixPolicies(ctx context.Context) ([]string, error) {
	keys, err := e.store.List(ctx, prefixPrefix, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, prefixPrefix)
	}
	return out, nil
}

// prefixPolicyFor returns the longest prefix policy that covers name.
func (e *Engine) prefixPolicyFor(ctx context.Context, name string) (*Policy, string, error) {
	prefixes, err := e.PrefixPolicies(ctx)
	if err != nil {
		return nil, "", err
	}
	best := ""
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) && len(p) > len(best) {
			best = p
		}
	}
	if best == "" {
		return nil, "", nil
	}
	p, err := readPolicy(func(k string) ([]byte, error) { return e.store.Get(ctx, k) }, prefixPrefix+best)
	return p, best, err
}

// effectivePolicy returns the policy that governs name and its source.
func (e *Engine) effectivePolicy(ctx context.Context, name string) (*Policy, string, error) {
	p, err := readPolicy(func(k string) ([]byte, error) { return e.store.Get(ctx, k) }, policyPrefix+name)
	if err != nil || p != nil {
		return p, "secret", err
	}
	p, prefix, err := e.prefixPolicyFor(ctx, name)
	if err != nil || p == nil {
		return nil, "", err
	}
	return p, "prefix:" + prefix, nil
}

func (e *Engine) redact(p *Policy) *Policy {
	c := *p
	if r, ok := e.cfg.Rotators[p.Rotator].(Redactor); ok {
		c.Options = r.Redact(p.Options)
	}
	return &c
}

// References returns the secrets a policy's rotator would read (for
// authorizing whoever sets it). The policy need not be valid.
func (e *Engine) References(p Policy) []string {
	if r, ok := e.cfg.Rotators[p.Rotator].(Referencer); ok {
		return r.References(p.Options)
	}
	return nil
}

// NeedsRead reports whether setting p is as good as reading the secret
// it governs, so that whoever sets it must be allowed to read the secret:
// its rotator sends the values to a third party (Discloser) or reads other
// secrets (Referencer). The policy need not be valid.
func (e *Engine) NeedsRead(p Policy) bool {
	rot := e.cfg.Rotators[p.Rotator]
	if d, ok := rot.(Discloser); ok && d.DisclosesValues() {
		return true
	}
	return len(e.References(p)) > 0
}

// RotatorNames lists the configured rotators.
func (e *Engine) RotatorNames() []string {
	out := make([]string, 0, len(e.cfg.Rotators))
	for n := range e.cfg.Rotators {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Status is a secret's rotation policy (options redacted) and state.
type Status struct {
	Name   string  `json:"name"`
	Policy *Policy `json:"policy"`
	Source string  `json:"source"`
	State  *State  `json:"state"`
}

// Status returns the rotation policy and state of a secret.
func (e *Engine) Status(ctx context.Context, name string) (*Status, error) {
	if err := secret.ValidateName(name); err != nil {
		return nil, err
	}
	p, src, err := e.effectivePolicy(ctx, name)
	if err != nil {
		return nil, err
	}
	st, err := e.getState(ctx, name)
	if err != nil {
		return nil, err
	}
	if p == nil && st == nil {
		return nil, ErrNoPolicy
	}
	out := &Status{Name: name, Source: src, State: st}
	if p != nil {
		out.Policy = e.redact(p)
	}
	if st != nil {
		c := *st
		c.LeaseOwner = "" // an internal token
		out.State = &c
	}
	return out, nil
}

// ---- leases and state changes ----

// change runs fn on name's state in one transaction and writes it back,
// moving its index entry. With owner set, the caller must hold the lease.
// fn may return errSkip to write nothing.
func (e *Engine) change(ctx context.Context, name, owner string, fn func(st *State) error) (*State, error) {
	var out *State
	err := e.store.Update(ctx, func(tx storage.Tx) error {
		st, err := readState(tx, name)
		if err != nil {
			return err
		}
		var old time.Time
		if st == nil {
			st = &State{Name: name, Status: StatusScheduled}
		} else {
			old = st.NextAt
		}
		if owner != "" && st.LeaseOwner != owner {
			return fmt.Errorf("%w: lease lost", ErrBusy)
		}
		if err := fn(st); err != nil {
			return err
		}
		if err := writeState(tx, st, old); err != nil {
			return err
		}
		c := *st
		out = &c
		return nil
	})
	return out, err
}

// lease is a runner's hold on one secret's rotation, renewed in the
// background until released.
type lease struct {
	e     *Engine
	name  string
	owner string
	stop  chan struct{}
	done  chan struct{}
}

// acquire takes the lease on name, or returns ErrBusy.
func (e *Engine) acquire(ctx context.Context, name string) (*lease, *State, error) {
	owner := newToken()
	st, err := e.change(ctx, name, "", func(st *State) error {
		now := e.now()
		if st.leasedByOther(owner, now) {
			return ErrBusy
		}
		st.LeaseOwner, st.LeaseUntil = owner, tp(now.Add(e.cfg.LeaseTTL))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	l := &lease{e: e, name: name, owner: owner, stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l, st, nil
}

func (l *lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.e.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.e.cfg.LeaseTTL/3)
		_, err := l.e.change(ctx, l.name, l.owner, func(st *State) error {
			st.LeaseUntil = tp(l.e.now().Add(l.e.cfg.LeaseTTL))
			return nil
		})
		cancel()
		if err != nil {
			l.e.log.Warn("renewing a rotation lease failed", "name", l.name, "error", err)
		}
	}
}

// stopRenewing ends the background renewal without releasing the lease
// (what a crash does: the lease then expires by itself).
func (l *lease) stopRenewing() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// release applies fn and gives the lease up in the same write. It writes
// even when ctx is done (shutdown, lost leadership), so that the next
// runner need not wait for the lease to expire.
func (l *lease) release(ctx context.Context, fn func(st *State) error) (*State, error) {
	l.stopRenewing()
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.e.cfg.LeaseTTL)
		defer cancel()
	}
	return l.e.change(ctx, l.name, l.owner, func(st *State) error {
		if fn != nil {
			if err := fn(st); err != nil {
				return err
			}
		}
		st.LeaseOwner, st.LeaseUntil = "", nil
		return nil
	})
}

// save makes a change durable while holding the lease.
func (l *lease) save(ctx context.Context, fn func(st *State) error) (*State, error) {
	return l.e.change(ctx, l.name, l.owner, fn)
}

func (e *Engine) getState(ctx context.Context, name string) (*State, error) {
	raw, err := e.store.Get(ctx, statePrefix+name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode rotation state of %s: %w", name, err)
	}
	return &st, nil
}

// SetSchedule changes only the schedule of the policy that governs name,
// keeping its rotator and options; a policy inherited from a prefix is
// copied into the secret's own. (For AWS RotateSecret's RotationRules.)
func (e *Engine) SetSchedule(ctx context.Context, name, schedule, actor string) (*Policy, error) {
	p, _, err := e.effectivePolicy(ctx, name)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNoPolicy
	}
	np := *p
	np.Schedule = schedule
	out, err := e.SetPolicy(ctx, name, np, actor)
	if err != nil {
		return nil, err
	}
	return e.redact(out), nil
}
