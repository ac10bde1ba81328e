// Package awsapi serves the AWS Secrets Manager API (the awsJson1_1
// protocol: POST with X-Amz-Target: secretsmanager.<Operation>) over
// Coffer's secret store, so that the official AWS SDKs, the AWS CLI and the
// tools built on them read and write Coffer secrets unchanged.
//
// Every request goes through one pipeline, ServeHTTP: request id, body cap,
// seal check, Signature Version 4 authentication against Coffer access keys
// (package awskey), authorization with the same policies as the native API,
// the operation, one mapping from domain errors to AWS error shapes, and
// finish, which logs and audits the call. No business rule lives here: the
// operations translate AWS shapes to the secret service and back.
//
// Mapping. AWS staging labels AWSCURRENT, AWSPREVIOUS and AWSPENDING are
// Coffer's current, previous and pending stages; other labels are Coffer
// stages of the same name. A version's VersionId is the idempotency token it
// was written with (AWS SDKs always send one), or else a UUID-shaped id
// derived from the secret's id and the version number. SecretString is a
// text (or JSON) value, SecretBinary a binary one. ARNs are
// arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX with a suffix
// derived from the secret's id.
package awsapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/awskey"
	"github.com/coffer-dev/coffer/internal/awsapi/sigv4"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/metrics"
	"github.com/coffer-dev/coffer/internal/policy"
	"github.com/coffer-dev/coffer/internal/secret"
)

// Prefix is the path under which the server mounts the API; SDKs use
// http(s)://HOST:PORT/aws as their endpoint.
const Prefix = "/aws"

// MaxBodySize caps every request body.
const MaxBodySize = 1 << 20

// service is the SigV4 service name and the X-Amz-Target prefix.
const service = "secretsmanager"

// Authorizer decides whether a principal may perform an operation on a
// path. It returns the decision (naming the deciding policy and rule, for
// the audit record) and nil, or an error wrapping auth.ErrForbidden.
type Authorizer interface {
	Decide(ctx context.Context, p *auth.Principal, c auth.Check) (policy.Decision, error)
}

// Config configures the API. Zero values mean defaults.
type Config struct {
	Core *core.Core
	Keys *awskey.Service
	// Authorizer is nil for the core's policies.
	Authorizer Authorizer
	Logger     *slog.Logger
	// Region and AccountID appear in ARNs; defaults us-east-1 and
	// 000000000000. Signatures scoped to any region are accepted, so SDKs
	// configured for their usual region work.
	Region    string
	AccountID string
	Now       func() time.Time
	// MaxSkew bounds the distance between a request's X-Amz-Date and the
	// server clock; default 5 minutes.
	MaxSkew time.Duration
	// Audit makes each call's audit records durable before the answer is
	// written; an error refuses the answer (audit fails closed). nil means
	// core.RecordRequest, the audit log every adapter writes to.
	Audit func(ctx context.Context, rec core.RequestRecord) error
	// Metrics receives request counters, labeled with operations named
	// "aws.<Operation>"; nil counts nothing.
	Metrics *metrics.Metrics
}

// API serves the AWS Secrets Manager protocol. It is an http.Handler and is
// safe for concurrent use.
type API struct {
	cfg   Config
	core  *core.Core
	keys  *awskey.Service
	authz Authorizer
	log   *slog.Logger
	now   func() time.Time
	ops   map[string]operation
}

// New builds the API. Config.Core and Config.Keys are required.
func New(cfg Config) *API {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = sigv4.DefaultMaxSkew
	}
	a := &API{cfg: cfg, core: cfg.Core, keys: cfg.Keys, authz: cfg.Authorizer, log: cfg.Logger, now: cfg.Now}
	if a.authz == nil {
		a.authz = cfg.Core.Policies
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.ops = map[string]operation{}
	for _, op := range a.table() {
		if _, dup := a.ops[op.name]; dup {
			panic("awsapi: operation registered twice: " + op.name)
		}
		a.ops[op.name] = op
	}
	return a
}

// Operations lists the operation names the API answers, for tests that walk
// every one.
func (a *API) Operations() []string {
	out := make([]string, 0, len(a.ops))
	for _, op := range a.table() {
		out = append(out, op.name)
	}
	return out
}

