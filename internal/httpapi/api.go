// Package httpapi is Coffer's native REST API under /v1. Every route is
// declared in one table and served through one pipeline: request id, seal
// check, authentication, authorization, then the handler; one function maps
// domain errors to statuses and the {"error": {...}} body.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/authz"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/metrics"
	"github.com/coffer-dev/coffer/internal/policy"
)

// MaxBodySize caps every request body.
const MaxBodySize = 1 << 20

// Authorizer decides whether a principal may perform an operation on a
// path. It returns the decision, and nil or an error wrapping auth.ErrForbidden.
type Authorizer interface {
	Decide(ctx context.Context, p *auth.Principal, c Check) (policy.Decision, error)
}

// Check is one authorization question.
type Check = auth.Check

// Op names an operation and the capability it needs.
type Op struct {
	Name string // stable name, e.g. "secret.read"; used in logs and audit
	// Capability is read, list, create, update, delete, destroy, rotate or
	// admin on the route's policy path; capSelf for operations any valid
	// token may do on itself; capCustom when the handler authorizes (for
	// example put, which needs create or update depending on existence).
	Capability string
}

const (
	capSelf   = "self"
	capCustom = "custom"
)

// access says who may call a route.
type access int

const (
	authenticated access = iota // token required, barrier unsealed
	public                      // no token; works sealed (health, seal status, init, unseal)
)

type route struct {
	method, pattern string
	op              Op
	access          access
	handle          func(*request) (any, error)
	path            func(*request) string // policy path; nil: the {name} wildcard
}

// monitoring reports whether rt is one of the routes that report the
// server's state to operators and orchestrators (health, liveness,
// readiness, metrics). Served without a token they change nothing and
// return no secret, and an audit outage is exactly what they must be able
// to report, so they answer even when their own audit record cannot be
// kept; the failed write is counted (coffer_audit_write_failures_total) and
// logged. A request that presented a token is never answered without its
// record: authenticating changes state (a limited-use token is used up)
// and its answer tells whether the token is valid.
func (rt route) monitoring() bool {
	switch rt.op.Name {
	case "sys.health", "sys.live", "sys.ready", "sys.metrics":
		return true
	}
	return false
}

type request struct {
	*http.Request
	ctx       context.Context
	id        string
	principal *auth.Principal // nil on public routes
	w         http.ResponseWriter
	status    int    // set by handlers that do not answer 200
	onDone    func() // run once the answer is written (or refused)

	// For the audit record, set along the way.
	decision *policy.Decision // the last authorization decision
	version  int              // the secret version read or written
	stage    string
	hmacs    core.Sensitive // sensitive fields, to be HMACed
	audited  bool           // the operation wrote its own audit record (seal)
}

// sensitive records a field whose value the audit record holds only as an HMAC.
func (r *request) sensitive(field, value string) { r.hmacs.Add(field, value) }

// Config configures the API.
type Config struct {
	Core       *core.Core
	Authorizer Authorizer // nil: the core's policies
	Logger     *slog.Logger
	// OnKeyRotated is called after a keyring rotation so the server can
	// start re-encrypting old records.
	OnKeyRotated func()
	// Metrics receives request counters; nil makes a private set.
	Metrics *metrics.Metrics
	// MetricsAccess decides who may scrape metrics; the zero value needs a token.
	MetricsAccess MetricsAccess
}

// API serves /v1.
type API struct {
	core    *core.Core
	cfg     Config
	metrics *metrics.Metrics
	authz   Authorizer
	log     *slog.Logger
	mux     *http.ServeMux
	badPath http.Handler // answers paths with empty, . or .. segments
	routes  []route

	streamsMu  sync.Mutex     // guards streams and streamsAll
	streams    map[string]int // open event streams by limit key
	streamsAll int
}

