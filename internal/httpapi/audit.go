package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/core"
)

// maxUserAgent bounds the user agent kept in a record.
const maxUserAgent = 256

// record makes the request's audit record durable. It returns a non-nil
// error only when the record could not be kept, and then the request must
// be refused.
func (a *API) record(rt route, r *request, status int, err error, elapsed time.Duration) error {
	if !a.core.AuditEnabled() || errors.Is(err, core.ErrAuditUnavailable) {
		return nil
	}
	rec := &audit.Record{
		Type: audit.TypeRequest, RequestID: r.id, Op: rt.op.Name, Path: rt.policyPath(r),
		Version: r.version, Stage: r.stage, Source: sourceAddr(r.Request).String(),
		Status: status, LatencyUS: elapsed.Microseconds(),
	}
	if ua := r.UserAgent(); len(ua) > maxUserAgent {
		rec.UserAgent = ua[:maxUserAgent]
	} else {
		rec.UserAgent = ua
	}
	if p := r.principal; p != nil {
		rec.Identity = &audit.Identity{Name: p.Name, ID: p.IdentityID, Method: p.Method, Accessor: p.Accessor,
			Policies: p.Policies, BreakGlass: p.BreakGlass, MFA: p.MFA}
	}
	switch {
	case errors.Is(err, auth.ErrUnauthenticated) && status == http.StatusUnauthorized:
		rec.Decision = "unauthenticated"
	case errors.Is(err, auth.ErrForbidden):
		rec.Decision = "deny"
	case rt.access == authenticated && r.principal != nil:
		rec.Decision = "allow"
	}
	if d := r.decision; d != nil {
		rec.Policy, rec.Rule, rec.Reason = d.Policy, d.Rule, d.Reason
	}
	if err != nil {
		_, code, _ := mapError(err)
		rec.Error = code
	}
	for field, v := range r.hmacs {
		h, herr := a.core.AuditHMAC(v)
		if herr != nil {
			continue
		}
		if rec.HMACs == nil {
			rec.HMACs = map[string]string{}
		}
		rec.HMACs[field] = h
	}
	return a.core.Audit(r.ctx, rec)
}
