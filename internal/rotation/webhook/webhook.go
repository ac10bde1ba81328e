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
// signing key is generated when the policy is set and shown only then.
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
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	DefaultTimeout  = 30 * time.Second
	MaxTimeout      = 5 * time.Minute
	maxResponseSize = 64 << 10
	maxURLLen       = 2048
	keyBytes        = 32
)

// Options configure the webhook rotator.
type Options struct {
	URL string `json:"url"`
	// Timeout bounds each call (default 30s, at most 5m).
	Timeout rotation.Duration `json:"timeout,omitempty"`
	// CACert is a PEM bundle to trust for the endpoint instead of the system roots.
	CACert string `json:"ca_cert,omitempty"`
	// SigningKey (hex) signs requests; generated when empty and kept
	// across policy updates unless a new one is given.
	SigningKey string `json:"signing_key,omitempty"`
	// Password shapes the value Coffer generates when create supplies none.
	Password password.Policy `json:"password,omitzero"`
}

// Config configures the rotator.
type Config struct {
	// Transport, when set, replaces the default HTTP transport (tests).
	Transport http.RoundTripper
	Now       func() time.Time
}

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
	if o.Timeout < 0 || time.Duration(o.Timeout) > MaxTimeout {
		return nil, invalid("options.timeout", "must be between 1s and 5m")
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
		if prev, err := decodeOptions(old); err == nil {
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

// checkURL requires https, except for loopback addresses (tests and
// sidecars on the same host).
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

// Redact hides the signing key.
func (r *Rotator) Redact(raw json.RawMessage) json.RawMessage {
	o, err := decodeOptions(raw)
	if err != nil {
		return nil
	}
	if o.SigningKey != "" {
		o.SigningKey = "(hidden: shown once when the policy was set)"
	}
	out, _ := json.Marshal(o)
	return out
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
		return nil, fmt.Errorf("webhook %s step: %v", q.Step, err)
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
		return nil, fmt.Errorf("webhook %s step answered %d: %s", q.Step, resp.StatusCode, snippet(out))
	}
	return out, nil
}

// snippet is the first line of an error answer, bounded, printable.
func snippet(b []byte) string {
	s := string(b)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	if !utf8.ValidString(s) {
		return "(binary answer)"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 {
			return -1
		}
		return r
	}, s)
}

func (r *Rotator) client(o *Options) (*http.Client, error) {
	tr := r.cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
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
