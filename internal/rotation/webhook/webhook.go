// Package webhook rotates secrets through an external HTTPS endpoint, in
// the four steps AWS Secrets Manager gives its rotation functions (create,
// set, test, finish) plus revoke at the end of the grace window.
//
// Each step is a POST of a JSON body:
//
//	{"step":"set","secret_name":"prod/api","rotation_id":"9f...","version":4,
//	 "current_version":3,"value":"<the pending value>"}
//
// value (text), value_json (JSON) or value_base64 (binary) carries the
// pending value for create (absent: nothing yet), set and test (the value
// to test, which may be current's), never for finish and revoke: revoke
// names previous_version only, and the endpoint revokes what it set for
// that version. A create answer may supply the new value as {"value":...}
// or {"value_json":...}; otherwise Coffer generates one from the password
// policy. Any 2xx answer is success; anything else, a timeout or a redirect
// is a failure that Coffer retries with the same rotation_id, so the
// endpoint must be idempotent per (rotation_id, step).
//
// Requests are signed so the endpoint can check they come from Coffer:
// Coffer-Timestamp is the Unix time and Coffer-Signature is
// "v1=" + hex(HMAC-SHA256(signing_key, timestamp + "." + body)). The
// endpoint should refuse timestamps more than five minutes old. The
// signing key is generated when the policy is set and shown only then: a
// later update of the policy keeps it (and hides it) unless the update
// gives a new one or points the URL at another scheme or host, which
// generates a new key, shown once, so that the key one endpoint knows
// never signs requests to another.
//
// Whoever sets a webhook policy chooses where secret values go, so the
// rotator refuses, by default, to connect to loopback, private (RFC 1918,
// RFC 6598, IPv6 ULA), link-local and unspecified addresses: a policy
// cannot aim Coffer at its own host, its cloud metadata service or the
// internal network. The check runs on the address actually dialled, after
// name resolution, so a name that resolves differently later (DNS
// rebinding) cannot get around it. Config.AllowedHosts and
// Config.AllowPrivate lift it for endpoints the operator trusts.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/rotation/password"
	"github.com/coffer-dev/coffer/internal/secret"
)

// Steps as the endpoint sees them.
const (
	StepCreate = "create"
	StepSet    = "set"
	StepTest   = "test"
	StepFinish = "finish"
	StepRevoke = "revoke"
)

// Headers of a request.
const (
	HeaderTimestamp  = "Coffer-Timestamp"
	HeaderSignature  = "Coffer-Signature"
	HeaderRotationID = "Coffer-Rotation-Id"
	HeaderStep       = "Coffer-Rotation-Step"
)

// Limits.
const (
	DefaultTimeout = 30 * time.Second
	// MaxTimeout is the longest timeout a policy may set: the engine
	// bounds each step at rotation.DefaultStepTimeout anyway.
	MaxTimeout      = rotation.DefaultStepTimeout
	maxResponseSize = 64 << 10
	maxURLLen       = 2048
	keyBytes        = 32
)

// Options configure the webhook rotator.
type Options struct {
	URL string `json:"url"`
	// Timeout bounds each call (default 30s, at most MaxTimeout: 2m).
	Timeout rotation.Duration `json:"timeout,omitempty"`
	// CACert is a PEM bundle to trust for the endpoint instead of the system roots.
	CACert string `json:"ca_cert,omitempty"`
	// SigningKey (hex) signs requests; generated when empty and kept
	// across policy updates unless a new one is given or the URL's scheme
	// or host changes.
	SigningKey string `json:"signing_key,omitempty"`
	// Password shapes the value Coffer generates when create supplies none.
	Password password.Policy `json:"password,omitzero"`
}

// Config configures the rotator.
type Config struct {
	// AllowedHosts are host names and IP addresses the rotator may connect
	// to even when they are (or resolve to) private or loopback addresses,
	// compared with the URL's host without its port, case-insensitively.
	AllowedHosts []string
	// AllowPrivate lets every policy reach private, loopback and link-local
	// addresses (a lab, or tests with a loopback server).
	AllowPrivate bool
	// Transport, when set, replaces the default HTTP transport and with it
	// the address checks (tests only).
	Transport http.RoundTripper
	Now       func() time.Time
}

