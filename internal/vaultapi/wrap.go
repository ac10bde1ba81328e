package vaultapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"github.com/coffer-dev/coffer/internal/metrics"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/secret"
)

// access says who may call a route.
type access int

const (
	authenticated access = iota // token required, barrier unsealed
	public                      // no token (health, seal status, login)
)

// Capabilities that are not checked by wrap.
const (
	capSelf   = "self"   // any valid token may do this to itself
	capCustom = "custom" // the handler authorizes (writes, lists, token create)
)

// route is one method on one path pattern.
type route struct {
	method, pattern string
	op              string // stable name, e.g. "vault.kv.read"; used in logs and audit
	// capability is checked on the secret name before the handler runs:
	// read, list, create, update, delete or destroy; capSelf or capCustom
	// for routes that check nothing here or authorize in the handler.
	capability string
	access     access
	// secret: the {path} wildcard names a secret; wrap authorizes on it and
	// then validates it with secret.ValidateName (a capCustom handler
	// validates it after authorizing).
	secret bool
	// viaGETList: a LIST route that GET ?list=true also reaches.
	viaGETList bool
	// changes marks a public route that changes state (a login: it spends
	// a secret_id use and mints a token). Like an authenticated write, it
	// needs the barrier, fails closed before acting and writes an intent
	// record first.
	changes bool
	handle  func(*request) (*reply, error)
}

// monitoring reports whether rt reports the server's state to operators and
// orchestrators (sys/health). Served without a token it changes nothing and
// returns no secret, and an audit outage is exactly what it must be able to
// report, so it answers even when its own audit record cannot be kept; the
// failed write is logged (and counted by the audit log). A request that
// presented a token is never answered without its record, as on the native
// API.
func (rt *route) monitoring() bool {
	return rt.op == "vault.sys.health"
}

// writes reports whether r changes state, and so must fail closed and have
// an intent record on file before the handler acts.
func (rt *route) writes(r *request) bool {
	if rt.access == public {
		return rt.changes
	}
	return r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != "LIST"
}

// request is what a handler gets.
type request struct {
	*http.Request
	ctx       context.Context
	id        string
	route     *route
	name      string          // the validated secret name on secret routes
	token     string          // the caller's token: never logged, only echoed to its holder
	principal *auth.Principal // nil on public routes, until a login succeeds
	hmacs     core.Sensitive  // sensitive fields, recorded only as HMACs
}

// sensitive records a field whose value the audit record holds only as an HMAC.
func (r *request) sensitive(field, value string) { r.hmacs.Add(field, value) }

// reply is what a handler returns; nil means 204 No Content.
type reply struct {
	status   int // 0 means 200
	data     any
	auth     *authBlock
	warnings []string
	// raw is written as is, without Vault's response envelope (sys/health
	// and sys/seal-status answer that way).
	raw any
}

// envelope is Vault's response shape for logical requests.
type envelope struct {
	RequestID     string     `json:"request_id"`
	LeaseID       string     `json:"lease_id"`
	Renewable     bool       `json:"renewable"`
	LeaseDuration int        `json:"lease_duration"`
	Data          any        `json:"data"`
	WrapInfo      any        `json:"wrap_info"`
	Warnings      []string   `json:"warnings"`
	Auth          *authBlock `json:"auth"`
}

// outcome is the finished response of one request.
type outcome struct {
	status int
	body   []byte // nil for 204
	err    error  // the handler's or pipeline's error, if any
}

// wrap is the pipeline every request goes through (routes, and the 405,
// 404 and bad-path refusals): request id, body cap, seal check, audit
// readiness, authentication, name validation, authorization, the intent
// record of a change, the handler, error mapping, then finish, which
// records the outcome before the answer is written.
func (a *API) wrap(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		req := &request{Request: r, ctx: r.Context(), id: newRequestID(), route: rt}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
		rep, err := a.serve(rt, req)
		var out outcome
		if err != nil {
			status, msgs := mapError(err)
			if status >= 500 && status != http.StatusServiceUnavailable {
				a.log.Error("request failed", "request_id", req.id, "op", rt.op, "error", err)
			}
			out = outcome{status: status, body: encode(errorBody{Errors: msgs}), err: err}
		} else {
			out = a.render(req, rep)
		}
		if ferr := a.finish(req, &out, time.Since(start)); ferr != nil {
			if rt.monitoring() && req.principal == nil && requestToken(r) == "" {
				a.log.Warn("audit record failed; answering anyway, since this route reports the outage", "request_id", req.id, "op", rt.op, "error", ferr)
			} else {
				a.log.Error("audit record failed; refusing the request", "request_id", req.id, "op", rt.op, "error", ferr)
				out = outcome{status: http.StatusServiceUnavailable, body: encode(errorBody{Errors: []string{"audit log unavailable; request refused"}}), err: ferr}
			}
		}
		if m := a.metrics; m != nil {
			m.Requests.WithLabelValues(rt.op, metrics.CodeClass(out.status)).Inc()
			m.RequestDuration.WithLabelValues(rt.op).Observe(time.Since(start).Seconds())
		}
		h := w.Header()
		h.Set("X-Request-Id", req.id)
		h.Set("Cache-Control", "no-store")
		if out.status == http.StatusServiceUnavailable {
			h.Set("Retry-After", "5")
		}
		if out.body == nil {
			w.WriteHeader(out.status)
			return
		}
		h.Set("Content-Type", "application/json")
		w.WriteHeader(out.status)
		w.Write(out.body)
	})
}

