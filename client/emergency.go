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

// GenerateRootStatus is the state of a generate-root attempt.
type GenerateRootStatus struct {
	Started   bool   `json:"started"`
	Nonce     string `json:"nonce"`
	OTP       string `json:"otp,omitempty"` // only in the answer to GenerateRootInit
	Progress  int    `json:"progress"`
	Threshold int    `json:"threshold"`
	Complete  bool   `json:"complete"`
	// EncodedRootToken is the new root token XORed with the attempt's
	// one-time pad; `coffer operator generate-root --decode` reads it.
	EncodedRootToken string `json:"encoded_root_token,omitempty"`
}

// GenerateRootInit starts a generate-root attempt. The answer holds the
// nonce key holders present with their keys, and the one-time pad that
// alone decodes the new root token: keep it.
func (c *Client) GenerateRootInit(ctx context.Context) (*GenerateRootStatus, error) {
	var s GenerateRootStatus
	return &s, c.do(ctx, "POST", "/v1/sys/generate-root", nil, map[string]any{"init": true}, &s)
}

// GenerateRoot presents one unseal key toward the attempt with nonce.
func (c *Client) GenerateRoot(ctx context.Context, nonce, key string) (*GenerateRootStatus, error) {
	var s GenerateRootStatus
	return &s, c.do(ctx, "POST", "/v1/sys/generate-root", nil, map[string]any{"nonce": nonce, "key": key}, &s)
}

// GenerateRootProgress reports the attempt in progress, if any.
func (c *Client) GenerateRootProgress(ctx context.Context) (*GenerateRootStatus, error) {
	var s GenerateRootStatus
	return &s, c.do(ctx, "GET", "/v1/sys/generate-root", nil, nil, &s)
}

// GenerateRootReset discards the attempt and the keys presented so far.
func (c *Client) GenerateRootReset(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/sys/generate-root", nil, map[string]any{"reset": true}, nil)
}
