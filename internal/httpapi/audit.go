package httpapi

import (
	"time"

	"github.com/coffer-dev/coffer/internal/core"
)

// record makes the request's audit record durable. It returns a non-nil
// error only when the record could not be kept, and then the request must
// be refused.
func (a *API) record(rt route, r *request, status int, err error, elapsed time.Duration) error {
	if r.audited && err == nil {
		return nil
	}
	in := core.RequestRecord{
		ID: r.id, Op: rt.op.Name, Path: rt.policyPath(r), Version: r.version, Stage: r.stage,
		// A public route that authenticated its caller anyway (a metrics
		// scrape with a token) is recorded as an authorized request.
		Principal: r.principal, Public: rt.access == public && r.principal == nil, Source: sourceAddr(r.Request), UserAgent: r.UserAgent(),
		Status: status, Err: err, Decision: r.decision, Sensitive: r.hmacs, Elapsed: elapsed,
	}
	if err != nil {
		_, in.ErrCode, _ = mapError(err)
	}
	return a.core.RecordRequest(r.ctx, in)
}