// New builds the API and registers every route.
func New(cfg Config) *API {
	a := &API{core: cfg.Core, cfg: cfg, authz: cfg.Authorizer, log: cfg.Logger, mux: http.NewServeMux()}
	if a.authz == nil {
		a.authz = cfg.Core.Policies
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.cfg.Metrics == nil {
		a.cfg.Metrics = metrics.New()
	}
	a.metrics = a.cfg.Metrics
	a.routes = a.table()
	for _, rt := range a.routes {
		a.mux.Handle(rt.method+" "+rt.pattern, a.wrap(rt))
	}
	// A path no route serves, and a path with empty, "." or ".." segments,
	// are answered through the same pipeline, so that probing is on record.
	a.mux.Handle("/", a.wrap(route{"", "/", Op{opNoRoute, ""}, public,
		func(*request) (any, error) { return nil, errNoRoute }, requestPath}))
	a.badPath = a.wrap(route{"", "", Op{opBadPath, ""}, public,
		func(*request) (any, error) {
			return nil, badRequest("name: path must not contain empty, . or .. segments")
		}, requestPath})
	return a
}

// Operation names of the two pseudo-routes above.
const (
	opNoRoute = "unknown.route"
	opBadPath = "bad.path"
)

// requestPath is the policy path of the routes above: the URL path as sent.
func requestPath(r *request) string { return r.URL.Path }

// ServeHTTP implements http.Handler. Paths with empty, "." or ".."
// segments are refused rather than cleaned and redirected, so that what a
// policy sees is exactly what the caller sent.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		a.badPath.ServeHTTP(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// Routes lists the registered routes as "METHOD pattern" with their access,
// for tests that walk every route.
func (a *API) Routes() []RouteInfo {
	out := make([]RouteInfo, len(a.routes))
	for i, rt := range a.routes {
		out[i] = RouteInfo{Method: rt.method, Pattern: rt.pattern, Public: rt.access == public, Op: rt.op.Name}
	}
	return out
}

// RouteInfo describes a registered route.
type RouteInfo struct {
	Method, Pattern, Op string
	Public              bool
}

// wrap is the request pipeline every route goes through: request id,
// body cap, seal check, authentication, authorization, the handler, then
// the audit record, made durable before the answer is written (audit fails
// closed), then metrics.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		h := w.Header()
		h.Set("X-Request-Id", id)
		h["Cache-Control"] = noStore // shared, never modified: saves an allocation per request
		r.Body = http.MaxBytesReader(w, r.Body, bodyLimit(rt.op.Name))
		req := &request{Request: r, ctx: r.Context(), id: id, w: w}
		defer func() {
			if req.onDone != nil {
				req.onDone()
			}
		}()
		resp, err := a.serve(rt, req)
		status := resp.status
		if err != nil {
			status, _, _ = mapError(err)
		}
		if aerr := a.record(rt, req, status, err, time.Since(start)); aerr != nil {
			if rt.monitoring() && req.principal == nil {
				a.log.Warn("audit record failed; answering anyway, since this route reports the outage", "request_id", id, "op", rt.op.Name, "error", aerr)
			} else {
				a.log.Error("audit record failed; refusing the request", "request_id", id, "op", rt.op.Name, "error", aerr)
				if err == nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
					// The change was made (its intent is on record): the
					// answer must not invite a blind retry.
					aerr = &outcomeUnrecorded{aerr}
				}
				err, resp = aerr, response{}
			}
		}
		if err != nil {
			status = writeError(w, err, id)
			if status >= 500 && !errors.Is(err, core.ErrAuditUnavailable) {
				a.log.Error("request failed", "request_id", id, "op", rt.op.Name, "error", err)
			}
		} else {
			status = resp.write(w)
		}
		elapsed := time.Since(start)
		a.metrics.Requests.WithLabelValues(rt.op.Name, metrics.CodeClass(status)).Inc()
		a.metrics.RequestDuration.WithLabelValues(rt.op.Name).Observe(elapsed.Seconds())
		if reason := refusalReason(status, err); reason != "" {
			// Prefix labels are few: strangers must not fill them all.
			prefix := a.metrics.StrangerPrefix(rt.policyPath(req))
			if req.principal != nil {
				prefix = a.metrics.Prefix(rt.policyPath(req))
			}
			a.metrics.Refused.WithLabelValues(reason, prefix).Inc()
		}
		a.log.Debug("request", "request_id", id, "op", rt.op.Name, "status", status, "duration", elapsed)
	})
}

// response is a handler's answer, written only after the audit record.
type response struct {
	status int
	body   any
	raw    rawResponse
}

