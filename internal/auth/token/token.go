// Package token issues and checks Coffer tokens. A token is shown to its
// holder once; storage keeps only an HMAC-SHA256 of it under a key held in
// the barrier, and an accessor that names the token without granting
// anything. Tokens form a tree: revoking a token revokes every token created
// from it, unless those were created as orphans.
//
// Lookups are served from memory after the first; a revocation removes the
// entries from memory before it returns, so a revoked token is refused at
// once.
package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const (
	hmacKeyPath    = "auth/token/hmac-key"
	byHashPrefix   = "auth/token/h/" // + hash -> Entry
	byAccessPrefix = "auth/token/a/" // + accessor -> hash
	childPrefix    = "auth/token/c/" // + parent accessor + "/" + child accessor -> ""
	expiryPrefix   = "auth/token/x/" // + unix seconds (20 digits) + "/" + accessor -> ""
	revokingPrefix = "auth/token/r/" // + accessor -> "": revocation begun, not finished
	accessorPrefix = "acc_"          // accessors look like acc_XXXXXXXX
	maxTreeDepth   = 64              // bounds recursion when revoking subtrees
)

// Defaults and bounds for token lifetimes.
const (
	DefaultTTL    = time.Hour
	DefaultMaxTTL = 24 * time.Hour
	MaxMaxTTL     = 365 * 24 * time.Hour
)

var (
	// ErrNotFound means no live token has that accessor.
	ErrNotFound = errors.New("token not found")
	// ErrNotRenewable means the token was created non-renewable.
	ErrNotRenewable = errors.New("token is not renewable")
	// ErrSealed means the service has no key loaded.
	ErrSealed = errors.New("token service is not loaded (sealed)")
)

// Entry is what is stored about a token. It never holds the token.
type Entry struct {
	Accessor    string            `json:"accessor"`
	DisplayName string            `json:"display_name"`
	IdentityID  string            `json:"identity_id,omitempty"`
	Method      string            `json:"method"` // root, token, approle, jwt, userpass, cert, break-glass
	Policies    []string          `json:"policies"`
	Meta        map[string]string `json:"meta,omitempty"`
	MFA         bool              `json:"mfa,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`     // nil: never (root only)
	MaxExpires  *time.Time        `json:"max_expires_at,omitempty"` // renewals stop here; nil for periodic
	Period      time.Duration     `json:"period,omitempty"`
	TTL         time.Duration     `json:"ttl,omitempty"` // the TTL renewals extend by by default
	Renewable   bool              `json:"renewable"`
	NumUses     int               `json:"num_uses,omitempty"` // uses left; 0: unlimited
	Parent      string            `json:"parent,omitempty"`   // parent accessor; "" for orphans
	BreakGlass  string            `json:"break_glass_justification,omitempty"`
	// Revoking marks a token whose revocation has begun: it authenticates
	// nothing, gets no new children and cannot be renewed, and a later
	// Revoke or TidyExpired finishes the revocation.
	Revoking bool `json:"revoking,omitempty"`
	// IdentityName and IdentityMeta are what a child token (method
	// "token") stands for in policy templates ({{identity.name}},
	// {{identity.meta.KEY}}): its creator's, copied at creation. Its own
	// display name and meta are the creator's free choice and never feed
	// a policy. Unset on login tokens, whose identity is their login's.
	IdentityName string            `json:"identity_name,omitempty"`
	IdentityMeta map[string]string `json:"identity_meta,omitempty"`
	// Depth is how many parents the token has (0 for logins and orphans).
	// Create refuses a child past MaxDepth, so revocation reaches every
	// descendant.
	Depth int `json:"depth,omitempty"`
	// Family is the accessor of the first token of its line: the token
	// whose children and grandchildren all share it (root's tokens and
	// orphans start a line of their own).
	// A caller without an identity (root and its descendants) is rate
	// limited by family, so making children does not make fresh buckets.
	Family string `json:"family,omitempty"`

	hash string // storage id; not serialized
}

