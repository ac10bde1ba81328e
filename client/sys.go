package client

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// SealStatus is the server's seal state.
type SealStatus struct {
	Type        string `json:"type"`
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Shares      int    `json:"shares"`
	Threshold   int    `json:"threshold"`
	Progress    int    `json:"progress"`
}

// Health is the answer of /v1/sys/health.
type Health struct {
	Initialized bool      `json:"initialized"`
	Sealed      bool      `json:"sealed"`
	StorageOK   bool      `json:"storage_ok"`
	AuditOK     bool      `json:"audit_ok"` // the audit log can be written (true when audit is off)
	Time        time.Time `json:"time"`
	StatusCode  int       `json:"-"` // 200 active, 503 sealed or unhealthy, 501 not initialized
}

// Health reports the server's health; a sealed or uninitialized server is
// not an error here.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	// A 503 or 501 is the answer, not a failure to retry.
	err := c.send(ctx, call{method: "GET", path: "/v1/sys/health", out: &h, statusIsAnswer: true})
	var e *Error
	if errors.As(err, &e) && (e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusNotImplemented) {
		if h.Time.IsZero() {
			// No health body (an older server, or a proxy): say only what
			// the error tells; what it does not tell stays false.
			h = Health{Sealed: e.Code == "sealed"}
		}
		h.StatusCode = e.StatusCode
		return &h, nil
	}
	if err != nil {
		return nil, err
	}
	h.StatusCode = http.StatusOK
	return &h, nil
}

// SealStatus returns the seal state; it needs no token.
func (c *Client) SealStatus(ctx context.Context) (*SealStatus, error) {
	var s SealStatus
	return &s, c.do(ctx, "GET", "/v1/sys/seal-status", nil, nil, &s)
}

// InitResult holds the unseal keys and root token, shown once.
type InitResult struct {
	Keys      []string `json:"keys"`
	Threshold int      `json:"threshold"`
	RootToken string   `json:"root_token"`
}

// Init initializes a new server.
func (c *Client) Init(ctx context.Context, shares, threshold int) (*InitResult, error) {
	var r InitResult
	in := map[string]int{"shares": shares, "threshold": threshold}
	return &r, c.do(ctx, "POST", "/v1/sys/init", nil, in, &r)
}

// Unseal presents one unseal key.
func (c *Client) Unseal(ctx context.Context, key string) (*SealStatus, error) {
	var s SealStatus
	return &s, c.do(ctx, "POST", "/v1/sys/unseal", nil, map[string]any{"key": key}, &s)
}

// UnsealReset discards the unseal keys presented so far.
func (c *Client) UnsealReset(ctx context.Context) (*SealStatus, error) {
	var s SealStatus
	return &s, c.do(ctx, "POST", "/v1/sys/unseal", nil, map[string]any{"reset": true}, &s)
}

// Seal seals the server.
func (c *Client) Seal(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/sys/seal", nil, struct{}{}, nil)
}

// KeyStatus describes the barrier keyring.
type KeyStatus struct {
	Term      uint32    `json:"term"`
	Installed time.Time `json:"installed"`
	Terms     int       `json:"terms"`
}

// RotateKey adds a keyring term; old records are re-encrypted in the background.
func (c *Client) RotateKey(ctx context.Context) (*KeyStatus, error) {
	var k KeyStatus
	return &k, c.do(ctx, "POST", "/v1/sys/rotate-key", nil, struct{}{}, &k)
}

// KeyStatus returns the keyring status.
func (c *Client) KeyStatus(ctx context.Context) (*KeyStatus, error) {
	var k KeyStatus
	return &k, c.do(ctx, "GET", "/v1/sys/key-status", nil, nil, &k)
}
