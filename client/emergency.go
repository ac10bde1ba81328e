package client

import (
	"context"
	"time"
)

// BreakGlassRecord describes an emergency token, kept for review.
type BreakGlassRecord struct {
	Accessor      string    `json:"accessor"`
	IssuedBy      string    `json:"issued_by"`
	IssuerAccess  string    `json:"issued_by_accessor"`
	Justification string    `json:"justification"`
	Policies      []string  `json:"policies"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// BreakGlass issues an emergency token with a hard TTL (at most 1h).
func (c *Client) BreakGlass(ctx context.Context, justification string, policies []string, ttl string) (string, *BreakGlassRecord, error) {
	var out struct {
		Token  string           `json:"token"`
		Record BreakGlassRecord `json:"record"`
	}
	err := c.do(ctx, "POST", "/v1/sys/break-glass", nil, map[string]any{"justification": justification, "policies": policies, "ttl": ttl}, &out)
	return out.Token, &out.Record, err
}

// BreakGlassRecords lists every emergency token issued.
func (c *Client) BreakGlassRecords(ctx context.Context) ([]BreakGlassRecord, error) {
	var out struct {
		Records []BreakGlassRecord `json:"records"`
	}
	return out.Records, c.do(ctx, "GET", "/v1/sys/break-glass", nil, nil, &out)
}

// GenerateRootStatus is the answer to one generate-root key.
type GenerateRootStatus struct {
	Progress  int    `json:"progress"`
	Threshold int    `json:"threshold"`
	Complete  bool   `json:"complete"`
	RootToken string `json:"root_token"`
}

// GenerateRoot presents one unseal key toward a new root token.
func (c *Client) GenerateRoot(ctx context.Context, key string) (*GenerateRootStatus, error) {
	var s GenerateRootStatus
	return &s, c.do(ctx, "POST", "/v1/sys/generate-root", nil, map[string]any{"key": key}, &s)
}

// GenerateRootReset discards the keys presented so far.
func (c *Client) GenerateRootReset(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/sys/generate-root", nil, map[string]any{"reset": true}, nil)
}
