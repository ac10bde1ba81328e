package client

import (
	"context"
	"net/url"
	"time"
)

// TokenInfo describes a token, never the token itself.
type TokenInfo struct {
	Accessor    string            `json:"accessor"`
	DisplayName string            `json:"display_name"`
	IdentityID  string            `json:"identity_id"`
	Method      string            `json:"method"`
	Policies    []string          `json:"policies"`
	Meta        map[string]string `json:"meta"`
	MFA         bool              `json:"mfa"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   *time.Time        `json:"expires_at"`
	MaxExpires  *time.Time        `json:"max_expires_at"`
	Period      string            `json:"period"`
	Renewable   bool              `json:"renewable"`
	NumUses     int               `json:"num_uses"`
	Parent      string            `json:"parent"`
	Orphan      bool              `json:"orphan"`
	BreakGlass  string            `json:"break_glass_justification"`
}

// TokenSelf looks up the client's own token.
func (c *Client) TokenSelf(ctx context.Context) (*TokenInfo, error) {
	var t TokenInfo
	return &t, c.do(ctx, "GET", "/v1/auth/token/self", nil, nil, &t)
}

// TokenCreateInput describes a child token. Durations use Go syntax ("30m", "24h").
type TokenCreateInput struct {
	DisplayName string            `json:"display_name,omitempty"`
	Policies    []string          `json:"policies,omitempty"` // default: the creator's
	Meta        map[string]string `json:"meta,omitempty"`
	TTL         string            `json:"ttl,omitempty"`
	MaxTTL      string            `json:"max_ttl,omitempty"`
	Period      string            `json:"period,omitempty"`
	Renewable   *bool             `json:"renewable,omitempty"`
	NumUses     int               `json:"num_uses,omitempty"`
	Orphan      bool              `json:"orphan,omitempty"`
}

// NewToken is a created token: Token is shown only now.
type NewToken struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

// CreateToken creates a child of the client's token (or an orphan).
func (c *Client) CreateToken(ctx context.Context, in TokenCreateInput) (*NewToken, error) {
	var t NewToken
	return &t, c.do(ctx, "POST", "/v1/auth/token/create", nil, in, &t)
}

func renewBody(increment string) map[string]string {
	if increment == "" {
		return map[string]string{}
	}
	return map[string]string{"increment": increment}
}

// RenewSelf renews the client's token by increment ("" for its TTL).
func (c *Client) RenewSelf(ctx context.Context, increment string) (*TokenInfo, error) {
	var t TokenInfo
	return &t, c.do(ctx, "POST", "/v1/auth/token/renew-self", nil, renewBody(increment), &t)
}

// RevokeSelf revokes the client's token and its children.
func (c *Client) RevokeSelf(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/auth/token/revoke-self", nil, struct{}{}, nil)
}

// LookupAccessor describes the token with that accessor.
func (c *Client) LookupAccessor(ctx context.Context, accessor string) (*TokenInfo, error) {
	var t TokenInfo
	return &t, c.do(ctx, "GET", "/v1/auth/token/accessors/"+url.PathEscape(accessor), nil, nil, &t)
}

// RenewAccessor renews the token with that accessor.
func (c *Client) RenewAccessor(ctx context.Context, accessor, increment string) (*TokenInfo, error) {
	var t TokenInfo
	return &t, c.do(ctx, "POST", "/v1/auth/token/accessors/"+url.PathEscape(accessor)+"/renew", nil, renewBody(increment), &t)
}

// RevokeAccessor revokes the token with that accessor and its children.
func (c *Client) RevokeAccessor(ctx context.Context, accessor string) error {
	return c.do(ctx, "DELETE", "/v1/auth/token/accessors/"+url.PathEscape(accessor), nil, nil, nil)
}

// ListTokens lists live tokens (accessors and metadata) a page at a time.
func (c *Client) ListTokens(ctx context.Context, after string) ([]TokenInfo, string, error) {
	var out struct {
		Tokens []TokenInfo `json:"tokens"`
		Next   string      `json:"next"`
	}
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	err := c.do(ctx, "GET", "/v1/auth/token/accessors", q, nil, &out)
	return out.Tokens, out.Next, err
}
