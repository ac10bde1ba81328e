// Package sigv4 verifies AWS Signature Version 4 on incoming HTTP requests
// signed in the Authorization header (the form every AWS SDK uses for JSON
// protocols), and signs requests the same way for tests and tools.
//
// Verification happens in two steps so that the caller can look the access
// key up in between: Parse reads the Authorization header, the request time
// and the credential scope, and refuses what is malformed or too old without
// needing any secret; Verify recomputes the signature with the secret access
// key and compares it in constant time.
//
// The canonical request follows the AWS rules for every service but S3: the
// path the client sent (already percent-encoded once) is URI-encoded again,
// and the payload hash is always computed from the body: an
// X-Amz-Content-Sha256 header must agree with it, and UNSIGNED-PAYLOAD is
// refused, so the body is always covered by the signature.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// TimeFormat is the layout of X-Amz-Date.
const TimeFormat = "20060102T150405Z"

const (
	dateFormat  = "20060102"
	terminator  = "aws4_request"
	maxKeyID    = 128
	maxHeaders  = 64
	maxScopeStr = 64
)

// DefaultMaxSkew is how far a request's X-Amz-Date may be from the server's
// clock, either way.
const DefaultMaxSkew = 5 * time.Minute

// Errors. Their messages may be shown to the client; they never include a
// signature, a key or a value.
var (
	// ErrMissing means the request carries no Authorization header.
	ErrMissing = errors.New("missing authentication token")
	// ErrMalformed means the Authorization header or a signed field does not
	// conform to Signature Version 4.
	ErrMalformed = errors.New("malformed signature")
	// ErrExpired means the request time is too far from the server's clock.
	ErrExpired = errors.New("signature expired")
	// ErrScope means the credential scope names another service.
	ErrScope = errors.New("credential scope is not valid here")
	// ErrMismatch means the signature does not match the request.
	ErrMismatch = errors.New("the request signature does not match the signature the server calculated; check the secret access key and the signing method")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Authorization is a parsed Authorization header.
type Authorization struct {
	AccessKeyID string
	Date        string // the scope's date, YYYYMMDD
	Region      string
	Service     string
	// SignedHeaders are lowercase, sorted and unique.
	SignedHeaders []string
	Signature     []byte // 32 bytes
}

// Scope returns the credential scope, "date/region/service/aws4_request".
func (a *Authorization) Scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/" + terminator
}

// Signs reports whether the header name (any case) is signed.
func (a *Authorization) Signs(name string) bool {
	name = strings.ToLower(name)
	i := sort.SearchStrings(a.SignedHeaders, name)
	return i < len(a.SignedHeaders) && a.SignedHeaders[i] == name
}

// ParseAuthorization parses an Authorization header of the form
//
//	AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// Each of the three parts must appear once; separators may be followed by
// spaces. It never panics, whatever the input.
func ParseAuthorization(h string) (*Authorization, error) {
	rest, ok := strings.CutPrefix(h, Algorithm+" ")
	if !ok {
		if alg, _, _ := strings.Cut(h, " "); alg != "" && strings.HasPrefix(alg, "AWS") {
			return nil, malformed("unsupported algorithm; use %s", Algorithm)
		}
		return nil, malformed("authorization header must start with %s", Algorithm)
	}
	var a Authorization
	var haveCred, haveSigned, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, malformed("authorization header part %q is not key=value", truncate(k))
		}
		switch k {
		case "Credential":
			if haveCred {
				return nil, malformed("Credential appears twice")
			}
			haveCred = true
			if err := a.parseCredential(v); err != nil {
				return nil, err
			}
		case "SignedHeaders":
			if haveSigned {
				return nil, malformed("SignedHeaders appears twice")
			}
			haveSigned = true
			if err := a.parseSignedHeaders(v); err != nil {
				return nil, err
			}
		case "Signature":
			if haveSig {
				return nil, malformed("Signature appears twice")
			}
			haveSig = true
			if len(v) != 64 || strings.ToLower(v) != v {
				return nil, malformed("Signature must be 64 lowercase hex digits")
			}
			sig, err := hex.DecodeString(v)
			if err != nil {
				return nil, malformed("Signature must be 64 lowercase hex digits")
			}
			a.Signature = sig
		default:
			return nil, malformed("unknown authorization header part %q", truncate(k))
		}
	}
	switch {
	case !haveCred:
		return nil, malformed("authorization header has no Credential")
	case !haveSigned:
		return nil, malformed("authorization header has no SignedHeaders")
	case !haveSig:
		return nil, malformed("authorization header has no Signature")
	}
	return &a, nil
}

