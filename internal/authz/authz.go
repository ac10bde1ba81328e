// Package authz stores policies with their history and answers
// authorization questions with them. Policies are compiled once per
// distinct set of policy names and cached until a policy changes, so a check
// on the request path costs one map lookup and one compiled evaluation.
package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/policy"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const (
	currentPrefix = "sys/policy/p/" // + name -> Stored
	historyPrefix = "sys/policy/h/" // + name + "/" + revision -> Stored
	// revisionCounterPrefix + name -> the last revision number used.
	revisionCounterPrefix = "sys/policy/r/"
)

// RootPolicy is the built-in policy that allows everything. It cannot be
// stored, changed or deleted.
const RootPolicy = "root"

// maxCachedSets bounds the compiled-set cache.
const maxCachedSets = 4096

var (
	// ErrNotFound means no policy (or revision) has that name.
	ErrNotFound = errors.New("policy not found")
	// ErrReserved means the name belongs to a built-in policy.
	ErrReserved = errors.New("the root policy is built in and cannot be changed")
)

// Denied is an authorization refusal. It names the deciding policy and rule
// (never a value) so that a refusal can be debugged without guessing.
type Denied struct {
	Decision    policy.Decision
	Path        string
	Capability  string
	MFARequired bool
}

func (d *Denied) Error() string {
	msg := fmt.Sprintf("permission denied: %s on %q", d.Capability, d.Path)
	if d.Decision.Reason != "" {
		msg += ": " + d.Decision.Reason
	}
	if d.Decision.Policy != "" {
		msg += fmt.Sprintf(" (policy %q, rule %q)", d.Decision.Policy, d.Decision.Rule)
	}
	return msg
}

// Unwrap makes a Denied match auth.ErrForbidden.
func (d *Denied) Unwrap() error { return auth.ErrForbidden }

// Stored is a policy as kept in storage.
type Stored struct {
	Name      string    `json:"name"`
	Source    string    `json:"source"`
	Revision  int       `json:"revision"`
	Deleted   bool      `json:"deleted,omitempty"` // history entries only
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Service stores policies and authorizes requests. It is safe for concurrent use.
type Service struct {
	store Store
	now   func() time.Time

	applyMu sync.Mutex // serializes policy changes

	maxAge   atomic.Int64 // nanoseconds; see SetMaxAge
	reloadMu sync.Mutex   // one reload of expired policies at a time

	mu       sync.RWMutex              // guards the fields below
	policies map[string]*policy.Policy // parsed current policies, by name
	sets     map[string]*policy.Set    // compiled sets by sorted policy names
	loadedAt time.Time                 // when Load began reading policies
	// loads numbers Load calls as they begin; installed is the number of
	// the one whose policies are in use. A Load that began before the
	// installed one read older policies and is discarded, so a periodic
	// reload racing a change cannot bring the old policies back.
	loads, installed uint64
}

// SetMaxAge bounds how long policies are used from memory: a check made
// when they were loaded d ago or more loads them again first. Nodes
// sharing storage set it, so that a policy change whose notification was
// lost takes effect within d anyway. A single server leaves it unset: its
// own changes reload the policies.
func (s *Service) SetMaxAge(d time.Duration) { s.maxAge.Store(int64(d)) }

// refreshExpired reloads the policies when SetMaxAge's bound has passed.
func (s *Service) refreshExpired(ctx context.Context) error {
	d := time.Duration(s.maxAge.Load())
	if d <= 0 {
		return nil
	}
	expired := func() bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.policies != nil && s.now().Sub(s.loadedAt) >= d
	}
	if !expired() {
		return nil
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if !expired() { // another check reloaded them meanwhile
		return nil
	}
	return s.Load(ctx)
}

// New returns a Service; call Load after unseal.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Load reads every current policy from storage and drops compiled sets.
func (s *Service) Load(ctx context.Context) error {
	s.mu.Lock()
	s.loads++
	seq := s.loads
	s.mu.Unlock()
	start := s.now()
	parsed := map[string]*policy.Policy{}
	after := ""
	for {
		keys, err := s.store.List(ctx, currentPrefix, after, 256)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			st, err := s.read(ctx, k)
			if errors.Is(err, ErrNotFound) {
				continue // deleted since the list
			}
			if err != nil {
				return err
			}
			p, err := policy.Parse(st.Name, []byte(st.Source))
			if err != nil {
				return fmt.Errorf("stored policy %s no longer parses: %w", st.Name, err)
			}
			parsed[st.Name] = p
		}
	}
	s.mu.Lock()
	if seq > s.installed {
		s.policies, s.sets, s.loadedAt, s.installed = parsed, map[string]*policy.Set{}, start, seq
	}
	s.mu.Unlock()
	return nil
}