// MaxDepth is how deep a chain of child tokens may grow.
const MaxDepth = maxTreeDepth - 1

// Principal returns the caller this entry authenticates.
func (e *Entry) Principal() *auth.Principal {
	name, meta := e.identity()
	return &auth.Principal{Name: e.DisplayName, Accessor: e.Accessor, Policies: e.Policies, Meta: e.Meta,
		IdentityID: e.IdentityID, Method: e.Method, MFA: e.MFA, BreakGlass: e.BreakGlass != "",
		IdentityName: name, IdentityMeta: meta, Family: e.family()}
}

// family returns e's Family, e's own accessor for the first of a line.
func (e *Entry) family() string {
	if e.Family != "" {
		return e.Family
	}
	return e.Accessor
}

// identity returns the name and metadata the token stands for in policy
// templates. A login token's are its login's: the display name after the
// method ("userpass/alice" is alice) and its meta, both set by the auth
// method. A child token's are its creator's, recorded at creation (a child
// made before they were recorded stands for nobody: templates match
// nothing for it).
func (e *Entry) identity() (string, map[string]string) {
	if e.Method == childMethod {
		return e.IdentityName, e.IdentityMeta
	}
	return strings.TrimPrefix(e.DisplayName, e.Method+"/"), e.Meta
}

// childMethod is the Method of tokens created by other tokens.
const childMethod = "token"

// Store is what the token service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Service issues, looks up, renews and revokes tokens. It is safe for
// concurrent use.
type Service struct {
	store Store
	now   func() time.Time

	mu      sync.RWMutex                      // guards the fields below
	hmacKey []byte                            // nil until Load
	macs    *sync.Pool                        // HMAC-SHA256 states under hmacKey, reused across lookups
	cache   map[[sha256.Size]byte]cachedEntry // token HMAC -> entry
	maxAge  time.Duration                     // see SetMaxAge; 0: entries stay until changed
	// gen counts revocations. An entry read from storage is cached only if
	// no revocation started since the read, so a lookup racing a revoke
	// cannot put the revoked token back into the cache.
	gen uint64

	onRevoke func(ctx context.Context, accessor string) error // see OnRevoke; guarded by mu
}

// OnRevoke registers fn, called with the accessor of every token about to
// be deleted by a revocation (explicit, of a parent, on last use, or by
// TidyExpired), before it is deleted. The lease manager uses it to revoke
// what the token obtained. If fn fails the token is kept, unusable and
// marked as being revoked, and the revocation returns the error; Revoke or
// TidyExpired retries it. fn must not block on Create for the same token:
// such a Create is refused.
func (s *Service) OnRevoke(fn func(ctx context.Context, accessor string) error) {
	s.mu.Lock()
	s.onRevoke = fn
	s.mu.Unlock()
}

// generation returns the current revocation count.
func (s *Service) generation() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen
}

// cachedEntry is a cache slot. Entries are immutable; a change replaces them.
type cachedEntry struct {
	e     *Entry
	until time.Time // zero: no expiry (SetMaxAge not called)
}

// SetMaxAge bounds how long a looked-up entry is served from memory before
// it is read from storage again. Nodes sharing storage set it, so that a
// revocation whose notification was lost stops working within d anyway. A
// single server leaves it unset: its own revocations drop cache entries.
func (s *Service) SetMaxAge(d time.Duration) {
	s.mu.Lock()
	s.maxAge = d
	s.mu.Unlock()
}

// cacheIfCurrent stores e unless a revocation began after gen was read.
func (s *Service) cacheIfCurrent(hash string, e *Entry, gen uint64) {
	k, ok := cacheKey(hash)
	if !ok {
		return
	}
	s.mu.Lock()
	if s.cache != nil && s.gen == gen {
		c := cachedEntry{e: e}
		if s.maxAge > 0 {
			c.until = s.now().Add(s.maxAge)
		}
		s.cache[k] = c
	}
	s.mu.Unlock()
}

