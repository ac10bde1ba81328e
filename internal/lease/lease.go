// Package lease keeps leases: time-limited grants, such as a database user,
// that are revoked when they expire, when someone revokes them, or when the
// token that obtained them is revoked.
//
// Leases live in storage, never only in memory. Three indexes make every
// operation proportional to the leases it touches, not to all leases:
//
//	lease/l/<id>                           the lease record
//	lease/exp/<unix nanos, 20 digits>/<id>  when the lease must next be acted on:
//	                                       its expiry, or its next revocation attempt
//	lease/tok/<accessor>/<id>               the leases a token obtained
//	lease/retry/<id>                        leases whose revocation failed and awaits a retry
//
// Opening a Manager reads nothing, so start-up does not depend on how many
// leases exist. ExpireDue walks the expiry index from its start in batches.
//
// Revocation is crash-safe: a lease record is deleted only after its
// revoker succeeded, and an explicit revocation is recorded (due now) before
// the revoker runs, so a crash at any point leaves the lease to be revoked
// by the next ExpireDue. A revocation that fails is retried with
// exponential backoff, forever: a lease is never forgotten. Revokers must
// therefore be idempotent.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const (
	recordPrefix = "lease/l/"
	expiryPrefix = "lease/exp/"
	tokenPrefix  = "lease/tok/"
	retryPrefix  = "lease/retry/"
	stampDigits  = 20 // zero-padded unix nanoseconds: keys sort by time
)

// Bounds.
const (
	// MaxTTL bounds any lease's lifetime.
	MaxTTL = 365 * 24 * time.Hour
	// MaxIDLen bounds a lease id.
	MaxIDLen = 512
	// DefaultBatch is how many leases ExpireDue handles per storage round.
	DefaultBatch = 500
)

var (
	// ErrNotFound means no lease has that id (it never existed or was revoked).
	ErrNotFound = errors.New("lease not found")
	// ErrNotRenewable means the lease was issued non-renewable.
	ErrNotRenewable = errors.New("lease is not renewable")
	// ErrExpired means the lease is past its expiry (its revocation is due).
	ErrExpired = errors.New("lease has expired")
	// ErrRevoking means the lease's revocation was requested; it can no longer be renewed.
	ErrRevoking = errors.New("lease is being revoked")
	// ErrBadID means a lease id or prefix is malformed.
	ErrBadID = errors.New("lease id must be 1 to 512 characters of A-Z a-z 0-9 _ . - separated by single slashes")
	// ErrNoRevoker means no revoker is registered for the lease's kind.
	ErrNoRevoker = errors.New("no revoker registered for this lease kind")
	// ErrBadPrefix means a prefix given to List or RevokePrefix does not end
	// with "/": a prefix covers whole id segments, so "db/creds/r" cannot
	// reach the leases of role "reporting".
	ErrBadPrefix = errors.New(`lease prefix must end with "/" so that it covers whole id segments, e.g. db/creds/ROLE/`)
)

// InputError reports a bad argument, such as a renewal increment out of range.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// PendingError is returned when a revocation failed and was scheduled for
// a retry. The lease stays in storage until a retry succeeds.
type PendingError struct {
	ID          string
	Attempts    int
	NextAttempt time.Time
	Err         error // the revoker's error
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("revocation of lease %s failed (attempt %d); retrying at %s: %v",
		e.ID, e.Attempts, e.NextAttempt.UTC().Format(time.RFC3339), e.Err)
}

func (e *PendingError) Unwrap() error { return e.Err }

// Lease is a stored lease. Data belongs to the revoker of Kind and is
// opaque here; it lives encrypted below the barrier like everything else.
type Lease struct {
	ID           string          `json:"id"`
	Kind         string          `json:"kind"`
	Accessor     string          `json:"accessor,omitempty"` // the token that obtained it
	IssuedAt     time.Time       `json:"issued_at"`
	RenewedAt    *time.Time      `json:"renewed_at,omitempty"`
	ExpiresAt    time.Time       `json:"expires_at"`
	MaxExpiresAt time.Time       `json:"max_expires_at"` // renewals stop here
	TTL          time.Duration   `json:"ttl"`            // a renewal's default increment
	Renewable    bool            `json:"renewable"`
	Data         json.RawMessage `json:"data,omitempty"`
	Revocation   *Revocation     `json:"revocation,omitempty"` // nil until revocation is requested or first fails
}