func (a *API) serve(rt *route, req *request) (*reply, error) {
	path := req.PathValue("path")
	if err := a.core.Limits.AllowSource(path, sourceAddr(req.Request)); err != nil {
		return nil, err
	}
	if rt.access == authenticated {
		if a.core.Sealed() {
			return nil, core.ErrSealed
		}
		// Fail closed before acting, like the native API.
		if err := a.core.AuditReady(req.ctx); err != nil {
			return nil, err
		}
		tok := requestToken(req.Request)
		if tok == "" {
			return nil, auth.ErrUnauthenticated
		}
		p, err := a.core.Authenticate(req.ctx, tok)
		if err != nil {
			return nil, err
		}
		req.principal, req.token = p, tok
		if err := a.core.Limits.AllowIdentity(path, p.LimitKey()); err != nil {
			return nil, err
		}
		if rt.secret {
			req.name = req.PathValue("path")
		}
		// Authorize on the name as sent, then validate it, like the native
		// API: a caller learns nothing about names it may not use.
		if rt.capability != capSelf && rt.capability != capCustom {
			if err := a.authorize(req, rt.op, req.name, rt.capability); err != nil {
				return nil, err
			}
		}
		if rt.secret && rt.capability != capCustom {
			if err := secret.ValidateName(req.name); err != nil {
				return nil, err
			}
		}
	}
	if rt.access == public && rt.changes {
		// A login needs the barrier, and fails closed before it spends a
		// credential or mints a token.
		if a.core.Sealed() {
			return nil, core.ErrSealed
		}
		if err := a.core.AuditReady(req.ctx); err != nil {
			return nil, err
		}
	}
	if rt.writes(req) {
		// A change is on record before it is made, as on the native API.
		path := req.name
		if path == "" {
			path = rt.op
		}
		if err := a.core.RecordRequest(req.ctx, core.RequestRecord{Type: core.TypeIntent, ID: req.id, Op: rt.op,
			Path: path, Principal: req.principal, Source: sourceAddr(req.Request), UserAgent: req.UserAgent()}); err != nil {
			return nil, err
		}
	}
	return rt.handle(req)
}

// finish runs once per request, after the handler and the error mapping and
// before any byte of the response leaves: it makes the request's audit
// record durable, and an error it returns (the record could not be kept)
// replaces the response with a 503, except for token-less monitoring. It
// also logs the operation, status, request id and duration at debug level:
// never a value, a token or a secret name.
func (a *API) finish(r *request, out *outcome, elapsed time.Duration) error {
	a.log.Debug("vault request", "request_id", r.id, "op", r.route.op, "status", out.status, "duration", elapsed)
	path := r.name
	if path == "" {
		path = r.route.op
	}
	in := core.RequestRecord{
		// A login that succeeded is recorded as its new token's request.
		ID: r.id, Op: r.route.op, Path: path, Principal: r.principal, Public: r.route.access != authenticated && r.principal == nil,
		Source: sourceAddr(r.Request), UserAgent: r.UserAgent(), Status: out.status, Err: out.err, Sensitive: r.hmacs, Elapsed: elapsed,
	}
	if out.err != nil {
		in.ErrCode = http.StatusText(out.status)
	}
	return a.core.RecordRequest(r.ctx, in)
}

// render turns a handler's reply into a response.
func (a *API) render(r *request, rep *reply) outcome {
	if rep == nil {
		return outcome{status: http.StatusNoContent}
	}
	status := rep.status
	if status == 0 {
		status = http.StatusOK
	}
	if rep.raw != nil {
		return outcome{status: status, body: encode(rep.raw)}
	}
	return outcome{status: status, body: encode(envelope{RequestID: r.id, Data: rep.data, Warnings: rep.warnings, Auth: rep.auth})}
}

// authorize asks the policies about one path and capability.
func (a *API) authorize(r *request, op, path, capability string) error {
	return a.core.Policies.Authorize(r.ctx, r.principal, auth.Check{Op: op, Path: path, Capability: capability, Source: sourceAddr(r.Request)})
}

// sourceAddr is the client's address as the listener saw it.
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// requestToken takes the token from X-Vault-Token or a Bearer Authorization header.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return strings.TrimSpace(t)
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	// Vault's request ids are UUIDs; clients only echo them, but keep the shape.
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// encode marshals v without HTML escaping, newline-terminated.
func encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a programming error gets here: every reply is plain data.
		return []byte(`{"errors":["internal error"]}` + "\n")
	}
	return buf.Bytes()
}