// New returns a Service; call Load after the barrier is unsealed.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Load reads (creating on first use) the HMAC key. Call it after unseal.
func (s *Service) Load(ctx context.Context) error {
	key, err := s.store.Get(ctx, hmacKeyPath)
	if errors.Is(err, storage.ErrNotFound) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("generate token hmac key: %w", err)
		}
		err = s.store.Update(ctx, func(tx storage.Tx) error {
			if existing, err := tx.Get(hmacKeyPath); err == nil {
				key = existing
				return nil
			}
			return tx.Put(hmacKeyPath, key)
		})
	}
	if err != nil {
		return fmt.Errorf("load token hmac key: %w", err)
	}
	s.mu.Lock()
	s.hmacKey, s.macs, s.cache = key, macPool(key), make(map[[sha256.Size]byte]cachedEntry)
	s.mu.Unlock()
	return nil
}

// Reset forgets the key and the cache; call it on seal.
func (s *Service) Reset() {
	s.mu.Lock()
	s.hmacKey, s.macs, s.cache = nil, nil, nil
	s.mu.Unlock()
}

// Invalidate drops every cached entry; the next lookups read storage. Other
// nodes call it when told that tokens changed.
func (s *Service) Invalidate() {
	s.mu.Lock()
	if s.cache != nil {
		s.cache = make(map[[sha256.Size]byte]cachedEntry)
	}
	s.gen++ // lookups reading storage now must not cache what they read
	s.mu.Unlock()
}

// ForgetKey drops the cached entry stored under the storage key key, which
// another node changed (revoked, renewed, used); other keys are ignored.
func (s *Service) ForgetKey(key string) {
	if h, ok := strings.CutPrefix(key, byHashPrefix); ok {
		s.drop(h)
	}
}

func (s *Service) hash(tok string) (string, error) {
	s.mu.RLock()
	key, macs := s.hmacKey, s.macs
	s.mu.RUnlock()
	if key == nil {
		return "", ErrSealed
	}
	sum := mac(macs, tok)
	return hex.EncodeToString(sum[:]), nil
}

// mac returns the HMAC of tok with a state from macs: every request hashes
// its token, so states are reused rather than rebuilding the keyed pads.
func mac(macs *sync.Pool, tok string) [sha256.Size]byte {
	m := macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(tok))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	macs.Put(m)
	return sum
}

// cacheKey turns a hex token hash into the cache's key.
func cacheKey(hash string) (k [sha256.Size]byte, ok bool) {
	if len(hash) != 2*sha256.Size {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(hash))
	return k, err == nil
}

// macPool returns a pool of HMAC-SHA256 states keyed with key.
func macPool(key []byte) *sync.Pool {
	return &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
}

// CreateInput describes a token to issue.
type CreateInput struct {
	DisplayName string
	IdentityID  string
	Method      string
	Policies    []string
	Meta        map[string]string
	MFA         bool
	// TTL is the initial lifetime; 0 means DefaultTTL. Root tokens pass NoExpiry.
	TTL time.Duration
	// MaxTTL caps renewals; 0 means DefaultMaxTTL. Ignored for periodic tokens.
	MaxTTL time.Duration
	// Period > 0 makes a periodic token: each renewal sets its life to Period, without a maximum.
	Period    time.Duration
	NoExpiry  bool // only for root tokens
	Renewable bool
	NumUses   int
	// Parent is the creating token's entry; nil or Orphan makes an orphan.
	Parent     *Entry
	Orphan     bool
	BreakGlass string // justification, for emergency tokens
}