// ErrForbiddenAddress is returned, wrapped, when a webhook URL points to
// an address the rotator may not reach (see Config.AllowedHosts).
var ErrForbiddenAddress = errors.New("the webhook address is private, loopback or link-local; allow the host in the server configuration (rotation { webhook_allowed_hosts = [...] }) if it is trusted")

// Rotator calls webhooks. It is safe for concurrent use.
type Rotator struct {
	cfg Config
}

// New returns a webhook rotator.
func New(cfg Config) *Rotator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Rotator{cfg: cfg}
}

func invalid(field, format string, args ...any) error {
	return &secret.ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func decodeOptions(raw json.RawMessage) (*Options, error) {
	var o Options
	if err := rotation.DecodeOptions(raw, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Check validates the options and generates the signing key.
func (r *Rotator) Check(raw, old json.RawMessage, _ rotation.PolicyInfo) (json.RawMessage, error) {
	o, err := decodeOptions(raw)
	if err != nil {
		return nil, err
	}
	if err := checkURL(o.URL); err != nil {
		return nil, err
	}
	if u, _ := url.Parse(o.URL); !r.hostAllowed(u.Hostname()) {
		// Caught early for addresses written in the URL; names are
		// checked when dialled, on the addresses they resolve to then.
		host := strings.TrimSuffix(u.Hostname(), ".")
		if ip, err := netip.ParseAddr(host); (err == nil && forbidden(ip)) || strings.EqualFold(host, "localhost") {
			return nil, invalid("options.url", "%v", ErrForbiddenAddress)
		}
	}
	if o.Timeout < 0 || time.Duration(o.Timeout) > MaxTimeout {
		return nil, invalid("options.timeout", "must be at most %s (each rotation step is bounded by %s)", rotation.FormatDuration(MaxTimeout), rotation.FormatDuration(rotation.DefaultStepTimeout))
	}
	if o.CACert != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(o.CACert)) {
			return nil, invalid("options.ca_cert", "holds no PEM certificate")
		}
	}
	if err := o.Password.Validate(); err != nil {
		return nil, invalid("options.password", "%v", err)
	}
	if o.SigningKey == "" && len(old) > 0 {
		// The old key stays with the endpoint that knows it: another
		// scheme or host gets a new one.
		if prev, err := decodeOptions(old); err == nil && sameOrigin(prev.URL, o.URL) {
			o.SigningKey = prev.SigningKey
		}
	}
	if o.SigningKey == "" {
		k := make([]byte, keyBytes)
		_, _ = rand.Read(k)
		o.SigningKey = hex.EncodeToString(k)
	}
	if k, err := hex.DecodeString(o.SigningKey); err != nil || len(k) < 16 {
		return nil, invalid("options.signing_key", "must be at least 16 bytes in hex")
	}
	return json.Marshal(o)
}

// sameOrigin reports whether URLs a and b have the same scheme, host and
// port (the default port of the scheme when none is written).
func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if strings.EqualFold(u.Scheme, "http") {
			return "80"
		}
		return "443"
	}
	host := func(u *url.URL) string { return strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")) }
	return strings.EqualFold(ua.Scheme, ub.Scheme) && host(ua) == host(ub) && port(ua) == port(ub)
}

