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
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/authz"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/metrics"
)

// MaxBodySize caps every request body.
const MaxBodySize = 1 << 20

// Authorizer decides whether a principal may perform an operation on a
// path. It returns nil or an error wrapping auth.ErrForbidden.
type Authorizer interface {
	Authorize(ctx context.Context, p *auth.Principal, c Check) error
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

type request struct {
	*http.Request
	ctx       context.Context
	id        string
	principal *auth.Principal // nil on public routes
	w         http.ResponseWriter
	status    int // set by handlers that do not answer 200
}

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
}

// API serves /v1.
type API struct {
	core    *core.Core
	cfg     Config
	metrics *metrics.Metrics
	authz   Authorizer
	log     *slog.Logger
	mux     *http.ServeMux
	routes  []route
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
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNoRoute, "")
	})
	return a
}

// ServeHTTP implements http.Handler. Paths with empty, "." or ".."
// segments are refused rather than cleaned and redirected, so that what a
// policy sees is exactly what the caller sent.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		writeError(w, badRequest("name: path must not contain empty, . or .. segments"), "")
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

// wrap is the request pipeline every route goes through.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
		req := &request{Request: r, ctx: r.Context(), id: id, w: w}
		status, err := a.serve(rt, req)
		if err != nil {
			status = writeError(w, err, id)
			if status >= 500 {
				a.log.Error("request failed", "request_id", id, "op", rt.op.Name, "error", err)
			}
		}
		elapsed := time.Since(start)
		a.metrics.Requests.WithLabelValues(rt.op.Name, metrics.CodeClass(status)).Inc()
		a.metrics.RequestDuration.WithLabelValues(rt.op.Name).Observe(elapsed.Seconds())
		if reason := refusalReason(status, err); reason != "" {
			a.metrics.Refused.WithLabelValues(reason, a.metrics.Prefix(rt.policyPath(req))).Inc()
		}
		a.log.Debug("request", "request_id", id, "op", rt.op.Name, "status", status, "duration", elapsed)
	})
}

func (a *API) serve(rt route, req *request) (int, error) {
	if rt.access == authenticated {
		if a.core.Sealed() {
			return 0, core.ErrSealed
		}
		tok := requestToken(req.Request)
		if tok == "" {
			return 0, auth.ErrUnauthenticated
		}
		p, err := a.core.Authenticate(req.ctx, tok)
		if err != nil {
			return 0, err
		}
		req.principal = p
		if rt.op.Capability != capSelf && rt.op.Capability != capCustom {
			if err := a.authorize(req, rt.op.Name, rt.policyPath(req), rt.op.Capability); err != nil {
				return 0, err
			}
		}
	}
	body, err := rt.handle(req)
	if err != nil {
		return 0, err
	}
	if raw, ok := body.(rawResponse); ok {
		return raw(req.w), nil
	}
	status := req.status
	if status == 0 {
		status = http.StatusOK
	}
	if body == nil {
		req.w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, nil
	}
	writeJSON(req.w, status, body)
	return status, nil
}

func (rt route) policyPath(r *request) string {
	if rt.path != nil {
		return rt.path(r)
	}
	return r.PathValue("name")
}

// authorize asks the authorizer about one path and capability.
func (a *API) authorize(r *request, op, path, capability string) error {
	return a.authz.Authorize(r.ctx, r.principal, Check{Op: op, Path: path, Capability: capability, Source: sourceAddr(r.Request)})
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