func (in *CreateInput) validate() error {
	switch {
	case in.TTL < 0 || in.MaxTTL < 0 || in.Period < 0:
		return &auth.InputError{Field: "ttl", Msg: "durations must not be negative"}
	case in.MaxTTL > MaxMaxTTL || in.TTL > MaxMaxTTL || in.Period > MaxMaxTTL:
		return &auth.InputError{Field: "ttl", Msg: "durations must be at most 8760h"}
	case in.NumUses < 0:
		return &auth.InputError{Field: "num_uses", Msg: "must not be negative"}
	case len(in.Policies) > 64:
		return &auth.InputError{Field: "policies", Msg: "at most 64 policies"}
	case len(in.Meta) > 64:
		return &auth.InputError{Field: "meta", Msg: "at most 64 metadata entries"}
	case len(in.DisplayName) > 256:
		return &auth.InputError{Field: "display_name", Msg: "at most 256 characters"}
	}
	for k, v := range in.Meta {
		if len(k) > 128 || len(v) > 1024 {
			return &auth.InputError{Field: "meta", Msg: "keys at most 128 and values at most 1024 characters"}
		}
	}
	return nil
}

// Create issues a token and returns it with its entry. The token is not
// retrievable afterwards. A child token's lifetime never exceeds its parent's.
func (s *Service) Create(ctx context.Context, in CreateInput) (string, *Entry, error) {
	if err := in.validate(); err != nil {
		return "", nil, err
	}
	tok, err := Generate()
	if err != nil {
		return "", nil, err
	}
	h, err := s.hash(tok)
	if err != nil {
		return "", nil, err
	}
	acc, err := Generate()
	if err != nil {
		return "", nil, err
	}
	now := s.now().UTC()
	e := &Entry{
		Accessor: accessorPrefix + acc[len(Prefix):len(Prefix)+24], DisplayName: in.DisplayName,
		IdentityID: in.IdentityID, Method: in.Method, Policies: slices.Clone(in.Policies), Meta: in.Meta,
		MFA: in.MFA, CreatedAt: now, Renewable: in.Renewable, NumUses: in.NumUses, BreakGlass: in.BreakGlass,
		hash: h,
	}
	if in.Method == childMethod && in.Parent != nil {
		e.IdentityName, e.IdentityMeta = in.Parent.identity()
		e.IdentityMeta = maps.Clone(e.IdentityMeta)
	}
	if in.Parent != nil {
		// A child stays in its creator's family, so that making tokens is
		// no way around a rate limit. Root's tokens and orphans (which take
		// the create-orphan capability) are handed to someone else: they
		// start families of their own.
		if !in.Orphan && !slices.Contains(in.Parent.Policies, "root") {
			e.Family = in.Parent.family()
		}
		if !in.Orphan {
			if e.Depth = in.Parent.Depth + 1; e.Depth > MaxDepth {
				return "", nil, &auth.InputError{Field: "parent", Msg: fmt.Sprintf("a chain of child tokens may be at most %d deep; create an orphan or start from a login", MaxDepth)}
			}
		}
	}
	if !in.NoExpiry {
		ttl, maxTTL := in.TTL, in.MaxTTL
		if maxTTL == 0 {
			maxTTL = DefaultMaxTTL
		}
		if ttl == 0 {
			ttl = min(DefaultTTL, maxTTL)
		}
		if in.Period > 0 {
			ttl = in.Period
			e.Period = in.Period
		} else {
			ttl = min(ttl, maxTTL)
			m := now.Add(maxTTL)
			e.MaxExpires = &m
		}
		exp := now.Add(ttl)
		e.ExpiresAt, e.TTL = &exp, ttl
	}
	if in.Parent != nil && !in.Orphan {
		e.Parent = in.Parent.Accessor
		// A child never outlives its parent.
		if pe := in.Parent.ExpiresAt; pe != nil && (e.ExpiresAt == nil || e.ExpiresAt.After(*pe)) {
			t := *pe
			e.ExpiresAt = &t
		}
		if pm := in.Parent.MaxExpires; pm != nil && (e.MaxExpires == nil || e.MaxExpires.After(*pm)) {
			t := *pm
			e.MaxExpires = &t
		}
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		if e.Parent != "" {
			if _, err := tx.Get(byAccessPrefix + e.Parent); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("parent token was revoked: %w", auth.ErrUnauthenticated)
				}
				return err
			}
			// A parent whose revocation has begun takes no new children:
			// revokeTree may already have listed them.
			if _, err := tx.Get(revokingPrefix + e.Parent); err == nil {
				return fmt.Errorf("parent token was revoked: %w", auth.ErrUnauthenticated)
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err := tx.Put(childPrefix+e.Parent+"/"+e.Accessor, nil); err != nil {
				return err
			}
		}
		return putEntry(tx, e)
	})
	if err != nil {
		return "", nil, fmt.Errorf("store token: %w", err)
	}
	return tok, e, nil
}

