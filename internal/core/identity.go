package core

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/events"
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

// GenerateRoot presents one unseal key (or, for the key-file seal, the
// root key) toward a new root token. It returns the token once the quorum is
// met, and the progress so far otherwise.
func (c *Core) GenerateRoot(ctx context.Context, key string) (string, int, error) {
	root, err := c.rootQuorum.Add(ctx, key)
	if err != nil {
		return "", c.rootQuorum.Progress(), err
	}
	if root == nil {
		return "", c.rootQuorum.Progress(), nil
	}
	if c.barrier.Sealed() {
		return "", 0, ErrSealed
	}
	tok, e, err := c.Tokens.Create(ctx, token.CreateInput{DisplayName: "root", Method: "root", Policies: []string{"root"}, NoExpiry: true})
	if err != nil {
		return "", 0, err
	}
	c.log.Warn("root token generated with a quorum of unseal keys", "accessor", e.Accessor)
	return tok, 0, nil
}

// GenerateRootReset discards keys presented toward a root token.
func (c *Core) GenerateRootReset() { c.rootQuorum.Reset() }

// GenerateRootProgress returns how many keys have been presented.
func (c *Core) GenerateRootProgress() int { return c.rootQuorum.Progress() }
