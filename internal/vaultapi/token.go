package vaultapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/approle"
	"github.com/coffer-dev/coffer/internal/auth/token"
)

// authBlock is Vault's "auth" object, returned by logins, token creation
// and renewal.
type authBlock struct {
	ClientToken    string            `json:"client_token"`
	Accessor       string            `json:"accessor"`
	Policies       []string          `json:"policies"`
	TokenPolicies  []string          `json:"token_policies"`
	Metadata       map[string]string `json:"metadata"`
	LeaseDuration  int64             `json:"lease_duration"`
	Renewable      bool              `json:"renewable"`
	EntityID       string            `json:"entity_id"`
	TokenType      string            `json:"token_type"`
	Orphan         bool              `json:"orphan"`
	MFARequirement any               `json:"mfa_requirement"`
	NumUses        int               `json:"num_uses"`
}

// ttlLeft is the token's remaining life in seconds; 0 for a token that never expires.
func ttlLeft(e *token.Entry) int64 {
	if e.ExpiresAt == nil {
		return 0
	}
	return max(1, seconds(time.Until(*e.ExpiresAt)))
}

func authOf(tok string, e *token.Entry) *authBlock {
	pols := nonNil(e.Policies)
	return &authBlock{
		ClientToken: tok, Accessor: e.Accessor, Policies: pols, TokenPolicies: pols, Metadata: e.Meta,
		LeaseDuration: ttlLeft(e), Renewable: e.Renewable, EntityID: e.IdentityID, TokenType: "service",
		Orphan: e.Parent == "", NumUses: e.NumUses,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// self returns the caller's own token entry.
func (a *API) self(r *request) (*token.Entry, error) {
	e, err := a.core.Tokens.LookupAccessor(r.ctx, r.principal.Accessor)
	if errors.Is(err, token.ErrNotFound) {
		return nil, auth.ErrUnauthenticated // revoked or expired since authentication
	}
	return e, err
}

// tokenPath is the Vault path a token would have been created through.
func tokenPath(e *token.Entry) string {
	switch e.Method {
	case "token":
		return "auth/token/create"
	case "root":
		return "auth/token/root"
	}
	return "auth/" + e.Method + "/login"
}

func (a *API) tokenLookupSelf(r *request) (*reply, error) {
	if r.Method == "POST" {
		var in struct{}
		if err := decode(r, &in, true); err != nil {
			return nil, err
		}
	}
	e, err := a.self(r)
	if err != nil {
		return nil, err
	}
	var expire any
	var explicitMax int64
	if e.ExpiresAt != nil {
		expire = timeString(*e.ExpiresAt)
	}
	if e.MaxExpires != nil {
		explicitMax = seconds(e.MaxExpires.Sub(e.CreatedAt))
	}
	creationTTL := e.TTL
	if e.Period > 0 {
		creationTTL = e.Period
	}
	data := map[string]any{
		"accessor": e.Accessor, "creation_time": e.CreatedAt.Unix(), "creation_ttl": seconds(creationTTL),
		"display_name": e.DisplayName, "entity_id": e.IdentityID, "expire_time": expire,
		"explicit_max_ttl": explicitMax, "id": r.token, "issue_time": timeString(e.CreatedAt),
		"meta": e.Meta, "num_uses": e.NumUses, "orphan": e.Parent == "", "path": tokenPath(e),
		"policies": nonNil(e.Policies), "renewable": e.Renewable, "ttl": ttlLeft(e), "type": "service",
	}
	if e.Period > 0 {
		data["period"] = seconds(e.Period)
	}
	return &reply{data: data}, nil
}

func (a *API) tokenRenewSelf(r *request) (*reply, error) {
	var in struct {
		Increment duration `json:"increment"`
	}
	if err := decode(r, &in, true); err != nil {
		return nil, err
	}
	e, err := a.self(r)
	if err != nil {
		return nil, err
	}
	if e, err = a.core.Tokens.Renew(r.ctx, e, in.Increment.d); err != nil {
		return nil, err
	}
	return &reply{auth: authOf(r.token, e)}, nil
}

// stringList is Vault's comma-string-slice: ["a", "b"] or "a,b".
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return &fieldError{"expected a list of strings"}
		}
		out := stringList{}
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		*l = out
		return nil
	}
	var out []string
	if err := json.Unmarshal(b, &out); err != nil {
		return &fieldError{"expected a list of strings"}
	}
	*l = out
	return nil
}