func expiryKey(e *Entry) string {
	return fmt.Sprintf("%s%020d/%s", expiryPrefix, e.ExpiresAt.Unix(), e.Accessor)
}

// putEntry writes e and its indexes.
func putEntry(tx storage.Tx, e *Entry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := tx.Put(byHashPrefix+e.hash, raw); err != nil {
		return err
	}
	if err := tx.Put(byAccessPrefix+e.Accessor, []byte(e.hash)); err != nil {
		return err
	}
	if e.ExpiresAt != nil {
		return tx.Put(expiryKey(e), nil)
	}
	return nil
}

func decodeEntry(raw []byte, hash string) (*Entry, error) {
	e := &Entry{hash: hash}
	if err := json.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("decode token entry: %w", err)
	}
	return e, nil
}

func (s *Service) expired(e *Entry) bool {
	return e.ExpiresAt != nil && !s.now().Before(*e.ExpiresAt)
}

// dead reports whether e authenticates nothing: expired or being revoked.
func (s *Service) dead(e *Entry) bool {
	return e.Revoking || s.expired(e)
}

// Lookup returns the entry of a live token, or auth.ErrUnauthenticated. It
// does not consume a use; Use does.
func (s *Service) Lookup(ctx context.Context, tok string) (*Entry, error) {
	if Check(tok) != nil {
		return nil, auth.ErrUnauthenticated
	}
	// One read lock for the key and the cache: this is every request's path.
	s.mu.RLock()
	if s.hmacKey == nil {
		s.mu.RUnlock()
		return nil, ErrSealed
	}
	sum := mac(s.macs, tok)
	c := s.cache[sum]
	s.mu.RUnlock()
	e := c.e
	if e != nil && !c.until.IsZero() && !s.now().Before(c.until) {
		e = nil // served from memory long enough: read it again
	}
	if e == nil {
		h := hex.EncodeToString(sum[:])
		gen := s.generation()
		raw, err := s.store.Get(ctx, byHashPrefix+h)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, auth.ErrUnauthenticated
		}
		if err != nil {
			return nil, err
		}
		if e, err = decodeEntry(raw, h); err != nil {
			return nil, err
		}
		s.cacheIfCurrent(h, e, gen)
	}
	if s.dead(e) {
		return nil, auth.ErrUnauthenticated
	}
	return e, nil
}

// Use authenticates a request: like Lookup, and for a token with a use
// count it consumes one use, revoking the token with its last.
func (s *Service) Use(ctx context.Context, tok string) (*Entry, error) {
	e, err := s.Lookup(ctx, tok)
	if err != nil || e.NumUses == 0 {
		return e, err
	}
	var out *Entry
	last := false
	gen := s.generation()
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(byHashPrefix + e.hash)
		if errors.Is(err, storage.ErrNotFound) {
			return auth.ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		cur, err := decodeEntry(raw, e.hash)
		if err != nil {
			return err
		}
		if cur.NumUses <= 0 || cur.Revoking {
			return auth.ErrUnauthenticated
		}
		cur.NumUses--
		out, last = cur, cur.NumUses == 0
		if last {
			cur.NumUses = -1 // spent; revoked below
		}
		return putEntry(tx, cur)
	})
	if err != nil {
		s.drop(e.hash)
		return nil, err
	}
	s.cacheIfCurrent(e.hash, out, gen)
	if last {
		if err := s.Revoke(ctx, out); err != nil {
			return nil, err
		}
		out.NumUses = 0
	}
	return out, nil
}