// checkURL requires https, except for loopback addresses (tests and
// sidecars on the same host, which Config must allow).
func checkURL(s string) error {
	if s == "" {
		return invalid("options.url", "is required")
	}
	if len(s) > maxURLLen {
		return invalid("options.url", "is longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return invalid("options.url", "must be an absolute https URL without credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return invalid("options.url", "must use https (plain http is allowed only to a loopback address)")
	}
	return invalid("options.url", "must use https")
}

// DisclosesValues reports true: the endpoint the policy names receives
// the secret's values.
func (r *Rotator) DisclosesValues() bool { return true }

// Redact hides the signing key and the values of the URL's query, where
// endpoints often take a token.
func (r *Rotator) Redact(raw json.RawMessage) json.RawMessage {
	o, err := decodeOptions(raw)
	if err != nil {
		return nil
	}
	if o.SigningKey != "" {
		o.SigningKey = "(hidden: shown once when the policy was set)"
	}
	o.URL = redactURL(o.URL)
	out, _ := json.Marshal(o)
	return out
}

// RedactKept hides the signing key when it is the one old had: a key
// generated by Check or given with this update is shown (once), a kept
// key never is. The URL is shown as given: the caller just sent it.
func (r *Rotator) RedactKept(raw, old json.RawMessage) json.RawMessage {
	o, err := decodeOptions(raw)
	if err != nil {
		return nil
	}
	if o.SigningKey != "" && len(old) > 0 {
		if prev, err := decodeOptions(old); err != nil || prev.SigningKey == o.SigningKey {
			o.SigningKey = "(hidden: kept from before; set a new signing_key, or change the URL's host, to get a new one)"
		}
	}
	out, _ := json.Marshal(o)
	return out
}

// redactURL replaces each query value of s with "redacted".
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery == "" {
		return s
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		u.RawQuery = "redacted"
		return u.String()
	}
	for k := range q {
		q[k] = []string{"redacted"}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// hostAllowed reports whether host is exempt from the address checks.
func (r *Rotator) hostAllowed(host string) bool {
	if r.cfg.AllowPrivate {
		return true
	}
	host = strings.TrimSuffix(host, ".")
	for _, h := range r.cfg.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
		if a, err := netip.ParseAddr(h); err == nil {
			if b, err := netip.ParseAddr(host); err == nil && a.Unmap() == b.Unmap() {
				return true
			}
		}
	}
	return false
}

// blockedPrefixes are the ranges, beyond what netip.Addr's predicates
// cover, that a webhook may not reach without being allowed.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"; 0.0.0.0 reaches the local host
	netip.MustParsePrefix("100.64.0.0/10"),  // RFC 6598 shared address space (carrier NAT, overlay networks)
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved ("class E")
	netip.MustParsePrefix("::/96"),          // IPv4-compatible IPv6 (deprecated): embeds any IPv4 address
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: embeds any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
}

// forbidden reports whether ip is loopback, private, link-local,
// unspecified, multicast or otherwise not a public unicast address.
func forbidden(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsValid() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// dialControl refuses connections to forbidden addresses. It runs on the
// resolved address of each connection attempt.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w (%s)", ErrForbiddenAddress, address)
	}
	if forbidden(ap.Addr()) {
		return fmt.Errorf("%w (%s)", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// dial connects to addr, checking the resolved addresses unless the host
// is allowed.
func (r *Rotator) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if !r.hostAllowed(host) {
		d.Control = dialControl
	}
	return d.DialContext(ctx, network, addr)
}

// request is the body of a call.
type request struct {
	Step           string          `json:"step"`
	SecretName     string          `json:"secret_name"`
	RotationID     string          `json:"rotation_id,omitempty"`
	Version        int             `json:"version,omitempty"`
	CurrentVersion int             `json:"current_version,omitempty"`
	Previous       int             `json:"previous_version,omitempty"`
	Type           string          `json:"type,omitempty"`
	Value          *string         `json:"value,omitempty"`
	ValueJSON      json.RawMessage `json:"value_json,omitempty"`
	ValueBase64    string          `json:"value_base64,omitempty"`
}

func (q *request) setValue(v *secret.Value) {
	q.Version, q.Type = v.Version, v.Type
	switch v.Type {
	case secret.TypeJSON:
		q.ValueJSON = v.Data
	case secret.TypeBinary:
		q.ValueBase64 = base64.StdEncoding.EncodeToString(v.Data)
	default:
		s := string(v.Data)
		q.Value = &s
	}
}

// createAnswer is what create may answer.
type createAnswer struct {
	Value     *string         `json:"value"`
	ValueJSON json.RawMessage `json:"value_json"`
}

// Sign returns the Coffer-Signature header value for body sent at ts
// with key: "v1=" + hex(HMAC-SHA256(key, ts + "." + body)).
func Sign(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature and that its timestamp is within
// maxAge of now; endpoints written in Go can use it.
func Verify(key []byte, h http.Header, body []byte, now time.Time, maxAge time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("missing or bad " + HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return errors.New("timestamp too old or in the future")
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(key, ts, body))) {
		return errors.New("bad signature")
	}
	return nil
}

func (r *Rotator) call(ctx context.Context, o *Options, q *request) ([]byte, error) {
	if err := checkURL(o.URL); err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(o.SigningKey)
	if err != nil || len(key) == 0 {
		return nil, errors.New("the policy has no signing key; set the policy again")
	}
	body, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(o.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(r.cfg.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coffer-rotation/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(key, ts, body))
	req.Header.Set(HeaderRotationID, q.RotationID)
	req.Header.Set(HeaderStep, q.Step)
	if q.RotationID != "" {
		req.Header.Set("Idempotency-Key", q.RotationID+"-"+q.Step)
	}
	hc, err := r.client(o)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the policy; keep the cause
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("webhook %s step timed out after %s", q.Step, timeout)
		}
		return nil, fmt.Errorf("webhook %s step: %w", q.Step, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("webhook %s step: reading the answer: %v", q.Step, err)
	}
	if len(out) > maxResponseSize {
		return nil, fmt.Errorf("webhook %s step: answer larger than %d bytes", q.Step, maxResponseSize)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The answer's body is not kept: the endpoint controls it, and it
		// could echo the value it was sent into the rotation's state.
		return nil, fmt.Errorf("webhook %s step answered %d (%s): the endpoint refused the step", q.Step, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return out, nil
}

func (r *Rotator) client(o *Options) (*http.Client, error) {
	tr := r.cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Straight to the endpoint: a proxy would dial the target itself,
		// out of reach of the address checks.
		t.Proxy = nil
		t.DialContext = r.dial
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CACert != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(o.CACert)) {
				return nil, errors.New("options.ca_cert holds no PEM certificate")
			}
			t.TLSClientConfig.RootCAs = pool
		}
		t.DisableKeepAlives = true // a few calls per rotation: no idle pool to manage
		tr = t
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("redirects are not followed")
	}}, nil
}