// tokenCreateRequest is the body of auth/token/create, with every field
// the official client sends.
type tokenCreateRequest struct {
	ID              string            `json:"id"`
	RoleName        string            `json:"role_name"`
	Policies        *stringList       `json:"policies"`
	Meta            map[string]string `json:"meta"`
	Lease           duration          `json:"lease"`
	TTL             duration          `json:"ttl"`
	ExplicitMaxTTL  duration          `json:"explicit_max_ttl"`
	Period          duration          `json:"period"`
	NoParent        bool              `json:"no_parent"`
	NoDefaultPolicy bool              `json:"no_default_policy"`
	DisplayName     string            `json:"display_name"`
	NumUses         flexInt           `json:"num_uses"`
	Renewable       *bool             `json:"renewable"`
	Type            string            `json:"type"`
	EntityAlias     string            `json:"entity_alias"`
}

// tokenCreate issues a child token (an orphan with no_parent or on
// create-orphan). As in the native API, a token may only grant policies it
// holds, unless it is root.
func (a *API) tokenCreate(r *request) (*reply, error) {
	orphanRoute := strings.HasSuffix(r.URL.Path, "/create-orphan")
	if orphanRoute {
		if err := a.authorizeOrphan(r); err != nil {
			return nil, err
		}
	}
	var in tokenCreateRequest
	if err := decode(r, &in, true); err != nil {
		return nil, err
	}
	switch {
	case in.ID != "":
		return nil, badRequest("id: Coffer generates every token; custom token ids are not supported")
	case in.RoleName != "":
		return nil, badRequest("role_name: token roles are not supported by Coffer")
	case in.Type != "" && in.Type != "service" && in.Type != "default":
		return nil, badRequest("type: Coffer issues service tokens only")
	case in.EntityAlias != "":
		return nil, badRequest("entity_alias is not supported by Coffer")
	}
	parent, err := a.self(r)
	if err != nil {
		return nil, err
	}
	// No policies (or an empty list, as in Vault) means the creator's.
	policies := slices.Clone(parent.Policies)
	if in.Policies != nil && len(*in.Policies) > 0 {
		policies = *in.Policies
	}
	if parent.NumUses > 0 {
		return nil, fmt.Errorf("%w: a token with a use limit cannot create tokens", auth.ErrForbidden)
	}
	if err := auth.CheckDelegation(r.principal, policies); err != nil {
		return nil, err
	}
	orphan := in.NoParent || orphanRoute
	if in.NoParent && !orphanRoute {
		if err := a.authorizeOrphan(r); err != nil {
			return nil, err
		}
	}
	ci := token.CreateInput{DisplayName: in.DisplayName, IdentityID: parent.IdentityID, Method: "token",
		Policies: policies, Meta: in.Meta, Renewable: true, NumUses: in.NumUses.n, Parent: parent, Orphan: orphan,
		TTL: in.TTL.d, MaxTTL: in.ExplicitMaxTTL.d, Period: in.Period.d}
	if ci.TTL == 0 {
		ci.TTL = in.Lease.d
	}
	if ci.DisplayName == "" {
		ci.DisplayName = parent.DisplayName
	}
	if in.Renewable != nil {
		ci.Renewable = *in.Renewable
	}
	tok, e, err := a.core.Tokens.Create(r.ctx, ci)
	if err != nil {
		return nil, err
	}
	return &reply{auth: authOf(tok, e)}, nil
}

// approleLogin runs after the pipeline checked the seal and the audit log
// and wrote the intent record (the route changes state).
func (a *API) approleLogin(r *request) (*reply, error) {
	var in struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}
	if err := decode(r, &in, false); err != nil {
		return nil, err
	}
	r.sensitive("role_id", in.RoleID)
	l, err := a.core.AppRole.Login(r.ctx, in.RoleID, in.SecretID, sourceAddr(r.Request))
	if errors.Is(err, approle.ErrInvalidCredentials) {
		return nil, badRequest("invalid role or secret ID") // Vault's answer, whichever part was wrong
	}
	if err != nil {
		return nil, err
	}
	tok, e, err := a.core.IssueLogin(r.ctx, l)
	if err != nil {
		return nil, err
	}
	r.principal = e.Principal() // the audit record names who logged in
	return &reply{auth: authOf(tok, e)}, nil
}

// authorizeOrphan asks for what the native API asks for an orphan token.
func (a *API) authorizeOrphan(r *request) error {
	return a.authorize(r, "vault.token.create-orphan", "auth/token/create-orphan", "update")
}
