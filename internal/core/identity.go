package core

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/otp"
	"github.com/coffer-dev/coffer/internal/seal"
	"github.com/coffer-dev/coffer/internal/storage"
)

// IssueLogin turns a successful auth-method login into an orphan token
// carrying the method's token settings.
func (c *Core) IssueLogin(ctx context.Context, l *auth.Login) (string, *token.Entry, error) {
	return c.Tokens.Create(ctx, token.CreateInput{
		DisplayName: l.Method + "/" + strings.TrimPrefix(l.Name, l.Method+"/"),
		IdentityID:  l.IdentityID, Method: l.Method, Policies: l.Token.Policies, Meta: l.Meta, MFA: l.MFA,
		TTL: time.Duration(l.Token.TTL), MaxTTL: time.Duration(l.Token.MaxTTL), Period: time.Duration(l.Token.Period), NumUses: l.Token.NumUses,
		Renewable: true, Orphan: true,
	})
}

// Break-glass limits.
const (
	breakGlassPrefix     = "sys/break-glass/"
	BreakGlassMaxTTL     = time.Hour
	BreakGlassDefaultTTL = 15 * time.Minute
	minJustification     = 20
	maxJustification     = 2000
)

// BreakGlassRecord is kept for every emergency token, for review.
type BreakGlassRecord struct {
	Accessor      string    `json:"accessor"`
	IssuedBy      string    `json:"issued_by"`
	IssuerAccess  string    `json:"issued_by_accessor"`
	Justification string    `json:"justification"`
	Policies      []string  `json:"policies"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// BreakGlass issues an emergency token: orphan, not renewable, with a hard
// TTL of at most an hour, flagged in its entry, in the log and in a
// permanent review record. The caller authorizes the request.
func (c *Core) BreakGlass(ctx context.Context, by *auth.Principal, justification string, policies []string, ttl time.Duration) (string, *BreakGlassRecord, error) {
	justification = strings.TrimSpace(justification)
	if by.BreakGlass {
		return "", nil, fmt.Errorf("%w: a break-glass token cannot issue another", auth.ErrForbidden)
	}
	switch {
	case len(justification) < minJustification || len(justification) > maxJustification:
		return "", nil, &auth.InputError{Field: "justification", Msg: fmt.Sprintf("write %d to %d characters on why normal access is not enough", minJustification, maxJustification)}
	case len(policies) == 0:
		return "", nil, &auth.InputError{Field: "policies", Msg: "name the policies the emergency token needs"}
	case ttl < 0 || ttl > BreakGlassMaxTTL:
		return "", nil, &auth.InputError{Field: "ttl", Msg: "must be at most 1h"}
	}
	for _, p := range policies {
		if p == "root" {
			return "", nil, &auth.InputError{Field: "policies", Msg: "break-glass cannot grant root; use coffer operator generate-root"}
		}
	}
	if ttl == 0 {
		ttl = BreakGlassDefaultTTL
	}
	tok, e, err := c.Tokens.Create(ctx, token.CreateInput{
		DisplayName: "break-glass/" + by.Name, IdentityID: by.IdentityID, Method: "break-glass",
		Policies: policies, TTL: ttl, MaxTTL: ttl, Orphan: true, BreakGlass: justification,
	})
	if err != nil {
		return "", nil, err
	}
	rec := &BreakGlassRecord{Accessor: e.Accessor, IssuedBy: by.Name, IssuerAccess: by.Accessor, Justification: justification,
		Policies: policies, CreatedAt: e.CreatedAt, ExpiresAt: *e.ExpiresAt}
	raw, _ := json.Marshal(rec)
	err = c.barrier.Update(ctx, func(tx storage.Tx) error {
		return tx.Put(fmt.Sprintf("%s%020d-%s", breakGlassPrefix, e.CreatedAt.UnixNano(), e.Accessor), raw)
	})
	if err != nil {
		c.Tokens.Revoke(ctx, e)
		return "", nil, err
	}
	c.breakGlassIssued.Add(1)
	c.Events.Publish(events.Event{Type: events.BreakGlass, Name: "sys/break-glass", Stage: e.Accessor})
	c.log.Warn("BREAK-GLASS token issued", "accessor", e.Accessor, "issued_by", by.Name,
		"issuer_accessor", by.Accessor, "policies", policies, "expires_at", rec.ExpiresAt)
	return tok, rec, nil
}

// BreakGlassRecords lists emergency token records, oldest first.
func (c *Core) BreakGlassRecords(ctx context.Context) ([]*BreakGlassRecord, error) {
	keys, err := c.barrier.List(ctx, breakGlassPrefix, "", 10000)
	if err != nil {
		return nil, err
	}
	out := []*BreakGlassRecord{}
	for _, k := range keys {
		raw, err := c.barrier.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		var r BreakGlassRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	return out, nil
}

// BreakGlassIssued counts emergency tokens issued since start.
func (c *Core) BreakGlassIssued() int64 { return c.breakGlassIssued.Load() }

// Generate-root errors.
var (
	// ErrNoRootAttempt means keys were presented with no attempt started.
	ErrNoRootAttempt = errors.New("no generate-root attempt is in progress; start one with init (coffer operator generate-root --init)")
	// ErrRootAttemptInProgress means init was called while an attempt runs.
	ErrRootAttemptInProgress = errors.New("a generate-root attempt is already in progress; finish it, or reset it")
	// ErrRootNonce means a key was presented for another attempt.
	ErrRootNonce = errors.New("nonce does not match the generate-root attempt in progress")
)

// rootAttempt is a generate-root attempt in progress. Its one-time pad
// stays in memory only; the new root token leaves the server encoded with
// it, so only whoever started the attempt can read it.
type rootAttempt struct {
	nonce   string
	pad     string
	started time.Time
}

// GenerateRootStart begins a generate-root attempt and returns its nonce
// (key holders present it with their keys) and the one-time pad that
// decodes the token (shown only here).
func (c *Core) GenerateRootStart() (nonce, pad string, err error) {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	if a := c.rootAttempt; a != nil && time.Since(a.started) < seal.QuorumTimeout {
		return "", "", ErrRootAttemptInProgress
	}
	pad, err = otp.New()
	if err != nil {
		return "", "", err
	}
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		return "", "", err
	}
	c.rootQuorum.Reset()
	c.rootAttempt = &rootAttempt{nonce: hex.EncodeToString(n), pad: pad, started: time.Now()}
	c.log.Warn("generate-root attempt started")
	return c.rootAttempt.nonce, pad, nil
}

// GenerateRoot presents one unseal key (or, for the key-file seal, the
// root key) toward a new root token in the attempt named by nonce. Once the
// quorum is met it returns the token encoded with the attempt's one-time
// pad (see otp.Decode), and the progress so far otherwise.
func (c *Core) GenerateRoot(ctx context.Context, nonce, key string) (string, int, error) {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	a := c.rootAttempt
	if a == nil || time.Since(a.started) >= seal.QuorumTimeout {
		c.rootAttempt = nil
		c.rootQuorum.Reset()
		return "", 0, ErrNoRootAttempt
	}
	if subtle.ConstantTimeCompare([]byte(nonce), []byte(a.nonce)) != 1 {
		return "", c.rootQuorum.Progress(), ErrRootNonce
	}
	root, err := c.rootQuorum.Add(ctx, key)
	if err != nil {
		return "", c.rootQuorum.Progress(), err
	}
	if root == nil {
		return "", c.rootQuorum.Progress(), nil
	}
	c.rootAttempt = nil
	if c.barrier.Sealed() {
		return "", 0, ErrSealed
	}
	tok, e, err := c.Tokens.Create(ctx, token.CreateInput{DisplayName: "root", Method: "root", Policies: []string{"root"}, NoExpiry: true})
	if err != nil {
		return "", 0, err
	}
	encoded, err := otp.Encode(tok, a.pad)
	if err != nil {
		return "", 0, err
	}
	c.log.Warn("root token generated with a quorum of unseal keys", "accessor", e.Accessor)
	return encoded, 0, nil
}

// GenerateRootReset discards the attempt in progress and the keys presented.
func (c *Core) GenerateRootReset() {
	c.rootMu.Lock()
	c.rootAttempt = nil
	c.rootQuorum.Reset()
	c.rootMu.Unlock()
}

// GenerateRootStatus reports whether an attempt is in progress, its nonce
// (not secret: key holders need it) and how many keys were presented.
func (c *Core) GenerateRootStatus() (started bool, nonce string, progress int) {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	if a := c.rootAttempt; a != nil && time.Since(a.started) < seal.QuorumTimeout {
		return true, a.nonce, c.rootQuorum.Progress()
	}
	return false, "", 0
}
