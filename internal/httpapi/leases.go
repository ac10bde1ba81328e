package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/lease"
)

// leaseRoutes declares the lease routes. A lease's policy path is
// sys/leases/ followed by its id. The token that obtained a lease may always
// look it up, renew and revoke it; others need a policy:
//
//	GET  /v1/sys/leases/lookup/{id...}         read on sys/leases/ID
//	POST /v1/sys/leases/renew/{id...}          update on sys/leases/ID; body {"increment": "1h"} optional
//	POST /v1/sys/leases/revoke/{id...}         delete on sys/leases/ID
//	POST /v1/sys/leases/revoke-prefix/{id...}  admin on sys/leases/PREFIX
//	GET  /v1/sys/leases/list/{id...}           list on sys/leases/PREFIX (?after=, ?limit=)
//	GET  /v1/sys/leases/list                   list on sys/leases
//
// A PREFIX must end with "/" (400 otherwise), so it covers whole id
// segments: a grant on sys/leases/db/creds/r/ never reaches the leases of
// role "reporting", as a literal prefix "db/creds/r" would.
func (a *API) leaseRoutes() []route {
	idPath := func(r *request) string { return "sys/leases/" + r.PathValue("id") }
	return []route{
		{"GET", "/v1/sys/leases/lookup/{id...}", Op{"lease.lookup", capCustom}, authenticated, a.leaseLookup, idPath},
		{"POST", "/v1/sys/leases/renew/{id...}", Op{"lease.renew", capCustom}, authenticated, a.leaseRenew, idPath},
		{"POST", "/v1/sys/leases/revoke/{id...}", Op{"lease.revoke", capCustom}, authenticated, a.leaseRevoke, idPath},
		{"POST", "/v1/sys/leases/revoke-prefix/{id...}", Op{"lease.revoke-prefix", "admin"}, authenticated, a.leaseRevokePrefix, idPath},
		{"GET", "/v1/sys/leases/list/{id...}", Op{"lease.list", "list"}, authenticated, a.leaseList, idPath},
		{"GET", "/v1/sys/leases/list", Op{"lease.list", "list"}, authenticated, a.leaseList, fixed("sys/leases")},
	}
}

// LeaseInfo is a lease as the API shows it (never what it grants).
type LeaseInfo struct {
	LeaseID      string            `json:"lease_id"`
	Kind         string            `json:"kind"`
	IssuedAt     time.Time         `json:"issued_at"`
	ExpiresAt    time.Time         `json:"expires_at"`
	MaxExpiresAt time.Time         `json:"max_expires_at"`
	TTL          int64             `json:"ttl"` // seconds left
	Renewable    bool              `json:"renewable"`
	RenewedAt    *time.Time        `json:"last_renewal,omitempty"`
	Revocation   *lease.Revocation `json:"revocation,omitempty"`
	// Capped (renew only) means the increment asked for would have run past
	// max_expires_at, so the lease expires then instead; Warnings says so.
	Capped   bool     `json:"capped,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func leaseInfo(l *lease.Lease, now time.Time) LeaseInfo {
	return LeaseInfo{LeaseID: l.ID, Kind: l.Kind, IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, MaxExpiresAt: l.MaxExpiresAt,
		TTL: max(0, int64(l.ExpiresAt.Sub(now).Seconds())), Renewable: l.Renewable && l.Revocation == nil,
		RenewedAt: l.RenewedAt, Revocation: l.Revocation}
}

// leaseAccess loads the lease named by the path and checks that the caller
// obtained it or holds capability on its policy path. A caller without
// either gets 403 whether or not the lease exists.
func (a *API) leaseAccess(r *request, op, capability string) (*lease.Lease, error) {
	id := r.PathValue("id")
	l, err := a.core.Leases.Lookup(r.ctx, id)
	if err != nil && !errors.Is(err, lease.ErrNotFound) && !errors.Is(err, lease.ErrBadID) {
		return nil, err
	}
	if l != nil && l.Accessor != "" && l.Accessor == r.principal.Accessor {
		return l, nil
	}
	if aerr := a.authorize(r, op, "sys/leases/"+id, capability); aerr != nil {
		return nil, aerr
	}
	return l, err
}

func (a *API) leaseLookup(r *request) (any, error) {
	l, err := a.leaseAccess(r, "lease.lookup", "read")
	if err != nil {
		return nil, err
	}
	return leaseInfo(l, time.Now()), nil
}

func (a *API) leaseRenew(r *request) (any, error) {
	var in struct {
		Increment auth.Duration `json:"increment,omitempty"` // 0: the lease's ttl
	}
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return nil, err
		}
	}
	if _, err := a.leaseAccess(r, "lease.renew", "update"); err != nil {
		return nil, err
	}
	rn, err := a.core.Leases.Renew(r.ctx, r.PathValue("id"), time.Duration(in.Increment))
	if err != nil {
		return nil, err
	}
	out := leaseInfo(rn.Lease, time.Now())
	if rn.Capped {
		out.Capped = true
		out.Warnings = []string{"the increment was capped: the lease cannot be renewed past its max_expires_at (" +
			rn.MaxExpiresAt.UTC().Format(time.RFC3339) + ")"}
	}
	return out, nil
}

// LeaseRevoked answers a revocation. Status "pending" (with HTTP 202)
// means the revoker failed: the revocation is recorded and retried with
// backoff until it succeeds.
type LeaseRevoked struct {
	LeaseID     string     `json:"lease_id"`
	Status      string     `json:"status"` // revoked or pending
	Attempts    int        `json:"attempts,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Error       string     `json:"error,omitempty"`
}

func (a *API) leaseRevoke(r *request) (any, error) {
	if _, err := a.leaseAccess(r, "lease.revoke", "delete"); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	err := a.core.Leases.Revoke(r.ctx, id)
	var pe *lease.PendingError
	switch {
	case errors.As(err, &pe):
		r.status = http.StatusAccepted
		var msg string
		if _, _, m, ok := dynamicError(pe.Err); ok {
			msg = m
		} else {
			msg = "the revoker failed; see the server log"
			a.log.Warn("lease revocation failed", "request_id", r.id, "lease_id", id, "error", pe.Err)
		}
		return LeaseRevoked{LeaseID: id, Status: "pending", Attempts: pe.Attempts, NextAttempt: &pe.NextAttempt, Error: msg}, nil
	case err != nil:
		return nil, err
	}
	return LeaseRevoked{LeaseID: id, Status: "revoked"}, nil
}

func (a *API) leaseRevokePrefix(r *request) (any, error) {
	res, err := a.core.Leases.RevokePrefix(r.ctx, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if res.Pending > 0 {
		r.status = http.StatusAccepted
	}
	return res, nil
}

func (a *API) leaseList(r *request) (any, error) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, badRequest("limit must be a number from 1 to 1000")
		}
		limit = n
	}
	if len(q.Get("after")) > 1024 {
		return nil, badRequest("after must be a lease id from a previous page (at most 1024 bytes)")
	}
	ids, next, err := a.core.Leases.List(r.ctx, r.PathValue("id"), q.Get("after"), limit)
	if err != nil {
		return nil, err
	}
	return map[string]any{"lease_ids": nonNil(ids), "next": next}, nil
}
