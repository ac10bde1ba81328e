package client

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Lease describes a lease: what a dynamic credential's lifetime hangs on.
type Lease struct {
	LeaseID      string           `json:"lease_id"`
	Kind         string           `json:"kind"`
	IssuedAt     time.Time        `json:"issued_at"`
	ExpiresAt    time.Time        `json:"expires_at"`
	MaxExpiresAt time.Time        `json:"max_expires_at"`
	TTL          int64            `json:"ttl"` // seconds left
	Renewable    bool             `json:"renewable"`
	RenewedAt    *time.Time       `json:"last_renewal,omitempty"`
	Revocation   *LeaseRevocation `json:"revocation,omitempty"`
	// Capped is set by RenewLease when the increment would have run past
	// MaxExpiresAt: the lease expires then, sooner than asked. Warnings
	// explains it.
	Capped   bool     `json:"capped,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// LeaseRevocation is the state of a lease whose revocation was asked for
// or failed: it is retried with backoff until it succeeds.
type LeaseRevocation struct {
	RequestedAt time.Time `json:"requested_at"`
	Reason      string    `json:"reason"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
}

// LeaseRevoked answers RevokeLease. Status is "revoked", or "pending" when
// the revocation failed for now and will be retried.
type LeaseRevoked struct {
	LeaseID     string     `json:"lease_id"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// LeaseCount answers RevokeLeasePrefix.
type LeaseCount struct {
	Revoked int `json:"revoked"`
	Pending int `json:"pending"`
}

// escapeID escapes each segment of a lease id or prefix, keeping the slashes.
func escapeID(id string) string {
	segs := strings.Split(id, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// LookupLease returns a lease.
func (c *Client) LookupLease(ctx context.Context, id string) (*Lease, error) {
	var out Lease
	return &out, c.do(ctx, "GET", "/v1/sys/leases/lookup/"+escapeID(id), nil, nil, &out)
}

// RenewLease extends a lease by increment ("" for its TTL), never past its
// maximum; the answer's Capped says when it was cut back to the maximum.
func (c *Client) RenewLease(ctx context.Context, id, increment string) (*Lease, error) {
	var out Lease
	return &out, c.do(ctx, "POST", "/v1/sys/leases/renew/"+escapeID(id), nil, renewBody(increment), &out)
}

// RevokeLease revokes a lease now.
func (c *Client) RevokeLease(ctx context.Context, id string) (*LeaseRevoked, error) {
	var out LeaseRevoked
	return &out, c.do(ctx, "POST", "/v1/sys/leases/revoke/"+escapeID(id), nil, map[string]any{}, &out)
}

// RevokeLeasePrefix revokes every lease whose id starts with prefix, which
// must end with "/" (e.g. db/creds/ROLE/).
func (c *Client) RevokeLeasePrefix(ctx context.Context, prefix string) (*LeaseCount, error) {
	var out LeaseCount
	return &out, c.do(ctx, "POST", "/v1/sys/leases/revoke-prefix/"+escapeID(prefix), nil, map[string]any{}, &out)
}

// ListLeases returns lease ids under prefix ("" or ending with "/") a page at a time; pass the
// returned next as after for the following page ("" at the end).
func (c *Client) ListLeases(ctx context.Context, prefix, after string, limit int) (ids []string, next string, err error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/sys/leases/list"
	if prefix != "" {
		path += "/" + escapeID(prefix)
	}
	var out struct {
		IDs  []string `json:"lease_ids"`
		Next string   `json:"next"`
	}
	err = c.do(ctx, "GET", path, q, nil, &out)
	return out.IDs, out.Next, err
}
