package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/token"
)

func (a *API) tokenRoutes() []route {
	accessorPath := func(r *request) string { return "auth/token/accessors/" + r.PathValue("accessor") }
	return []route{
		{"POST", "/v1/auth/token/create", Op{"token.create", capCustom}, authenticated, a.tokenCreate, nil},
		{"GET", "/v1/auth/token/self", Op{"token.lookup-self", capSelf}, authenticated, a.tokenSelf, nil},
		{"POST", "/v1/auth/token/renew-self", Op{"token.renew-self", capSelf}, authenticated, a.tokenRenewSelf, nil},
		{"POST", "/v1/auth/token/revoke-self", Op{"token.revoke-self", capSelf}, authenticated, a.tokenRevokeSelf, nil},
		{"GET", "/v1/auth/token/accessors", Op{"token.list", "list"}, authenticated, a.tokenList, fixed("auth/token/accessors")},
		{"GET", "/v1/auth/token/accessors/{accessor}", Op{"token.lookup", "read"}, authenticated, a.tokenLookupAccessor, accessorPath},
		{"POST", "/v1/auth/token/accessors/{accessor}/renew", Op{"token.renew", "update"}, authenticated, a.tokenRenewAccessor, accessorPath},
		{"DELETE", "/v1/auth/token/accessors/{accessor}", Op{"token.revoke", "delete"}, authenticated, a.tokenRevokeAccessor, accessorPath},
	}
}

// tokenInfo is the wire form of a token entry: never the token itself.
type tokenInfo struct {
	Accessor    string            `json:"accessor"`
	DisplayName string            `json:"display_name"`
	IdentityID  string            `json:"identity_id,omitempty"`
	Method      string            `json:"method"`
	Policies    []string          `json:"policies"`
	Meta        map[string]string `json:"meta,omitempty"`
	MFA         bool              `json:"mfa"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`
	MaxExpires  *time.Time        `json:"max_expires_at,omitempty"`
	Period      string            `json:"period,omitempty"`
	Renewable   bool              `json:"renewable"`
	NumUses     int               `json:"num_uses,omitempty"`
	Parent      string            `json:"parent,omitempty"`
	Orphan      bool              `json:"orphan"`
	BreakGlass  string            `json:"break_glass_justification,omitempty"`
}

func infoOf(e *token.Entry) tokenInfo {
	t := tokenInfo{Accessor: e.Accessor, DisplayName: e.DisplayName, IdentityID: e.IdentityID, Method: e.Method,
		Policies: e.Policies, Meta: e.Meta, MFA: e.MFA, CreatedAt: e.CreatedAt, ExpiresAt: e.ExpiresAt,
		MaxExpires: e.MaxExpires, Renewable: e.Renewable, NumUses: e.NumUses, Parent: e.Parent,
		Orphan: e.Parent == "", BreakGlass: e.BreakGlass}
	if e.Period > 0 {
		t.Period = e.Period.String()
	}
	return t
}

// self returns the caller's own entry. A token whose last use was this
// request is gone by now: that is an authentication failure, not a 500.
func (a *API) self(r *request) (*token.Entry, error) {
	e, err := a.core.Tokens.LookupAccessor(r.ctx, r.principal.Accessor)
	if errors.Is(err, token.ErrNotFound) {
		return nil, auth.ErrUnauthenticated
	}
	return e, err
}

// TokenCreateRequest is the body of POST /v1/auth/token/create.
type TokenCreateRequest struct {
	DisplayName string            `json:"display_name"`
	Policies    []string          `json:"policies"`
	Meta        map[string]string `json:"meta"`
	TTL         string            `json:"ttl"`
	MaxTTL      string            `json:"max_ttl"`
	Period      string            `json:"period"`
	Renewable   *bool             `json:"renewable"`
	NumUses     int               `json:"num_uses"`
	Orphan      bool              `json:"orphan"`
}

func parseDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, badRequest("%s must be a duration like 30m or 24h", field)
	}
	return d, nil
}