// drop removes a cached entry and counts a revocation, so that lookups
// already reading storage do not cache what they read.
func (s *Service) drop(hash string) {
	k, _ := cacheKey(hash)
	s.mu.Lock()
	delete(s.cache, k)
	s.gen++
	s.mu.Unlock()
}

// LookupAccessor returns the entry of the live token with this accessor.
func (s *Service) LookupAccessor(ctx context.Context, accessor string) (*Entry, error) {
	if !strings.HasPrefix(accessor, accessorPrefix) || len(accessor) > 64 {
		return nil, ErrNotFound
	}
	h, err := s.store.Get(ctx, byAccessPrefix+accessor)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	raw, err := s.store.Get(ctx, byHashPrefix+string(h))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	e, err := decodeEntry(raw, string(h))
	if err != nil {
		return nil, err
	}
	if s.dead(e) {
		return nil, ErrNotFound
	}
	return e, nil
}

// Renew extends a renewable token by increment (0: its TTL), never past its
// maximum nor past its parent's expiry; a periodic token is extended by its
// period. A child whose parent expired or is being revoked is not renewed.
// It returns the new entry.
func (s *Service) Renew(ctx context.Context, e *Entry, increment time.Duration) (*Entry, error) {
	if !e.Renewable {
		return nil, ErrNotRenewable
	}
	if increment < 0 || increment > MaxMaxTTL {
		return nil, &auth.InputError{Field: "increment", Msg: "must be between 0 and 8760h"}
	}
	var out *Entry
	gen := s.generation()
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(byHashPrefix + e.hash)
		if errors.Is(err, storage.ErrNotFound) {
			return auth.ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		cur, err := decodeEntry(raw, e.hash)
		if err != nil {
			return err
		}
		if s.dead(cur) {
			return auth.ErrUnauthenticated
		}
		var parentExp *time.Time
		if cur.Parent != "" {
			p, err := parentEntry(tx, cur.Parent)
			if err != nil {
				return err
			}
			if p == nil || s.dead(p) {
				return auth.ErrUnauthenticated // a child never outlives its parent
			}
			parentExp = p.ExpiresAt
		}
		now := s.now().UTC()
		d := increment
		switch {
		case cur.Period > 0:
			d = cur.Period
		case d == 0:
			d = cur.TTL
		}
		exp := now.Add(d)
		if cur.MaxExpires != nil && exp.After(*cur.MaxExpires) {
			exp = *cur.MaxExpires
		}
		if parentExp != nil && exp.After(*parentExp) {
			exp = *parentExp
		}
		if err := tx.Delete(expiryKey(cur)); err != nil {
			return err
		}
		cur.ExpiresAt = &exp
		out = cur
		return putEntry(tx, cur)
	})
	if err != nil {
		return nil, err
	}
	s.cacheIfCurrent(e.hash, out, gen)
	return out, nil
}

// parentEntry reads, inside tx, the entry of the token with this accessor;
// nil if there is none.
func parentEntry(tx storage.Tx, accessor string) (*Entry, error) {
	h, err := tx.Get(byAccessPrefix + accessor)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := tx.Get(byHashPrefix + string(h))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeEntry(raw, string(h))
}

// Revoke deletes a token and every token in its subtree. Once Revoke
// returns, Lookup refuses all of them. If it fails, the tokens it reached
// stay unusable and a later Revoke or TidyExpired finishes the job.
func (s *Service) Revoke(ctx context.Context, e *Entry) error {
	return s.revokeTree(ctx, e.Accessor, "", 0)
}