// Revocation is the state of a lease on its way out.
type Revocation struct {
	RequestedAt time.Time `json:"requested_at"`
	Reason      string    `json:"reason"` // expired, revoked, prefix, token
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
}

// due is when the lease must next be acted on.
func (l *Lease) due() time.Time {
	if l.Revocation != nil {
		return l.Revocation.NextAttempt
	}
	return l.ExpiresAt
}

func expiryKey(t time.Time, id string) string {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return expiryPrefix + fmt.Sprintf("%0*d", stampDigits, n) + "/" + id
}

// parseExpiryKey splits an expiry index key into its time and lease id.
func parseExpiryKey(k string) (time.Time, string, bool) {
	rest := strings.TrimPrefix(k, expiryPrefix)
	if len(rest) < stampDigits+2 || rest[stampDigits] != '/' {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(rest[:stampDigits], 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(0, n), rest[stampDigits+1:], true
}

// Revoker ends what leases of one kind grant. Revoke must be idempotent:
// it may be called again for a lease it already revoked (after a crash, or
// when storing the outcome failed). It must not put secrets in its errors.
type Revoker interface {
	Revoke(ctx context.Context, l *Lease) error
}

// Renewer is the optional capability of revokers that must act when a
// lease is renewed (e.g. to extend a database user's expiry). If Renew
// fails the lease keeps its old expiry.
type Renewer interface {
	Renew(ctx context.Context, l *Lease, expires time.Time) error
}

// Store is what the manager needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Config configures a Manager; zero values mean defaults.
type Config struct {
	Now    func() time.Time
	Logger *slog.Logger
	// Batch is how many leases ExpireDue reads and settles per storage
	// transaction; default DefaultBatch.
	Batch int
	// Workers bounds concurrent revoker calls; default 4.
	Workers int
	// RetryMin and RetryMax shape the backoff after failed revocations:
	// the nth failure waits RetryMin·2ⁿ⁻¹ (with up to 20% jitter), at
	// most RetryMax. Defaults 10s and 1h.
	RetryMin, RetryMax time.Duration
	// RevokeTimeout bounds one revoker call; default 30s.
	RevokeTimeout time.Duration
}

// Manager creates, renews and revokes leases. It is safe for concurrent use
// and holds no lease in memory.
type Manager struct {
	store Store
	cfg   Config
	log   *slog.Logger
	stats stats

	mu       sync.RWMutex       // guards revokers
	revokers map[string]Revoker // by kind
}

// New returns a Manager over store. It reads nothing: start-up cost does
// not depend on the number of leases.
func New(store Store, cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 10 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = time.Hour
	}
	if cfg.RevokeTimeout <= 0 {
		cfg.RevokeTimeout = 30 * time.Second
	}
	return &Manager{store: store, cfg: cfg, log: cfg.Logger, stats: newStats(), revokers: map[string]Revoker{}}
}

// Register sets the revoker of leases of kind. Register it before leases of
// that kind are revoked; until then their revocations fail and are retried.
func (m *Manager) Register(kind string, r Revoker) {
	m.mu.Lock()
	m.revokers[kind] = r
	m.mu.Unlock()
}

func (m *Manager) revoker(kind string) Revoker {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.revokers[kind]
}

// CheckID validates a lease id or id prefix. A prefix may end with "/";
// List and RevokePrefix also require it to (see CheckPrefix).
func CheckID(id string, prefix bool) error {
	if id == "" || len(id) > MaxIDLen {
		return ErrBadID
	}
	if prefix {
		id = strings.TrimSuffix(id, "/")
		if id == "" {
			return ErrBadID
		}
	}
	for _, seg := range strings.Split(id, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return ErrBadID
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				return ErrBadID
			}
		}
	}
	return nil
}