func (resp response) write(w http.ResponseWriter) int {
	switch {
	case resp.raw != nil:
		return resp.raw(w)
	case resp.body == nil:
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	default:
		writeJSON(w, resp.status, resp.body)
		return resp.status
	}
}

func (a *API) serve(rt route, req *request) (response, error) {
	if err := a.core.Limits.AllowSource(rt.policyPath(req), sourceAddr(req.Request)); err != nil {
		return response{}, err
	}
	if rt.access == authenticated {
		if a.core.Sealed() {
			return response{}, core.ErrSealed
		}
		// Fail closed before acting: an operation whose record cannot be
		// kept is not performed.
		if err := a.core.AuditReady(req.ctx); err != nil {
			return response{}, err
		}
		tok := requestToken(req.Request)
		if tok == "" {
			return response{}, auth.ErrUnauthenticated
		}
		p, err := a.core.Authenticate(req.ctx, tok)
		if err != nil {
			return response{}, err
		}
		req.principal = p
		if err := a.core.Limits.AllowIdentity(rt.policyPath(req), limitKey(p)); err != nil {
			return response{}, err
		}
		if rt.op.Capability != capSelf && rt.op.Capability != capCustom {
			if err := a.authorize(req, rt.op.Name, rt.policyPath(req), rt.op.Capability); err != nil {
				return response{}, err
			}
		}
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead && rt.op.Name != opNoRoute && rt.op.Name != opBadPath {
		// A change is on record before it is made, also on the public
		// routes that change state (logins use up secret_ids and mint
		// tokens; generate-root, unseal and init).
		if rt.access == public {
			if err := a.core.AuditReady(req.ctx); err != nil {
				return response{}, err
			}
		}
		if err := a.core.RecordRequest(req.ctx, core.RequestRecord{Type: core.TypeIntent, ID: req.id, Op: rt.op.Name,
			Path: rt.policyPath(req), Principal: req.principal, Public: rt.access == public && req.principal == nil,
			Source: sourceAddr(req.Request), UserAgent: req.UserAgent(), Decision: req.decision}); err != nil {
			return response{}, err
		}
	}
	body, err := rt.handle(req)
	if err != nil {
		return response{}, err
	}
	if raw, ok := body.(rawResponse); ok {
		return response{status: http.StatusOK, raw: raw}, nil
	}
	status := req.status
	if status == 0 {
		status = http.StatusOK
	}
	if body == nil {
		status = http.StatusNoContent
	}
	return response{status: status, body: body}, nil
}

func (rt route) policyPath(r *request) string {
	if rt.path != nil {
		return rt.path(r)
	}
	return r.PathValue("name")
}

// authorize asks the authorizer about one path and capability and keeps
// the decision for the audit record.
func (a *API) authorize(r *request, op, path, capability string) error {
	d, err := a.authz.Decide(r.ctx, r.principal, Check{Op: op, Path: path, Capability: capability, Source: sourceAddr(r.Request)})
	if err == nil || errors.Is(err, auth.ErrForbidden) {
		r.decision = &d
	}
	return err
}

// sourceAddr is the client's address as the listener saw it.
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// fixed returns a path function for routes whose policy path does not vary.
func fixed(path string) func(*request) string {
	return func(*request) string { return path }
}

// limitKey names the rate-limit bucket of a principal: its identity, so
// that logging in again does not reset it, or its token family for tokens
// without one (see auth.Principal.LimitKey).
func limitKey(p *auth.Principal) string { return p.LimitKey() }

// rawResponse lets a handler write a non-JSON answer itself; it returns the status.
type rawResponse func(http.ResponseWriter) int

// refusalReason names why a request was refused, for the refusal counter.
func refusalReason(status int, err error) string {
	var d *authz.Denied
	switch {
	case status == http.StatusUnauthorized:
		return "unauthenticated"
	case status == http.StatusForbidden && errors.As(err, &d) && d.MFARequired:
		return "mfa_required"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusTooManyRequests:
		return "throttled"
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	}
	return ""
}

// requestToken takes the token from X-Coffer-Token or a Bearer Authorization header.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Coffer-Token"); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Header values every answer carries, shared by all of them. net/http only
// reads or replaces header value slices, never writes into them.
var (
	noStore         = []string{"no-store"}
	contentTypeJSON = []string{"application/json"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
