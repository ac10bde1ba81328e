package httpapi

import (
	"errors"
	"slices"
	"strconv"

	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/exposure"
	"github.com/coffer-dev/coffer/internal/secret"
)

// exposureRoutes take reports that a secret's value leaked (M6). Policies
// grant them on sys/exposures/NAME, so a scanner's identity can report
// without being able to read the secret.
func (a *API) exposureRoutes() []route {
	sysPath := func(r *request) string { return "sys/exposures/" + r.PathValue("name") }
	return []route{
		{"POST", "/v1/exposures/{name...}", Op{"secret.report-exposure", "create"}, authenticated, a.reportExposure, sysPath},
		{"GET", "/v1/exposures/{name...}", Op{"secret.exposures", "read"}, authenticated, a.listExposures, sysPath},
		{"GET", "/v1/exposures", Op{"sys.exposures", "list"}, authenticated, a.listAllExposures, fixed("sys/exposures")},
	}
}

func (a *API) reportExposure(r *request) (any, error) {
	var in struct {
		Version  int    `json:"version"`
		Source   string `json:"source"`
		Location string `json:"location"`
		Note     string `json:"note"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	// A reporter (a leak scanner) may hold only create on the report: what
	// it learns of the secret itself is what read on it would show. (A
	// check without recording: the route's decision stays the record's.)
	mayRead := func() bool {
		_, err := a.authz.Decide(r.ctx, r.principal, Check{Op: "secret.describe", Path: name, Capability: "read", Source: sourceAddr(r.Request)})
		return err == nil
	}
	const vague = "version: no such secret or version (a reporter without read on the secret is told no more)"
	m, err := a.core.Secrets.Describe(r.ctx, name)
	if err != nil {
		if errors.Is(err, secret.ErrNotFound) && !mayRead() {
			return nil, badRequest(vague)
		}
		return nil, err
	}
	if in.Version != 0 && !slices.ContainsFunc(m.Versions, func(v secret.Version) bool { return v.Number == in.Version }) {
		if !mayRead() {
			return nil, badRequest(vague)
		}
		return nil, badRequest("version: %s has no version %d (latest is %d)", name, in.Version, m.LatestVersion)
	}
	rep, err := a.core.Exposures.Add(r.ctx, exposure.Report{Secret: name, Version: in.Version, Source: in.Source,
		Location: in.Location, Note: in.Note, ReportedBy: r.principal.Name})
	if err != nil {
		return nil, err
	}
	r.version = in.Version
	a.metrics.Exposures.WithLabelValues(rep.Source).Inc()
	a.core.Events.Publish(events.Event{Type: events.Exposed, Name: name, Version: in.Version, Stage: rep.Source})
	r.status = 201
	return rep, nil
}

func (a *API) listExposures(r *request) (any, error) {
	reps, err := a.core.Exposures.List(r.ctx, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"reports": reps}, nil
}

func (a *API) listAllExposures(r *request) (any, error) {
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, badRequest("limit must be a number from 1 to 1000")
		}
		limit = n
	}
	if len(q.Get("cursor")) > 2048 || len(q.Get("prefix")) > 1024 {
		return nil, badRequest("prefix or cursor is too long")
	}
	reps, next, err := a.core.Exposures.ListAll(r.ctx, q.Get("prefix"), q.Get("cursor"), limit)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"reports": reps}
	if next != "" {
		out["next_cursor"] = next
	}
	return out, nil
}