func (a *API) tokenCreate(r *request) (any, error) {
	var in TokenCreateRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	parent, err := a.self(r)
	if err != nil {
		return nil, err
	}
	if parent.NumUses > 0 {
		return nil, fmt.Errorf("%w: a token with a use limit cannot create tokens", auth.ErrForbidden)
	}
	if in.Policies == nil {
		in.Policies = slices.Clone(parent.Policies)
	}
	if err := auth.CheckDelegation(r.principal, in.Policies); err != nil {
		return nil, err
	}
	if in.Orphan {
		if err := a.authorize(r, "token.create-orphan", "auth/token/create-orphan", "update"); err != nil {
			return nil, err
		}
	}
	ci := token.CreateInput{DisplayName: in.DisplayName, IdentityID: parent.IdentityID, Method: "token",
		Policies: in.Policies, Meta: in.Meta, Renewable: true, NumUses: in.NumUses, Parent: parent, Orphan: in.Orphan}
	if ci.DisplayName == "" {
		ci.DisplayName = parent.DisplayName
	}
	if in.Renewable != nil {
		ci.Renewable = *in.Renewable
	}
	if ci.TTL, err = parseDuration("ttl", in.TTL); err != nil {
		return nil, err
	}
	if ci.MaxTTL, err = parseDuration("max_ttl", in.MaxTTL); err != nil {
		return nil, err
	}
	if ci.Period, err = parseDuration("period", in.Period); err != nil {
		return nil, err
	}
	tok, e, err := a.core.Tokens.Create(r.ctx, ci)
	if err != nil {
		return nil, err
	}
	r.status = http.StatusCreated
	return map[string]any{"token": tok, "info": infoOf(e)}, nil
}

func (a *API) tokenSelf(r *request) (any, error) {
	e, err := a.self(r)
	if err != nil {
		return nil, err
	}
	return infoOf(e), nil
}

func (a *API) renew(r *request, e *token.Entry) (any, error) {
	var in struct {
		Increment string `json:"increment"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return nil, err
		}
	}
	inc, err := parseDuration("increment", in.Increment)
	if err != nil {
		return nil, err
	}
	e, err = a.core.Tokens.Renew(r.ctx, e, inc)
	if errors.Is(err, token.ErrNotRenewable) {
		return nil, badRequest("token is not renewable")
	}
	if err != nil {
		return nil, err
	}
	return infoOf(e), nil
}

func (a *API) tokenRenewSelf(r *request) (any, error) {
	e, err := a.self(r)
	if err != nil {
		return nil, err
	}
	return a.renew(r, e)
}

func (a *API) tokenRevokeSelf(r *request) (any, error) {
	e, err := a.self(r)
	if err != nil {
		return nil, err
	}
	return nil, a.core.Tokens.Revoke(r.ctx, e)
}

func (a *API) byAccessor(r *request) (*token.Entry, error) {
	e, err := a.core.Tokens.LookupAccessor(r.ctx, r.PathValue("accessor"))
	if errors.Is(err, token.ErrNotFound) {
		return nil, &apiError{http.StatusNotFound, "not_found", "no live token has that accessor"}
	}
	return e, err
}

func (a *API) tokenLookupAccessor(r *request) (any, error) {
	e, err := a.byAccessor(r)
	if err != nil {
		return nil, err
	}
	return infoOf(e), nil
}

func (a *API) tokenRenewAccessor(r *request) (any, error) {
	e, err := a.byAccessor(r)
	if err != nil {
		return nil, err
	}
	return a.renew(r, e)
}

func (a *API) tokenRevokeAccessor(r *request) (any, error) {
	// Also finishes a revocation that stopped half way (its token is no
	// longer live, so byAccessor would not find it).
	err := a.core.Tokens.RevokeAccessor(r.ctx, r.PathValue("accessor"))
	if errors.Is(err, token.ErrNotFound) {
		return nil, &apiError{http.StatusNotFound, "not_found", "no live token has that accessor"}
	}
	return nil, err
}

func (a *API) tokenList(r *request) (any, error) {
	q := r.URL.Query()
	entries, next, err := a.core.Tokens.List(r.ctx, q.Get("after"), 0)
	if err != nil {
		return nil, err
	}
	out := make([]tokenInfo, len(entries))
	for i, e := range entries {
		out[i] = infoOf(e)
	}
	return map[string]any{"tokens": out, "next": next}, nil
}