// Mount returns a handler that sends requests for Prefix (and below) to the
// API and everything else to next.
func (a *API) Mount(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == Prefix || strings.HasPrefix(p, Prefix+"/") {
			a.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// call is one request on its way through the pipeline.
type call struct {
	ctx         context.Context
	r           *http.Request
	id          string
	op          string
	source      netip.Addr
	accessKeyID string
	principal   *auth.Principal
	secrets     []*touched
	hmacs       map[string]string // field -> sensitive value, kept in the audit record only as an HMAC
	body        []byte
}

// touched is a secret a call acted on or was refused on; each gets its own
// audit record.
type touched struct {
	name     string
	version  int
	decision *policy.Decision
	errType  string // a per-secret failure inside a batch call
}

// touch returns the entry of name, adding it on first use.
func (c *call) touch(name string) *touched {
	for _, t := range c.secrets {
		if t.name == name {
			return t
		}
	}
	t := &touched{name: name}
	c.secrets = append(c.secrets, t)
	return t
}

// sensitive keeps a value for the audit record, which holds only its HMAC.
func (c *call) sensitive(field, value string) {
	if value == "" {
		return
	}
	if c.hmacs == nil {
		c.hmacs = map[string]string{}
	}
	c.hmacs[field] = value
}

// ServeHTTP is the pipeline every request goes through.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := a.now()
	c := &call{ctx: r.Context(), r: r, id: newRequestID(), source: sourceAddr(r)}
	w.Header().Set("X-Amzn-Requestid", c.id)
	w.Header().Set("Cache-Control", "no-store")
	out, err := a.serve(c, w)
	status, typ := http.StatusOK, ""
	if err != nil {
		status, typ, _ = mapError(err)
	}
	if ferr := a.finish(c, status, typ, err, a.now().Sub(start)); ferr != nil {
		out, err = nil, ferr
	}
	if err != nil {
		writeError(w, err, c.id)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) serve(c *call, w http.ResponseWriter) (any, error) {
	r := c.r
	if r.Method != http.MethodPost || !validPath(r.URL.Path) {
		return nil, &awsError{http.StatusNotFound, "UnknownOperationException", "send POST requests to " + Prefix + " with an X-Amz-Target header"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		return nil, err
	}
	c.body = body
	name, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), service+".")
	op, known := a.ops[name]
	if ok && known {
		c.op = op.name // recorded even when the request is refused below
	}
	tgt := readTarget(body)
	path := tgt.limitPath()
	if err := a.core.Limits.AllowSource(path, c.source); err != nil {
		return nil, err
	}
	if a.core.Sealed() {
		return nil, core.ErrSealed
	}
	// Fail closed before acting: an operation whose record cannot be kept
	// is not performed.
	if a.cfg.Audit == nil {
		if err := a.core.AuditReady(c.ctx); err != nil {
			return nil, err
		}
	}
	if err := a.authenticate(c); err != nil {
		return nil, err
	}
	if err := a.core.Limits.AllowIdentity(path, limitKey(c.principal)); err != nil {
		return nil, err
	}
	if c.op == "" {
		return nil, &awsError{http.StatusBadRequest, "UnknownOperationException", "X-Amz-Target must name a Secrets Manager operation, e.g. secretsmanager.GetSecretValue"}
	}
	if ct := r.Header.Get("Content-Type"); !jsonContentType(ct) {
		return nil, &awsError{http.StatusBadRequest, "SerializationException", "send Content-Type: application/x-amz-json-1.1"}
	}
	// Names are bounded before anything (a record, a bucket) holds them.
	if err := a.checkTarget(tgt); err != nil {
		return nil, err
	}
	// A change is on record before it is made, as on the native API. It
	// is written before the operation authorizes, so it claims no
	// decision; the outcome record has the decision.
	if a.cfg.Audit == nil && !readOnly(c.op) {
		if err := a.core.RecordRequest(c.ctx, core.RequestRecord{Type: core.TypeIntent, ID: c.id, Op: "aws." + c.op,
			Path: a.intentPath(c, tgt), Principal: c.principal, Source: c.source, UserAgent: r.UserAgent(), Decision: nil}); err != nil {
			return nil, err
		}
	}
	return op.run(c)
}

// readOnly reports whether an operation only reads.
func readOnly(op string) bool {
	for _, p := range []string{"Get", "List", "Describe", "BatchGet", "Validate"} {
		if strings.HasPrefix(op, p) {
			return true
		}
	}
	return false
}

// target is what a request names, read leniently from its body before
// the operation decodes it strictly: SecretId, Name and SecretIdList.
type target struct {
	SecretId     string
	Name         string
	SecretIdList []string
}

// readTarget reads a body's target. Fields of the wrong type are left
// empty; the operation's strict decoding refuses them later.
func readTarget(body []byte) target {
	var t target
	_ = json.Unmarshal(body, &t)
	return t
}

// limitPath is the secret name a request is about, for the rate limiter's
// per-path rules: SecretId (an ARN reduced to its name part) or Name, or ""
// for requests about no single secret.
func (t target) limitPath() string {
	p := t.SecretId
	if p == "" {
		p = t.Name
	}
	if strings.HasPrefix(p, "arn:") {
		if parts := strings.SplitN(p, ":", 7); len(parts) == 7 {
			return parts[6]
		}
		return ""
	}
	return p
}

// maxPartition is the longest AWS partition name an ARN may carry.
const maxPartition = "aws-us-gov"

// maxSecretID is the longest SecretId the API accepts: the ARN of a secret
// with the longest name Coffer allows.
func (a *API) maxSecretID() int {
	return len("arn:"+maxPartition+":"+service+":"+a.cfg.Region+":"+a.cfg.AccountID+":secret:") + secret.MaxNameLen + len("-AbCdEf")
}

// checkID bounds one SecretId: a name of up to secret.MaxNameLen bytes or
// the ARN of one (whose name part may carry the six-character suffix).
func (a *API) checkID(field, id string) error {
	if !strings.HasPrefix(id, "arn:") {
		if len(id) > secret.MaxNameLen {
			return invalidParameter("%s is %d bytes; the limit is %d for a secret name", field, len(id), secret.MaxNameLen)
		}
		return nil
	}
	if len(id) > a.maxSecretID() {
		return invalidParameter("%s is %d bytes; the limit is %d for a secret's ARN", field, len(id), a.maxSecretID())
	}
	if parts := strings.SplitN(id, ":", 7); len(parts) == 7 {
		rest := parts[6]
		n := len(rest)
		if n > secret.MaxNameLen && (n > secret.MaxNameLen+7 || rest[n-7] != '-') {
			return invalidParameter("%s names a secret of %d bytes; the limit is %d", field, n, secret.MaxNameLen)
		}
	}
	return nil
}

// checkTarget refuses names too long to be secret names before anything
// records them.
func (a *API) checkTarget(t target) error {
	if len(t.Name) > secret.MaxNameLen {
		return invalidParameter("Name is %d bytes; the limit is %d", len(t.Name), secret.MaxNameLen)
	}
	if err := a.checkID("SecretId", t.SecretId); err != nil {
		return err
	}
	for i, id := range t.SecretIdList {
		if err := a.checkID(fmt.Sprintf("SecretIdList[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}

// intentPath is the secret an intent record is about: SecretId resolved
// to a name (an ARN to its secret's name), or Name. A SecretId that does
// not resolve is recorded as the rate limiter reads it; the operation then
// refuses it.
func (a *API) intentPath(c *call, t target) string {
	if t.SecretId != "" {
		if name, err := a.resolve(c.ctx, t.SecretId); err == nil {
			return name
		}
	}
	return t.limitPath()
}

// limitKey names the bucket of a caller (see auth.Principal.LimitKey).
func limitKey(p *auth.Principal) string { return p.LimitKey() }

// validPath accepts the API's root, mounted under Prefix or stripped of it.
func validPath(p string) bool {
	switch p {
	case "", "/", Prefix, Prefix + "/":
		return true
	}
	return false
}

func jsonContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	switch strings.TrimSpace(strings.ToLower(mt)) {
	case "", "application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json":
		return true
	}
	return false
}

// errUnknownKey answers unknown, expired and deleted access keys alike.
var errUnknownKey = &awsError{http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."}

// authenticate verifies the request's signature and sets its principal.
func (a *API) authenticate(c *call) error {
	s, err := sigv4.Parse(c.r, service, a.now(), a.cfg.MaxSkew)
	if err != nil {
		return err
	}
	c.accessKeyID = s.AccessKeyID
	if c.r.Header.Get("X-Amz-Target") != "" && !s.Signs("x-amz-target") {
		return fmt.Errorf("%w: SignedHeaders must include x-amz-target", sigv4.ErrMalformed)
	}
	key, secret, err := a.keys.Credentials(c.ctx, s.AccessKeyID)
	switch {
	case errors.Is(err, awskey.ErrNotFound), errors.Is(err, awskey.ErrExpired):
		return errUnknownKey
	case err != nil:
		return err
	}
	if err := s.Verify(c.r, requestPath(c.r), c.body, secret); err != nil {
		return err
	}
	c.principal = key.Principal()
	return nil
}

// requestPath is the path as the client sent it, before any prefix was
// stripped: that is what the client signed.
func requestPath(r *http.Request) string {
	if r.RequestURI != "" && r.RequestURI != "*" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			return u.EscapedPath()
		}
	}
	return r.URL.EscapedPath()
}

// authorize asks the authorizer whether the caller may use capability on
// the secret name, and keeps the decision for the audit record.
func (a *API) authorize(c *call, name, capability string) error {
	d, err := a.authz.Decide(c.ctx, c.principal, auth.Check{Op: "aws." + c.op, Path: name, Capability: capability, Source: c.source})
	if err == nil || errors.Is(err, auth.ErrForbidden) {
		c.touch(name).decision = &d
	}
	return err
}

// allowed is authorize for names a call only filters on (the list
// capability of ListSecrets): its decisions are not recorded one by one.
func (a *API) allowed(c *call, name, capability string) error {
	_, err := a.authz.Decide(c.ctx, c.principal, auth.Check{Op: "aws." + c.op, Path: name, Capability: capability, Source: c.source})
	return err
}

// finish ends every call: it makes the call's audit records durable (one
// per secret touched, or one for the call), counts it, and logs it at debug
// level: operation, status, request id and error type, never a value, a key
// or a signature. It returns an error only when the records could not be
// kept; the answer is then refused.
func (a *API) finish(c *call, status int, errType string, err error, elapsed time.Duration) error {
	var aerr error
	if !errors.Is(err, core.ErrAuditUnavailable) {
		aerr = a.audit(c, status, errType, err, elapsed)
	}
	if aerr != nil {
		a.log.Error("audit record failed; refusing the request", "request_id", c.id, "op", c.op, "error", aerr)
		status, errType, _ = mapError(core.ErrAuditUnavailable)
	} else if status >= 500 && err != nil && !errors.Is(err, core.ErrSealed) && !errors.Is(err, core.ErrAuditUnavailable) {
		a.log.Error("aws request failed", "request_id", c.id, "op", c.op, "error", err)
	}
	if m := a.cfg.Metrics; m != nil {
		op := "aws." + c.op
		if c.op == "" {
			op = "aws.unknown"
		}
		m.Requests.WithLabelValues(op, metrics.CodeClass(status)).Inc()
		m.RequestDuration.WithLabelValues(op).Observe(elapsed.Seconds())
		if reason := refusalReason(errType); reason != "" {
			path := ""
			if len(c.secrets) > 0 {
				path = c.secrets[0].name
			}
			m.Refused.WithLabelValues(reason, m.Prefix(path)).Inc()
		}
	}
	a.log.Debug("aws request", "request_id", c.id, "op", c.op, "status", status, "error_type", errType, "duration", elapsed)
	if aerr != nil {
		return core.ErrAuditUnavailable
	}
	return nil
}

// refusalReason names why a request was refused, for the refusal counter.
func refusalReason(errType string) string {
	switch errType {
	case "MissingAuthenticationTokenException", "IncompleteSignatureException", "InvalidSignatureException", "UnrecognizedClientException":
		return "unauthenticated"
	case "AccessDeniedException":
		return "forbidden"
	case "ThrottlingException":
		return "throttled"
	case "ServiceUnavailable":
		return "unavailable"
	}
	return ""
}

// audit writes the call's records through the core, as every adapter
// does: one per secret the call touched, or one for the call.
func (a *API) audit(c *call, status int, errType string, err error, elapsed time.Duration) error {
	write := a.cfg.Audit
	if write == nil {
		write = a.core.RecordRequest
	}
	op := "aws." + c.op
	if c.op == "" {
		op = "aws.unknown"
	}
	base := core.RequestRecord{ID: c.id, Op: op, Principal: c.principal, Source: c.source, UserAgent: c.r.UserAgent(),
		Status: status, Err: err, ErrCode: errType, Sensitive: c.hmacs, Elapsed: elapsed}
	if c.principal == nil && refusalReason(errType) == "unauthenticated" {
		base.Err = auth.ErrUnauthenticated
		if c.accessKeyID != "" {
			// The key the request claimed, known or not: access key ids are not secret.
			base.Principal = &auth.Principal{Method: awskey.Method, Accessor: truncate(c.accessKeyID, 64)}
		}
	}
	if len(c.secrets) == 0 {
		return write(c.ctx, base)
	}
	for _, t := range c.secrets {
		rec := base
		rec.Path, rec.Version, rec.Decision = t.name, t.version, t.decision
		if t.decision != nil && !t.decision.Allowed && !errors.Is(rec.Err, auth.ErrForbidden) {
			rec.Err = auth.ErrForbidden // a refusal inside a batch call
		}
		if t.errType != "" {
			rec.ErrCode = t.errType
		}
		if err := write(c.ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// sourceAddr is the client's address as the listener saw it.
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// newRequestID returns a random UUID, the shape AWS request ids have.
func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