func (a *Authorization) parseCredential(v string) error {
	parts := strings.Split(v, "/")
	if len(parts) != 5 {
		return malformed("Credential must be ACCESS_KEY_ID/DATE/REGION/SERVICE/aws4_request")
	}
	id, date, region, service, term := parts[0], parts[1], parts[2], parts[3], parts[4]
	if id == "" || len(id) > maxKeyID || !isToken(id) {
		return malformed("Credential has an invalid access key id")
	}
	if _, err := time.Parse(dateFormat, date); err != nil || len(date) != 8 {
		return malformed("Credential date must be YYYYMMDD")
	}
	if region == "" || len(region) > maxScopeStr || !isToken(region) {
		return malformed("Credential has an invalid region")
	}
	if service == "" || len(service) > maxScopeStr || !isToken(service) {
		return malformed("Credential has an invalid service")
	}
	if term != terminator {
		return malformed("Credential must end with %s", terminator)
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = id, date, region, service
	return nil
}

func (a *Authorization) parseSignedHeaders(v string) error {
	if v == "" {
		return malformed("SignedHeaders is empty")
	}
	hs := strings.Split(v, ";")
	if len(hs) > maxHeaders {
		return malformed("SignedHeaders lists more than %d headers", maxHeaders)
	}
	for i, h := range hs {
		if h == "" || len(h) > 128 || strings.ToLower(h) != h || !isHeaderName(h) {
			return malformed("SignedHeaders must be lowercase header names separated by ;")
		}
		if i > 0 && hs[i-1] >= h {
			return malformed("SignedHeaders must be sorted and unique")
		}
	}
	a.SignedHeaders = hs
	return nil
}

// isToken accepts the characters AWS uses in key ids, regions and services.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// isHeaderName accepts RFC 7230 token characters.
func isHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// Signed is a request whose signing fields passed Parse.
type Signed struct {
	Authorization
	Time time.Time // X-Amz-Date
}

// Parse reads the signing fields of r and checks what needs no secret: the
// Authorization header's form, X-Amz-Date and its distance from now (at most
// maxSkew, or DefaultMaxSkew when 0), the scope's date, and that host and
// x-amz-date are signed. service, when not empty, must be the scope's
// service. Session tokens (X-Amz-Security-Token) are refused: Coffer's
// access keys are long-term keys.
func Parse(r *http.Request, service string, now time.Time, maxSkew time.Duration) (*Signed, error) {
	h := r.Header.Values("Authorization")
	switch {
	case len(h) == 0 || h[0] == "":
		return nil, ErrMissing
	case len(h) > 1:
		return nil, malformed("more than one Authorization header")
	}
	a, err := ParseAuthorization(h[0])
	if err != nil {
		return nil, err
	}
	if service != "" && a.Service != service {
		return nil, fmt.Errorf("%w: credential should be scoped to the service %q", ErrScope, service)
	}
	if r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, malformed("session tokens (X-Amz-Security-Token) are not supported; use a long-term access key")
	}
	dates := r.Header.Values("X-Amz-Date")
	if len(dates) != 1 {
		return nil, malformed("the request needs exactly one X-Amz-Date header")
	}
	t, err := time.Parse(TimeFormat, dates[0])
	if err != nil {
		return nil, malformed("X-Amz-Date must look like 20060102T150405Z")
	}
	if t.Format(dateFormat) != a.Date {
		return nil, malformed("the credential scope date %s is not the date of X-Amz-Date", a.Date)
	}
	if !a.Signs("host") || !a.Signs("x-amz-date") {
		return nil, malformed("SignedHeaders must include host and x-amz-date")
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return nil, fmt.Errorf("%w: the request time %s is more than %s from the server time %s",
			ErrExpired, t.Format(TimeFormat), maxSkew, now.UTC().Format(TimeFormat))
	}
	return &Signed{Authorization: *a, Time: t}, nil
}