// RevokeAccessor revokes the token with this accessor and its subtree, as
// Revoke does, and also finishes a revocation that began and stopped (a
// failed lease hook, a crash), which LookupAccessor no longer shows. It
// returns ErrNotFound if there is neither a live token nor an unfinished
// revocation with that accessor.
func (s *Service) RevokeAccessor(ctx context.Context, accessor string) error {
	if !strings.HasPrefix(accessor, accessorPrefix) || len(accessor) > 64 {
		return ErrNotFound
	}
	if _, err := s.store.Get(ctx, revokingPrefix+accessor); err == nil {
		return s.revokeTree(ctx, accessor, "", 0)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	e, err := s.LookupAccessor(ctx, accessor)
	if err != nil {
		return err
	}
	return s.Revoke(ctx, e)
}

// revokeTree revokes the token with this accessor and its subtree; parent
// is the accessor whose child index listed it ("" for the top of the tree).
//
//  1. it marks the token as being revoked, in storage (the entry's Revoking
//     flag and the revokingPrefix index) and by dropping it from the cache:
//     from then on the token authenticates nothing and Create refuses it as
//     a parent, so no child can appear after the children are listed;
//  2. it revokes the children, then the leases (OnRevoke), and lists the
//     children again, repeating until there are none;
//  3. it deletes the token, its indexes and the mark.
//
// A crash or a failed hook leaves the mark: the token stays unusable and
// TidyExpired (or another Revoke) resumes at step 1.
func (s *Service) revokeTree(ctx context.Context, accessor, parent string, depth int) error {
	if depth > maxTreeDepth {
		return errors.New("token tree deeper than 64 levels")
	}
	if err := s.markRevoking(ctx, accessor); err != nil {
		return err
	}
	for {
		// Children first, so a failure leaves the parent (and the way to retry) in place.
		for {
			keys, err := s.store.List(ctx, childPrefix+accessor+"/", "", 100)
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				break
			}
			for _, k := range keys {
				child := strings.TrimPrefix(k, childPrefix+accessor+"/")
				if err := s.revokeTree(ctx, child, accessor, depth+1); err != nil {
					return err
				}
			}
		}
		s.mu.RLock()
		hook := s.onRevoke
		s.mu.RUnlock()
		if hook != nil {
			if err := hook(ctx, accessor); err != nil {
				return fmt.Errorf("revoke the token's leases: %w", err)
			}
		}
		// The mark keeps Create from adding children; check anyway, since a
		// child that survived its parent could never be revoked through it.
		keys, err := s.store.List(ctx, childPrefix+accessor+"/", "", 1)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			break
		}
	}
	var hash string
	if h, err := s.store.Get(ctx, byAccessPrefix+accessor); err == nil {
		s.drop(string(h)) // before the delete: no lookup may cache it from now on
	}
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Delete(revokingPrefix + accessor); err != nil {
			return err
		}
		if parent != "" {
			// Even if the entry is gone, so that the parent never lists it again.
			if err := tx.Delete(childPrefix + parent + "/" + accessor); err != nil {
				return err
			}
		}
		h, err := tx.Get(byAccessPrefix + accessor)
		if errors.Is(err, storage.ErrNotFound) {
			hash = ""
			return nil
		}
		if err != nil {
			return err
		}
		hash = string(h)
		raw, err := tx.Get(byHashPrefix + hash)
		if err == nil {
			if e, derr := decodeEntry(raw, hash); derr == nil {
				if e.ExpiresAt != nil {
					tx.Delete(expiryKey(e))
				}
				if e.Parent != "" {
					tx.Delete(childPrefix + e.Parent + "/" + accessor)
				}
			}
		}
		if err := tx.Delete(byHashPrefix + hash); err != nil {
			return err
		}
		return tx.Delete(byAccessPrefix + accessor)
	})
	if hash != "" {
		s.drop(hash)
	}
	return err
}