// CheckPrefix validates a prefix for List and RevokePrefix: a valid id
// prefix that ends with "/", so that it matches whole segments. It returns
// ErrBadID or ErrBadPrefix.
func CheckPrefix(prefix string) error {
	if err := CheckID(prefix, true); err != nil {
		return err
	}
	if !strings.HasSuffix(prefix, "/") {
		return ErrBadPrefix
	}
	return nil
}

// Input describes a lease to create.
type Input struct {
	Kind string
	// Prefix starts the id, e.g. "db/creds/readonly"; a random part follows.
	Prefix    string
	Accessor  string // the token obtaining the lease; "" for none
	TTL       time.Duration
	MaxTTL    time.Duration // renewals stop MaxTTL after issue; 0: TTL
	Renewable bool
	Data      json.RawMessage
}

// Create stores a new lease and returns it. Callers create the lease before
// granting what it covers, so that a crash in between leaves a lease that
// will be revoked rather than a grant nobody knows of.
func (m *Manager) Create(ctx context.Context, in Input) (*Lease, error) {
	if in.Kind == "" {
		return nil, errors.New("lease kind is required")
	}
	if in.TTL <= 0 || in.TTL > MaxTTL || in.MaxTTL < 0 || in.MaxTTL > MaxTTL {
		return nil, fmt.Errorf("lease ttl must be between 1s and %s", MaxTTL)
	}
	if in.MaxTTL == 0 || in.MaxTTL < in.TTL {
		in.MaxTTL = max(in.MaxTTL, in.TTL)
	}
	id := in.Prefix + "/" + randomID()
	if in.Prefix == "" {
		id = in.Kind + "/" + randomID()
	}
	if err := CheckID(id, false); err != nil {
		return nil, err
	}
	now := m.cfg.Now().UTC()
	l := &Lease{ID: id, Kind: in.Kind, Accessor: in.Accessor, IssuedAt: now, ExpiresAt: now.Add(in.TTL),
		MaxExpiresAt: now.Add(in.MaxTTL), TTL: in.TTL, Renewable: in.Renewable, Data: in.Data}
	if err := m.store.Update(ctx, func(tx storage.Tx) error { return putLease(tx, nil, l) }); err != nil {
		return nil, fmt.Errorf("store lease: %w", err)
	}
	m.stats.created.Inc()
	return l, nil
}