// Verify recomputes the signature of r with secretAccessKey and compares it
// with the one the request carries, in constant time. path is the request
// path exactly as the client sent it (percent-encoded, before any prefix was
// stripped); body is the whole request body.
func (s *Signed) Verify(r *http.Request, path string, body []byte, secretAccessKey string) error {
	payload := PayloadHash(body)
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		if h == "UNSIGNED-PAYLOAD" {
			return malformed("unsigned payloads are not accepted")
		}
		return malformed("X-Amz-Content-Sha256 does not match the body")
	}
	creq, err := CanonicalRequest(r, path, s.SignedHeaders, payload)
	if err != nil {
		return err
	}
	key := SigningKey(secretAccessKey, s.Date, s.Region, s.Service)
	want := hmacSHA256(key, []byte(StringToSign(s.Time, s.Scope(), creq)))
	if !hmac.Equal(want, s.Signature) {
		return ErrMismatch
	}
	return nil
}

// PayloadHash is the hex SHA-256 of body.
func PayloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// CanonicalRequest builds the canonical request of r over the signed
// headers (lowercase, sorted). path is the percent-encoded request path as
// sent; it is encoded once more, as AWS does for every service but S3.
func CanonicalRequest(r *http.Request, path string, signedHeaders []string, payloadHash string) (string, error) {
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uriEncode(path, false))
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for _, name := range signedHeaders {
		values, ok := headerValues(r, name)
		if !ok {
			return "", malformed("signed header %q is not in the request", truncate(name))
		}
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimHeaderValue(v))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), nil
}

// headerValues returns the values of a signed header; Go moves Host and
// Content-Length out of the header map.
func headerValues(r *http.Request, name string) ([]string, bool) {
	switch name {
	case "host":
		if r.Host != "" {
			return []string{r.Host}, true
		}
		if r.URL != nil && r.URL.Host != "" {
			return []string{r.URL.Host}, true
		}
		return nil, false
	case "content-length":
		if v, ok := r.Header["Content-Length"]; ok {
			return v, true
		}
		if r.ContentLength >= 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}, true
		}
		return nil, false
	}
	v, ok := r.Header[http.CanonicalHeaderKey(name)]
	if !ok {
		// Headers set directly in the map may not be canonical.
		for k, vs := range r.Header {
			if strings.EqualFold(k, name) {
				return vs, true
			}
		}
	}
	return v, ok
}

// trimHeaderValue trims a header value and collapses runs of spaces.
func trimHeaderValue(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// canonicalQuery decodes the raw query and re-encodes each name and value,
// sorted by encoded name then encoded value.
func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return "", malformed("the query string does not parse")
	}
	type pair struct{ k, v string }
	var pairs []pair
	for k, vs := range values {
		ek := uriEncode(k, true)
		for _, v := range vs {
			pairs = append(pairs, pair{ek, uriEncode(v, true)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String(), nil
}

// uriEncode percent-encodes every byte but the unreserved characters
// (A-Z a-z 0-9 - . _ ~) and, unless encodeSlash, '/'. Hex digits are upper case.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// StringToSign builds the string to sign from the request time, the
// credential scope and the canonical request.
func StringToSign(t time.Time, scope, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return Algorithm + "\n" + t.UTC().Format(TimeFormat) + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}

// SigningKey derives the signing key: an HMAC-SHA256 chain over the date,
// the region, the service and "aws4_request", keyed first by "AWS4" + secret.
func SigningKey(secretAccessKey, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secretAccessKey), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte(terminator))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// Sign signs r in place the way AWS SDKs do: it sets X-Amz-Date and an
// Authorization header over host, x-amz-date and every other header already
// set on r. path is the percent-encoded path as it will be sent. It exists
// for tests and tools; servers only verify.
func Sign(r *http.Request, path string, body []byte, accessKeyID, secretAccessKey, region, service string, t time.Time) error {
	r.Header.Set("X-Amz-Date", t.UTC().Format(TimeFormat))
	names := []string{"host"}
	if r.ContentLength > 0 && r.Header.Get("Content-Length") == "" {
		names = append(names, "content-length")
	}
	for k := range r.Header {
		lk := strings.ToLower(k)
		switch lk {
		case "authorization", "user-agent", "x-amzn-trace-id", "expect", "transfer-encoding", "host":
			continue
		}
		names = append(names, lk)
	}
	sort.Strings(names)
	names = dedupe(names)
	payload := PayloadHash(body)
	creq, err := CanonicalRequest(r, path, names, payload)
	if err != nil {
		return err
	}
	date := t.UTC().Format(dateFormat)
	scope := date + "/" + region + "/" + service + "/" + terminator
	sig := hmacSHA256(SigningKey(secretAccessKey, date, region, service), []byte(StringToSign(t, scope, creq)))
	r.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		Algorithm, accessKeyID, scope, strings.Join(names, ";"), hex.EncodeToString(sig)))
	return nil
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}
