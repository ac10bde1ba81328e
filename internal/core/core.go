// Package core ties the storage backend, the barrier, the seal and the
// domain services into one server state machine: uninitialized, sealed,
// unsealed. Wire adapters call into the services it exposes; nothing here
// knows about HTTP.
package core

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/approle"
	"github.com/coffer-dev/coffer/internal/auth/awskey"
	"github.com/coffer-dev/coffer/internal/auth/cert"
	"github.com/coffer-dev/coffer/internal/auth/jwt"
	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/auth/userpass"
	"github.com/coffer-dev/coffer/internal/authz"
	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/dbcred"
	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/exposure"
	"github.com/coffer-dev/coffer/internal/lease"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/seal"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage"
)

// ErrSealed is returned while the server is sealed.
var ErrSealed = barrier.ErrSealed

// Config configures a Core.
type Config struct {
	Backend storage.Backend
	// KeyFile selects the key-file seal when not empty.
	KeyFile string
	Logger  *slog.Logger
	Now     func() time.Time
	// Argon2 tunes userpass password hashing; zero values are the defaults.
	Argon2 userpass.Argon2Params
	// Audit configures the local audit log; an empty Dir disables it.
	Audit AuditConfig
	// RateLimits are token-bucket rules per path prefix; none: unlimited.
	RateLimits []ratelimit.Rule
	// Rotation configures the rotators (which webhook hosts are allowed).
	Rotation RotationConfig
}

// Core is the server state. Its methods are safe for concurrent use.
type Core struct {
	backend storage.Backend
	barrier *barrier.Barrier
	seal    *seal.Manager
	log     *slog.Logger

	// Limits is nil when no rate limit is configured (its methods allow all then).
	Limits *ratelimit.Limiter

	// Events carries secret lifecycle events to subscribers.
	Events *events.Bus

	Tokens   *token.Service
	Secrets  *secret.Service
	Policies *authz.Service
	JWT      *jwt.Service
	Cert     *cert.Service
	AppRole  *approle.Service
	AWSKeys  *awskey.Service
	UserPass *userpass.Service
	// Exposures holds reports of leaked secret values (M6).
	Exposures *exposure.Service
	// Leases tracks dynamic credentials' leases; DB issues database users under them.
	Leases *lease.Manager
	DB     *dbcred.Service
	// Rotation rotates secrets on schedules and on demand (rotation.go).
	Rotation *rotation.Engine

	auditCfg AuditConfig
	audit    atomic.Pointer[auditState]  // nil while sealed or disabled
	cursor   atomic.Pointer[cipher.AEAD] // seals list cursors; nil until first used, and while sealed

	rootMu           sync.Mutex   // guards rootAttempt and serializes generate-root
	rootAttempt      *rootAttempt // nil: no generate-root attempt in progress
	rootQuorum       *seal.Quorum // unseal keys presented toward generate-root
	breakGlassIssued atomic.Int64

	stateMu sync.Mutex // serializes init, unseal and seal transitions

	cluster follower // other nodes' changes and the cluster view (cluster.go)
}