// markRevoking persists that the revocation of accessor has begun and drops
// the token from the cache. A missing token is left unmarked.
func (s *Service) markRevoking(ctx context.Context, accessor string) error {
	var hash string
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		hash = ""
		h, err := tx.Get(byAccessPrefix + accessor)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		raw, err := tx.Get(byHashPrefix + string(h))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		e, err := decodeEntry(raw, string(h))
		if err != nil {
			return err
		}
		hash = e.hash
		if err := tx.Put(revokingPrefix+accessor, nil); err != nil {
			return err
		}
		if e.Revoking {
			return nil
		}
		e.Revoking = true
		return putEntry(tx, e)
	})
	if hash != "" {
		s.drop(hash) // also counts a revocation: lookups reading storage must not cache the unmarked entry
	}
	if err != nil {
		return fmt.Errorf("mark token as being revoked: %w", err)
	}
	return nil
}

// Info is a token's entry as admins may list it: never the token.
type Info = Entry

// List returns live tokens' entries in accessor order, a page at a time.
func (s *Service) List(ctx context.Context, after string, limit int) ([]*Entry, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	start := ""
	if after != "" {
		start = byAccessPrefix + after
	}
	keys, err := s.store.List(ctx, byAccessPrefix, start, limit)
	if err != nil {
		return nil, "", err
	}
	var out []*Entry
	for _, k := range keys {
		e, err := s.LookupAccessor(ctx, strings.TrimPrefix(k, byAccessPrefix))
		if err != nil {
			continue // expired or revoked meanwhile
		}
		out = append(out, e)
	}
	next := ""
	if len(keys) == limit {
		next = strings.TrimPrefix(keys[len(keys)-1], byAccessPrefix)
	}
	return out, next, nil
}

// TidyExpired revokes expired tokens (with their subtrees) in batches,
// finishes revocations that were interrupted (by a crash or a failing
// OnRevoke hook), and returns how many tokens it removed.
func (s *Service) TidyExpired(ctx context.Context) (int, error) {
	n, err := s.tidyExpired(ctx)
	if err != nil {
		return n, err
	}
	m, err := s.finishRevocations(ctx)
	return n + m, err
}

// finishRevocations resumes every revocation that began and did not end.
func (s *Service) finishRevocations(ctx context.Context) (int, error) {
	n := 0
	for {
		keys, err := s.store.List(ctx, revokingPrefix, "", 256)
		if err != nil || len(keys) == 0 {
			return n, err
		}
		for _, k := range keys {
			if _, err := s.store.Get(ctx, k); errors.Is(err, storage.ErrNotFound) {
				continue // finished meanwhile, as part of a parent's subtree
			}
			// Deleting the mark is revokeTree's last step, so each pass
			// lists fewer keys, or returns an error.
			if err := s.revokeTree(ctx, strings.TrimPrefix(k, revokingPrefix), "", 0); err != nil {
				return n, err
			}
			n++
		}
	}
}

func (s *Service) tidyExpired(ctx context.Context) (int, error) {
	n := 0
	cutoff := fmt.Sprintf("%s%020d", expiryPrefix, s.now().Unix())
	for {
		keys, err := s.store.List(ctx, expiryPrefix, "", 256)
		if err != nil {
			return n, err
		}
		progressed := false
		for _, k := range keys {
			if k >= cutoff {
				return n, nil
			}
			acc := k[strings.LastIndexByte(k, '/')+1:]
			if err := s.revokeTree(ctx, acc, "", 0); err != nil {
				return n, err
			}
			// Renewed tokens left a stale index key behind; remove it either way.
			if err := s.store.Update(ctx, func(tx storage.Tx) error { return tx.Delete(k) }); err != nil {
				return n, err
			}
			n++
			progressed = true
		}
		if !progressed {
			return n, nil
		}
	}
}