// putLease writes l and its index entries, replacing those of old (nil for a new lease).
func putLease(tx storage.Tx, old, l *Lease) error {
	if old != nil {
		if err := tx.Delete(expiryKey(old.due(), old.ID)); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if err := tx.Put(recordPrefix+l.ID, raw); err != nil {
		return err
	}
	if err := tx.Put(expiryKey(l.due(), l.ID), nil); err != nil {
		return err
	}
	if l.Accessor != "" && old == nil {
		if err := tx.Put(tokenPrefix+l.Accessor+"/"+l.ID, nil); err != nil {
			return err
		}
	}
	if l.Revocation != nil && l.Revocation.Attempts > 0 {
		return tx.Put(retryPrefix+l.ID, nil)
	}
	return nil
}

// deleteLease removes l and every index entry.
func deleteLease(tx storage.Tx, l *Lease) error {
	for _, k := range []string{recordPrefix + l.ID, expiryKey(l.due(), l.ID), retryPrefix + l.ID} {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	if l.Accessor != "" {
		return tx.Delete(tokenPrefix + l.Accessor + "/" + l.ID)
	}
	return nil
}

func getLease(get func(string) ([]byte, error), id string) (*Lease, error) {
	raw, err := get(recordPrefix + id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	l := &Lease{}
	if err := json.Unmarshal(raw, l); err != nil {
		return nil, fmt.Errorf("decode lease %s: %w", id, err)
	}
	return l, nil
}

// Lookup returns a lease, including one whose revocation is pending.
func (m *Manager) Lookup(ctx context.Context, id string) (*Lease, error) {
	if err := CheckID(id, false); err != nil {
		return nil, err
	}
	return getLease(func(k string) ([]byte, error) { return m.store.Get(ctx, k) }, id)
}

// List returns up to limit lease ids that start with prefix and sort after
// after, and the cursor of the next page ("" at the end). prefix is "" (all
// leases) or ends with "/" (ErrBadPrefix otherwise). limit <= 0 or above
// 1000 means 100.
func (m *Manager) List(ctx context.Context, prefix, after string, limit int) ([]string, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if prefix != "" {
		if err := CheckPrefix(prefix); err != nil {
			return nil, "", err
		}
	}
	start := ""
	if after != "" {
		start = recordPrefix + after
	}
	keys, err := m.store.List(ctx, recordPrefix+prefix, start, limit)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = strings.TrimPrefix(k, recordPrefix)
	}
	next := ""
	if len(ids) == limit {
		next = ids[len(ids)-1]
	}
	return ids, next, nil
}

// Renewal is what Renew did: the renewed lease, and whether the expiry
// asked for was cut back to the lease's maximum.
type Renewal struct {
	*Lease
	// Capped means the increment would have run past MaxExpiresAt, so the
	// lease now expires at MaxExpiresAt instead: sooner than asked.
	Capped bool
}

// Renew extends a renewable lease by increment (0: its TTL) from now,
// never past its maximum (the Renewal says when it was capped), and returns
// it. An increment below 0 or above MaxTTL is an *InputError for field
// "increment". A registered Renewer is told first; if it fails the lease is
// unchanged.
func (m *Manager) Renew(ctx context.Context, id string, increment time.Duration) (*Renewal, error) {
	if increment < 0 || increment > MaxTTL {
		return nil, &InputError{Field: "increment", Msg: fmt.Sprintf("must be between 0 (the lease's ttl) and %s", MaxTTL)}
	}
	l, err := m.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now().UTC()
	switch {
	case l.Revocation != nil:
		return nil, ErrRevoking
	case !now.Before(l.ExpiresAt):
		return nil, ErrExpired
	case !l.Renewable:
		return nil, ErrNotRenewable
	}
	if increment == 0 {
		increment = l.TTL
	}
	exp := now.Add(increment)
	capped := exp.After(l.MaxExpiresAt)
	if capped {
		exp = l.MaxExpiresAt
	}
	if rn, ok := m.revoker(l.Kind).(Renewer); ok {
		if err := rn.Renew(ctx, l, exp); err != nil {
			return nil, fmt.Errorf("renew lease %s: %w", id, err)
		}
	}
	var out *Lease
	err = m.store.Update(ctx, func(tx storage.Tx) error {
		cur, err := getLease(tx.Get, id)
		if err != nil {
			return err
		}
		if cur.Revocation != nil {
			return ErrRevoking
		}
		next := *cur
		next.ExpiresAt, next.RenewedAt = exp, &now
		out = &next
		return putLease(tx, cur, &next)
	})
	if err != nil {
		return nil, err
	}
	return &Renewal{Lease: out, Capped: capped}, nil
}

// Revoke revokes one lease now. It returns nil once the revoker succeeded
// and the lease is gone, ErrNotFound if there is no such lease, or a
// *PendingError if the revoker failed: the revocation is then on record
// and retried by ExpireDue until it succeeds.
func (m *Manager) Revoke(ctx context.Context, id string) error {
	if err := CheckID(id, false); err != nil {
		return err
	}
	ls, err := m.markRevoking(ctx, []string{id}, "revoked")
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		return ErrNotFound
	}
	res, err := m.settle(ctx, ls)
	if err != nil {
		return err
	}
	if len(res.pending) > 0 {
		return res.pending[0]
	}
	return nil
}

// Result counts what a bulk revocation did.
type Result struct {
	Revoked int `json:"revoked"`
	// Pending leases failed to revoke; they are retried with backoff.
	Pending int `json:"pending"`
}

// RevokePrefix revokes every lease whose id starts with prefix, which must
// end with "/" (ErrBadPrefix otherwise): "db/creds/r/" revokes the leases
// of role r, never those of role "reporting".
func (m *Manager) RevokePrefix(ctx context.Context, prefix string) (Result, error) {
	if err := CheckPrefix(prefix); err != nil {
		return Result{}, err
	}
	return m.revokeListed(ctx, recordPrefix+prefix, "prefix")
}

// RevokeByToken revokes every lease the token with this accessor obtained.
// The token service calls it before it deletes a token. An error means
// storage failed and the token should not be deleted yet; failed
// revocations are not errors (they are on record and retried).
func (m *Manager) RevokeByToken(ctx context.Context, accessor string) error {
	if accessor == "" || strings.Contains(accessor, "/") {
		return nil
	}
	res, err := m.revokeListed(ctx, tokenPrefix+accessor+"/", "token")
	if err == nil && res.Pending > 0 {
		m.log.Warn("some leases of a revoked token could not be revoked yet; retrying with backoff", "pending", res.Pending)
	}
	return err
}

// revokeListed revokes the leases whose ids end the keys under prefix, a
// batch at a time.
func (m *Manager) revokeListed(ctx context.Context, prefix, reason string) (Result, error) {
	var total Result
	after := ""
	for {
		keys, err := m.store.List(ctx, prefix, after, m.cfg.Batch)
		if err != nil || len(keys) == 0 {
			return total, err
		}
		after = keys[len(keys)-1]
		ids := make([]string, len(keys))
		for i, k := range keys {
			if strings.HasPrefix(prefix, tokenPrefix) {
				ids[i] = strings.TrimPrefix(k, prefix)
			} else {
				ids[i] = strings.TrimPrefix(k, recordPrefix)
			}
		}
		ls, err := m.markRevoking(ctx, ids, reason)
		if err != nil {
			return total, err
		}
		res, err := m.settle(ctx, ls)
		total.Revoked += res.revoked
		total.Pending += len(res.pending)
		if err != nil {
			return total, err
		}
		if len(keys) < m.cfg.Batch {
			return total, nil
		}
	}
}

// markRevoking records, in one transaction, that the leases' revocation
// is requested and due now, and returns them. Missing ids are skipped.
// Once this returns, a crash cannot lose the revocation.
func (m *Manager) markRevoking(ctx context.Context, ids []string, reason string) ([]*Lease, error) {
	var out []*Lease
	err := m.store.Update(ctx, func(tx storage.Tx) error {
		out = out[:0]
		now := m.cfg.Now().UTC()
		for _, id := range ids {
			cur, err := getLease(tx.Get, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			next := *cur
			if cur.Revocation == nil {
				next.Revocation = &Revocation{RequestedAt: now, Reason: reason}
			} else {
				r := *cur.Revocation
				next.Revocation = &r
			}
			next.Revocation.NextAttempt = now
			if err := putLease(tx, cur, &next); err != nil {
				return err
			}
			out = append(out, &next)
		}
		return nil
	})
	return out, err
}

// settled is the outcome of settle.
type settled struct {
	revoked int
	pending []*PendingError
}

// settle calls the revokers of ls concurrently, then in one transaction
// deletes the leases revoked and reschedules the others with backoff.
func (m *Manager) settle(ctx context.Context, ls []*Lease) (settled, error) {
	errs := make([]error, len(ls))
	sem := make(chan struct{}, m.cfg.Workers)
	var wg sync.WaitGroup
	for i, l := range ls {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = m.callRevoker(ctx, l)
		}()
	}
	wg.Wait()
	var res settled
	// The outcome is stored even if the caller gave up meanwhile: a
	// revocation done but not recorded would only be redone, but a failure
	// not recorded would lose its backoff.
	err := m.store.Update(context.WithoutCancel(ctx), func(tx storage.Tx) error {
		res = settled{}
		now := m.cfg.Now().UTC()
		for i, l := range ls {
			cur, err := getLease(tx.Get, l.ID)
			if errors.Is(err, ErrNotFound) {
				continue // revoked meanwhile by another caller
			}
			if err != nil {
				return err
			}
			if errs[i] == nil {
				if err := deleteLease(tx, cur); err != nil {
					return err
				}
				res.revoked++
				continue
			}
			next := *cur
			r := Revocation{RequestedAt: now, Reason: "expired"}
			if cur.Revocation != nil {
				r = *cur.Revocation
			}
			r.Attempts++
			r.NextAttempt = now.Add(m.backoff(r.Attempts))
			r.LastError = truncate(errs[i].Error(), 512)
			next.Revocation = &r
			if err := putLease(tx, cur, &next); err != nil {
				return err
			}
			res.pending = append(res.pending, &PendingError{ID: l.ID, Attempts: r.Attempts, NextAttempt: r.NextAttempt, Err: errs[i]})
		}
		return nil
	})
	if err != nil {
		return settled{}, fmt.Errorf("store revocation outcome: %w", err)
	}
	m.stats.revoked.Add(float64(res.revoked))
	m.stats.failures.Add(float64(len(res.pending)))
	for _, p := range res.pending {
		m.log.Warn("lease revocation failed; will retry", "lease_id", p.ID, "attempts", p.Attempts,
			"next_attempt", p.NextAttempt, "error", p.Err)
	}
	return res, nil
}

func (m *Manager) callRevoker(ctx context.Context, l *Lease) (err error) {
	r := m.revoker(l.Kind)
	if r == nil {
		return fmt.Errorf("%w: %q", ErrNoRevoker, l.Kind)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RevokeTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("revoker of %q panicked", l.Kind)
		}
	}()
	return r.Revoke(ctx, l)
}