// New builds a sealed Core over cfg.Backend.
func New(cfg Config) *Core {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := barrier.New(cfg.Backend, cfg.Now)
	sm := seal.New(cfg.Backend, b, cfg.KeyFile)
	limits, err := ratelimit.New(cfg.RateLimits, cfg.Now)
	if err != nil {
		cfg.Logger.Error("rate limits ignored", "error", err) // the config parser validated them already
	}
	bus := events.New(cfg.Now)
	bus.StartAt(uint64(time.Now().UnixMicro())) // event ids grow across restarts
	secrets := secret.New(b, cfg.Now)
	secrets.PublishTo(bus)
	leases := lease.New(b, lease.Config{Now: cfg.Now, Logger: cfg.Logger})
	tokens := token.New(b, cfg.Now)
	tokens.OnRevoke(leases.RevokeByToken) // revoking a token revokes its leases
	c := &Core{
		Events:     bus,
		rootQuorum: sm.NewQuorum(),
		auditCfg:   cfg.Audit,
		Limits:     limits,
		backend:    cfg.Backend,
		barrier:    b,
		seal:       sm,
		log:        cfg.Logger,
		Tokens:     tokens,
		Secrets:    secrets,
		Policies:   authz.New(b, cfg.Now),
		JWT:        jwt.New(b, jwt.Options{Now: cfg.Now, Logger: cfg.Logger}),
		Cert:       cert.New(b, cfg.Now),
		AppRole:    approle.New(b, approle.Options{Now: cfg.Now}),
		AWSKeys:    awskey.New(b, cfg.Now),
		UserPass:   userpass.New(b, userpass.Options{Now: cfg.Now, Argon2: cfg.Argon2}),
		Exposures:  exposure.New(b, cfg.Now),
		Leases:     leases,
		DB:         dbcred.New(b, leases, dbcred.Options{Now: cfg.Now, Logger: cfg.Logger}),
	}
	c.Rotation = newRotation(cfg, b, secrets, bus, c.Audit)
	return c
}

// SealStatus describes the seal.
type SealStatus struct {
	Type        string `json:"type"`
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Shares      int    `json:"shares,omitempty"`
	Threshold   int    `json:"threshold,omitempty"`
	Progress    int    `json:"progress"`
}

// Status returns the seal status; it works while sealed.
func (c *Core) Status(ctx context.Context) (SealStatus, error) {
	st := SealStatus{Type: c.seal.Type(), Sealed: c.barrier.Sealed(), Progress: c.seal.Progress()}
	cfg, err := c.seal.Config(ctx)
	switch {
	case errors.Is(err, seal.ErrNotInitialized):
		return st, nil
	case err != nil:
		return st, err
	}
	st.Initialized, st.Shares, st.Threshold = true, cfg.Shares, cfg.Threshold
	return st, nil
}