func base(j *rotation.Job, step string) *request {
	q := &request{Step: step, SecretName: j.Name, RotationID: j.RotationID}
	if j.Current != nil {
		q.CurrentVersion = j.Current.Version
	}
	return q
}

// Create asks the endpoint for a new value, or generates one.
func (r *Rotator) Create(ctx context.Context, j *rotation.Job) ([]byte, string, error) {
	o, err := decodeOptions(j.Options)
	if err != nil {
		return nil, "", err
	}
	out, err := r.call(ctx, o, base(j, StepCreate))
	if err != nil {
		return nil, "", err
	}
	var a createAnswer
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &a); err != nil {
			return nil, "", errors.New("webhook create step answered something other than a JSON object")
		}
	}
	switch {
	case a.Value != nil:
		return []byte(*a.Value), secret.TypeText, nil
	case len(a.ValueJSON) > 0 && !bytes.Equal(a.ValueJSON, []byte("null")):
		var buf bytes.Buffer
		if err := json.Compact(&buf, a.ValueJSON); err != nil {
			return nil, "", errors.New("webhook create step answered invalid value_json")
		}
		return buf.Bytes(), secret.TypeJSON, nil
	}
	pw, err := o.Password.Generate()
	if err != nil {
		return nil, "", err
	}
	return []byte(pw), secret.TypeText, nil
}

// Set sends the pending value.
func (r *Rotator) Set(ctx context.Context, j *rotation.Job) error {
	o, err := decodeOptions(j.Options)
	if err != nil {
		return err
	}
	q := base(j, StepSet)
	q.setValue(j.Pending)
	_, err = r.call(ctx, o, q)
	return err
}

// Test asks the endpoint whether v works.
func (r *Rotator) Test(ctx context.Context, j *rotation.Job, v *secret.Value) error {
	o, err := decodeOptions(j.Options)
	if err != nil {
		return err
	}
	q := base(j, StepTest)
	q.setValue(v)
	_, err = r.call(ctx, o, q)
	return err
}

// Finish tells the endpoint the pending version becomes current.
func (r *Rotator) Finish(ctx context.Context, j *rotation.Job) error {
	o, err := decodeOptions(j.Options)
	if err != nil {
		return err
	}
	q := base(j, StepFinish)
	q.Version = j.Pending.Version
	_, err = r.call(ctx, o, q)
	return err
}

// Revoke tells the endpoint the previous version's grace window ended.
func (r *Rotator) Revoke(ctx context.Context, j *rotation.Job) error {
	o, err := decodeOptions(j.Options)
	if err != nil {
		return err
	}
	q := base(j, StepRevoke)
	q.Previous = j.Previous.Version
	_, err = r.call(ctx, o, q)
	return err
}