// backoff is the wait after the nth failed attempt.
func (m *Manager) backoff(n int) time.Duration {
	d := m.cfg.RetryMin
	for i := 1; i < n && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, m.cfg.RetryMax)
	var b [1]byte
	_, _ = rand.Read(b[:])
	return d + d/5*time.Duration(b[0])/255
}

// ExpireDue revokes the leases whose expiry (or next revocation attempt)
// has come, a batch at a time, and returns what it did. Run it on one node
// at a time. Leases whose revocation fails are rescheduled, not dropped.
func (m *Manager) ExpireDue(ctx context.Context) (Result, error) {
	var total Result
	defer func() { m.stats.runs.Inc() }()
	for {
		now := m.cfg.Now()
		keys, err := m.store.List(ctx, expiryPrefix, "", m.cfg.Batch)
		if err != nil {
			return total, err
		}
		var due []*Lease
		var stale []string
		more := len(keys) == m.cfg.Batch
		for _, k := range keys {
			at, id, ok := parseExpiryKey(k)
			if ok && at.After(now) {
				more = false
				break
			}
			var l *Lease
			if ok {
				l, err = m.Lookup(ctx, id)
			}
			switch {
			case !ok || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadID):
				stale = append(stale, k)
			case err != nil:
				return total, err
			case expiryKey(l.due(), l.ID) != k:
				stale = append(stale, k) // left behind by an interrupted writer
			default:
				due = append(due, l)
			}
		}
		if len(stale) > 0 {
			if err := m.store.Update(ctx, func(tx storage.Tx) error {
				for _, k := range stale {
					if err := tx.Delete(k); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return total, err
			}
		}
		if len(due) > 0 {
			res, err := m.settle(ctx, due)
			total.Revoked += res.revoked
			total.Pending += len(res.pending)
			if err != nil {
				return total, err
			}
		}
		if !more || len(due)+len(stale) == 0 {
			break
		}
	}
	m.updatePendingGauge(ctx)
	return total, nil
}

// updatePendingGauge counts leases awaiting a revocation retry (up to a bound).
func (m *Manager) updatePendingGauge(ctx context.Context) {
	const bound = 100_000
	keys, err := m.store.List(ctx, retryPrefix, "", bound)
	if err == nil {
		m.stats.pending.Set(float64(len(keys)))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// randomID returns 26 characters of base32 (130 bits).
func randomID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [26]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b[:])
}