// InitResult is shown once to whoever initializes the server.
type InitResult struct {
	Keys      []string `json:"keys,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
	RootToken string   `json:"root_token"`
}

// Init initializes the server and creates the root token. With the Shamir
// seal the server is left sealed; with the key-file seal, unsealed.
func (c *Core) Init(ctx context.Context, shares, threshold int) (*InitResult, error) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	keys, err := c.seal.Init(ctx, shares, threshold)
	if err != nil {
		return nil, err
	}
	if err := c.afterUnsealLocked(ctx); err != nil {
		return nil, err
	}
	tok, _, err := c.Tokens.Create(ctx, token.CreateInput{DisplayName: "root", Method: "root", Policies: []string{"root"}, NoExpiry: true})
	if err != nil {
		return nil, fmt.Errorf("create root token: %w", err)
	}
	res := &InitResult{Keys: keys, RootToken: tok}
	// Init answers before any adapter could audit it on a Shamir seal (the
	// server seals again below), so it records itself.
	if err := c.Audit(ctx, &audit.Record{Type: audit.TypeRequest, Op: "sys.init", Path: "sys/init", Decision: "allow", Status: 200,
		Reason: fmt.Sprintf("seal %s, %d shares, threshold %d", c.seal.Type(), shares, threshold)}); err != nil {
		c.log.Error("init could not be audited", "error", err)
	}
	if c.seal.Type() == seal.TypeShamir {
		res.Threshold = threshold
		c.sealLocked()
	}
	c.log.Info("initialized", "seal", c.seal.Type(), "shares", shares, "threshold", threshold)
	return res, nil
}

// Unseal presents one unseal key and returns the new status.
func (c *Core) Unseal(ctx context.Context, key string) (SealStatus, error) {
	c.stateMu.Lock()
	if !c.barrier.Sealed() {
		// Already unsealed: a key changes nothing (and must not re-run the
		// unseal steps, which would reopen the audit log).
		c.stateMu.Unlock()
		return c.Status(ctx)
	}
	done, err := c.seal.Unseal(ctx, key)
	if err == nil && done {
		err = c.afterUnsealLocked(ctx)
	}
	c.stateMu.Unlock()
	if err != nil {
		st, _ := c.Status(ctx)
		return st, err
	}
	return c.Status(ctx)
}

// ResetUnseal discards unseal keys presented so far.
func (c *Core) ResetUnseal() { c.seal.ResetProgress() }

// AutoUnseal unseals from the key file when one is configured.
func (c *Core) AutoUnseal(ctx context.Context) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if err := c.seal.AutoUnseal(ctx); err != nil {
		return err
	}
	if c.barrier.Sealed() {
		return nil
	}
	return c.afterUnsealLocked(ctx)
}

func (c *Core) afterUnsealLocked(ctx context.Context) error {
	if err := c.Tokens.Load(ctx); err != nil {
		c.sealLocked()
		return err
	}
	if err := c.Policies.Load(ctx); err != nil {
		c.sealLocked()
		return err
	}
	if err := c.openAuditLocked(ctx); err != nil {
		c.sealLocked()
		return err
	}
	c.log.Info("unsealed")
	return nil
}

// Seal seals the server: every key leaves memory.
func (c *Core) Seal() {
	c.SealBy(context.Background(), nil)
}

// SealBy seals the server on behalf of p (nil for the server itself, e.g.
// at shutdown). The seal is audited before the audit log closes.
func (c *Core) SealBy(ctx context.Context, p *auth.Principal) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if !c.barrier.Sealed() {
		rec := &audit.Record{Type: audit.TypeRequest, Op: "sys.seal", Path: "sys/seal", Decision: "allow", Status: 200}
		if p != nil {
			rec.Identity = &audit.Identity{Name: p.Name, ID: p.IdentityID, Method: p.Method, Accessor: p.Accessor, Policies: p.Policies, BreakGlass: p.BreakGlass}
		} else {
			rec.Reason = "server shutdown"
		}
		if err := c.Audit(ctx, rec); err != nil {
			c.log.Error("the seal could not be audited; sealing anyway", "error", err)
		}
	}
	c.sealLocked()
	c.log.Info("sealed")
}

func (c *Core) sealLocked() {
	c.GenerateRootReset() // a generate-root attempt does not survive a seal
	c.DB.Reset()          // closes database pools: no admin password stays in memory
	c.Secrets.Invalidate()
	c.closeAuditLocked()
	c.Tokens.Reset()
	c.Policies.Reset()
	c.cursor.Store(nil)
	c.seal.Seal()
}

// Sealed reports whether the barrier is sealed.
func (c *Core) Sealed() bool { return c.barrier.Sealed() }

// Authenticate resolves a token to its principal.
func (c *Core) Authenticate(ctx context.Context, tok string) (*auth.Principal, error) {
	if c.barrier.Sealed() {
		return nil, ErrSealed
	}
	e, err := c.Tokens.Use(ctx, tok)
	if err != nil {
		return nil, err
	}
	return e.Principal(), nil
}

// RotateKey adds a keyring term; RewrapKeys moves old records onto it.
func (c *Core) RotateKey(ctx context.Context) (uint32, error) {
	c.stateMu.Lock() // a seal must not land between reading and storing the keyring
	defer c.stateMu.Unlock()
	return c.barrier.Rotate(ctx)
}

// RewrapKeys re-encrypts records on older keyring terms.
func (c *Core) RewrapKeys(ctx context.Context) (int, error) {
	return c.barrier.Rewrap(ctx)
}

// KeyStatus describes the keyring.
func (c *Core) KeyStatus() (barrier.KeyStatus, error) { return c.barrier.Status() }

// HealthCheck reports whether storage answers.
func (c *Core) HealthCheck(ctx context.Context) error {
	_, err := c.backend.Get(ctx, seal.ConfigPath)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}