// IsPolicyKey reports whether the storage key key holds a current policy,
// so that a change to it made by another node calls for Load.
func IsPolicyKey(key string) bool { return strings.HasPrefix(key, currentPrefix) }

// Reset forgets everything; call it on seal.
func (s *Service) Reset() {
	s.mu.Lock()
	s.policies, s.sets = nil, nil
	s.installed = s.loads // a Load still in flight must not install after the seal
	s.mu.Unlock()
}

func (s *Service) read(ctx context.Context, key string) (*Stored, error) {
	raw, err := s.store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var st Stored
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	return &st, nil
}

// set returns the compiled set for a list of policy names.
func (s *Service) set(names []string) (*policy.Set, error) {
	key := strings.Join(names, "\x00")
	if !sort.StringsAreSorted(names) {
		sorted := slices.Sorted(slices.Values(names))
		key = strings.Join(sorted, "\x00")
	}
	s.mu.RLock()
	set, ok := s.sets[key]
	s.mu.RUnlock()
	if ok {
		return set, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.policies == nil {
		return nil, errors.New("policies are not loaded (sealed)")
	}
	var ps []*policy.Policy
	for _, n := range names {
		if p := s.policies[n]; p != nil {
			ps = append(ps, p)
		}
	}
	set, err := policy.Compile(ps...)
	if err != nil {
		return nil, err
	}
	if len(s.sets) >= maxCachedSets {
		s.sets = map[string]*policy.Set{}
	}
	s.sets[key] = set
	return set, nil
}

func request(p *auth.Principal, c auth.Check, now time.Time) policy.Request {
	return policy.Request{
		Path: c.Path, Capability: c.Capability, Source: c.Source, Time: now, MFA: p.MFA,
		Identity: policy.Identity{ID: p.IdentityID, Name: p.IdentityName, Meta: p.IdentityMeta},
	}
}

// Authorize answers c for p: nil, or a *Denied (which matches auth.ErrForbidden).
func (s *Service) Authorize(ctx context.Context, p *auth.Principal, c auth.Check) error {
	_, err := s.Decide(ctx, p, c)
	return err
}

// Decide is Authorize that also returns the decision, naming the rule that
// allowed or denied, for the audit record.
func (s *Service) Decide(ctx context.Context, p *auth.Principal, c auth.Check) (policy.Decision, error) {
	if p.Root() {
		return policy.Decision{Allowed: true, Policy: RootPolicy, Reason: "root token"}, nil
	}
	if err := s.refreshExpired(ctx); err != nil {
		return policy.Decision{}, err
	}
	set, err := s.set(p.Policies)
	if err != nil {
		return policy.Decision{}, err
	}
	d := set.Evaluate(request(p, c, s.now()))
	if d.Allowed {
		return d, nil
	}
	return d, &Denied{Decision: d, Path: c.Path, Capability: c.Capability, MFARequired: d.MFARequired}
}

// Explanation is the answer of Explain.
type Explanation struct {
	Allowed  bool            `json:"allowed"`
	Root     bool            `json:"root,omitempty"`
	Decision policy.Decision `json:"decision"`
	Matches  []policy.Match  `json:"matches"`
	Policies []string        `json:"policies"`
	Check    auth.Check      `json:"check"`
}

// Explain evaluates c for p and returns every rule that matched and why.
func (s *Service) Explain(ctx context.Context, p *auth.Principal, c auth.Check) (*Explanation, error) {
	ex := &Explanation{Policies: p.Policies, Check: c}
	if p.Root() {
		ex.Allowed, ex.Root = true, true
		return ex, nil
	}
	if err := s.refreshExpired(ctx); err != nil {
		return nil, err
	}
	set, err := s.set(p.Policies)
	if err != nil {
		return nil, err
	}
	r := request(p, c, s.now())
	ex.Decision = set.Evaluate(r)
	ex.Allowed = ex.Decision.Allowed
	ex.Matches = set.Explain(r)
	return ex, nil
}

// Get returns a current policy.
func (s *Service) Get(ctx context.Context, name string) (*Stored, error) {
	return s.read(ctx, currentPrefix+name)
}

// List returns every current policy, sorted by name.
func (s *Service) List(ctx context.Context) ([]*Stored, error) {
	var out []*Stored
	after := ""
	for {
		keys, err := s.store.List(ctx, currentPrefix, after, 256)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return out, nil
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			st, err := s.read(ctx, k)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
}

// Plan is the difference between a desired set of policies and the server's.
type Plan struct {
	Create    []string `json:"create"`
	Update    []string `json:"update"`
	Delete    []string `json:"delete"`
	Unchanged []string `json:"unchanged"`
}

// Empty reports whether applying the plan would change nothing.
func (p *Plan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// MaxPolicies bounds one apply.
const MaxPolicies = 1000

func parseAll(desired map[string]string) (map[string]*policy.Policy, error) {
	if len(desired) > MaxPolicies {
		return nil, &auth.InputError{Field: "policies", Msg: fmt.Sprintf("at most %d policies", MaxPolicies)}
	}
	parsed := map[string]*policy.Policy{}
	for name, src := range desired {
		if name == RootPolicy {
			return nil, ErrReserved
		}
		p, err := policy.Parse(name, []byte(src))
		if err != nil {
			return nil, err
		}
		parsed[name] = p
	}
	if _, err := policy.Compile(slices.Collect(func(yield func(*policy.Policy) bool) {
		for _, p := range parsed {
			if !yield(p) {
				return
			}
		}
	})...); err != nil {
		return nil, err
	}
	return parsed, nil
}

func (s *Service) plan(current map[string]*Stored, desired map[string]string, prune bool) *Plan {
	p := &Plan{Create: []string{}, Update: []string{}, Delete: []string{}, Unchanged: []string{}}
	for name, src := range desired {
		switch cur, ok := current[name]; {
		case !ok:
			p.Create = append(p.Create, name)
		case cur.Source != src:
			p.Update = append(p.Update, name)
		default:
			p.Unchanged = append(p.Unchanged, name)
		}
	}
	if prune {
		for name := range current {
			if _, ok := desired[name]; !ok {
				p.Delete = append(p.Delete, name)
			}
		}
	}
	for _, l := range [][]string{p.Create, p.Update, p.Delete, p.Unchanged} {
		sort.Strings(l)
	}
	return p
}

func (s *Service) currentMap(ctx context.Context) (map[string]*Stored, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*Stored, len(all))
	for _, st := range all {
		m[st.Name] = st
	}
	return m, nil
}

// PlanApply validates desired (name -> HCL source) and returns what Apply
// would change. With prune, server policies missing from desired are deleted.
func (s *Service) PlanApply(ctx context.Context, desired map[string]string, prune bool) (*Plan, error) {
	if _, err := parseAll(desired); err != nil {
		return nil, err
	}
	cur, err := s.currentMap(ctx)
	if err != nil {
		return nil, err
	}
	return s.plan(cur, desired, prune), nil
}

// Apply makes the server's policies match desired in one atomic
// transaction, recording a history revision for every change.
func (s *Service) Apply(ctx context.Context, desired map[string]string, prune bool, actor string) (*Plan, error) {
	if _, err := parseAll(desired); err != nil {
		return nil, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	cur, err := s.currentMap(ctx) // stable: applyMu serializes every change
	if err != nil {
		return nil, err
	}
	var plan *Plan
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		plan = s.plan(cur, desired, prune)
		now := s.now().UTC()
		write := func(name, src string, deleted bool) error {
			rev, err := nextRevision(tx, name)
			if err != nil {
				return err
			}
			st := Stored{Name: name, Source: src, Revision: rev, Deleted: deleted, UpdatedAt: now, UpdatedBy: actor}
			raw, _ := json.Marshal(st)
			if err := tx.Put(fmt.Sprintf("%s%s/%010d", historyPrefix, name, rev), raw); err != nil {
				return err
			}
			if deleted {
				return tx.Delete(currentPrefix + name)
			}
			return tx.Put(currentPrefix+name, raw)
		}
		for _, n := range append(slices.Clone(plan.Create), plan.Update...) {
			if err := write(n, desired[n], false); err != nil {
				return err
			}
		}
		for _, n := range plan.Delete {
			if err := write(n, cur[n].Source, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return plan, s.Load(ctx)
}

// Put creates or replaces one policy.
func (s *Service) Put(ctx context.Context, name, src, actor string) error {
	_, err := s.Apply(ctx, map[string]string{name: src}, false, actor)
	return err
}

// Delete removes one policy (its history stays).
func (s *Service) Delete(ctx context.Context, name, actor string) error {
	if name == RootPolicy {
		return ErrReserved
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	cur, err := s.Get(ctx, name)
	if err != nil {
		return err
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		rev, err := nextRevision(tx, name)
		if err != nil {
			return err
		}
		st := Stored{Name: name, Source: cur.Source, Revision: rev, Deleted: true, UpdatedAt: s.now().UTC(), UpdatedBy: actor}
		raw, _ := json.Marshal(st)
		if err := tx.Put(fmt.Sprintf("%s%s/%010d", historyPrefix, name, rev), raw); err != nil {
			return err
		}
		return tx.Delete(currentPrefix + name)
	})
	if err != nil {
		return err
	}
	return s.Load(ctx)
}

// History returns every revision of a policy, oldest first.
func (s *Service) History(ctx context.Context, name string) ([]*Stored, error) {
	var out []*Stored
	after := ""
	for {
		keys, err := s.store.List(ctx, historyPrefix+name+"/", after, 256)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			st, err := s.read(ctx, k)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// Restore makes an earlier revision current again, as a new revision.
func (s *Service) Restore(ctx context.Context, name string, revision int, actor string) (*Stored, error) {
	st, err := s.read(ctx, fmt.Sprintf("%s%s/%010d", historyPrefix, name, revision))
	if err != nil {
		return nil, err
	}
	if st.Deleted {
		return nil, &auth.InputError{Field: "revision", Msg: "that revision records a deletion"}
	}
	if err := s.Put(ctx, name, st.Source, actor); err != nil {
		return nil, err
	}
	return s.Get(ctx, name)
}

// nextRevision returns the revision after the newest in the policy's
// history, which outlives deletions.
func nextRevision(tx storage.Tx, name string) (int, error) {
	raw, err := tx.Get(revisionCounterPrefix + name)
	if errors.Is(err, storage.ErrNotFound) {
		return 1, tx.Put(revisionCounterPrefix+name, []byte("1"))
	}
	if err != nil {
		return 0, err
	}
	var n int
	fmt.Sscan(string(raw), &n)
	n++
	return n, tx.Put(revisionCounterPrefix+name, []byte(fmt.Sprint(n)))
}
