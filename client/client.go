// Package client is the Go SDK for Coffer's native API. The coffer CLI and
// agent use it too. A Client is safe for concurrent use.
//
//	c, err := client.New(client.Config{Address: "http://127.0.0.1:8210", Token: os.Getenv("COFFER_TOKEN")})
//	s, err := c.Get(ctx, "prod/db/password", client.Current())
//	fmt.Println(s.Text())
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultAddress is where a dev server listens.
const DefaultAddress = "http://127.0.0.1:8210"

// Config configures a Client. Zero values mean defaults.
type Config struct {
	Address    string // base URL; default DefaultAddress
	Token      string // sent as X-Coffer-Token
	CACertFile string // PEM bundle to trust for https instead of the system roots
	// ClientCertFile and ClientKeyFile present a TLS client certificate
	// (for the cert auth method).
	ClientCertFile, ClientKeyFile string
	Timeout                       time.Duration // per attempt; default 60s
	HTTPClient                    *http.Client  // overrides CACertFile and Timeout

	// MaxRetries is how many times a failed request is tried again: 0
	// means 3, -1 disables retries. Only failures that cannot have
	// changed anything are retried; see Client.
	MaxRetries int
	// MinRetryWait and MaxRetryWait shape the backoff between attempts:
	// the nth retry waits a random time up to MinRetryWait·2ⁿ⁻¹, never
	// more than MaxRetryWait. A server's Retry-After replaces the random
	// wait, also capped by MaxRetryWait. Defaults: 250ms and 30s.
	MinRetryWait, MaxRetryWait time.Duration

	// CacheTTL turns on a read cache for Get: a value is served from
	// memory for up to CacheTTL after it was read. 0 disables it.
	CacheTTL time.Duration

	// UserAgent names the caller in the server's audit records; default
	// DefaultUserAgent.
	UserAgent string
}

// DefaultUserAgent is the User-Agent of a Client whose Config sets none.
const DefaultUserAgent = "coffer-go-client"

// Client talks to one Coffer server. It is safe for concurrent use.
//
// A request that fails with 429, 502, 503 or 504 or a network error is
// retried with exponential backoff and full jitter, honouring Retry-After,
// as long as the context's deadline leaves time for the wait. GET and HEAD
// are always retried. Writes are retried only when the server cannot have
// acted on them: no connection was ever made, or the server answered 429
// "throttled" or 503 "sealed" or "audit_unavailable", which it sends before
// doing anything. A write that fails after it may have reached the server
// is never retried; give Put an IdempotencyToken and retry it yourself.
// After giving up, the error of the last attempt is returned.
type Client struct {
	base  *url.URL
	token string
	agent string // User-Agent
	hc    *http.Client
	retry retryPolicy

	// cache is nil when Config.CacheTTL is 0. WithToken gives the copy
	// its own, since what a token may read depends on the token.
	cache *cache
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	u, err := url.Parse(strings.TrimRight(cfg.Address, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("address %q must look like https://host:port", cfg.Address)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		if cfg.Timeout == 0 {
			cfg.Timeout = 60 * time.Second
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CACertFile != "" {
			pem, err := os.ReadFile(cfg.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("read CA certificate: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", cfg.CACertFile)
			}
			tlsCfg.RootCAs = pool
		}
		if cfg.ClientCertFile != "" || cfg.ClientKeyFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.ClientCertFile, cfg.ClientKeyFile)
			if err != nil {
				return nil, fmt.Errorf("load client certificate: %w", err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tlsCfg
		hc = &http.Client{Timeout: cfg.Timeout, Transport: tr}
	}
	agent := cfg.UserAgent
	if agent == "" {
		agent = DefaultUserAgent
	}
	c := &Client{base: u, token: cfg.Token, agent: agent, hc: hc, retry: newRetryPolicy(cfg)}
	if cfg.CacheTTL > 0 {
		c.cache = newCache(cfg.CacheTTL, maxCacheEntries)
	}
	return c, nil
}

// WithToken returns a copy of c that sends token. The copy shares c's
// connections but not its cache.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	if c.cache != nil {
		cp.cache = newCache(c.cache.ttl, c.cache.max)
	}
	return &cp
}

// Address returns the server's base URL.
func (c *Client) Address() string { return c.base.String() }

// Error is an error answered by the server.
type Error struct {
	StatusCode int
	Code       string // stable machine-readable code, e.g. "not_found"
	Message    string
	RequestID  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.StatusCode, e.Code)
}

// ErrorCode returns the server's error code of err, or "" when err is not an *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsNotFound reports whether err means the secret or version does not exist.
func IsNotFound(err error) bool {
	c := ErrorCode(err)
	return c == "not_found" || c == "version_not_found"
}

// do sends a request, retrying as the Client's doc comment says, and
// decodes a JSON answer into out (which may be nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	return c.send(ctx, call{method: method, path: path, query: query, in: in, out: out})
}

// call is one API request.
type call struct {
	method, path string
	query        url.Values
	in, out      any
	// statusIsAnswer: an error status is the answer, not a failure to
	// retry (Health); transport errors are still retried.
	statusIsAnswer bool
}

// send runs r: it marshals the body once so that every attempt sends the
// same bytes.
func (c *Client) send(ctx context.Context, r call) error {
	u := *c.base
	u.Path += r.path
	u.RawPath = ""
	if r.query != nil {
		u.RawQuery = r.query.Encode()
	}
	var body []byte
	if r.in != nil {
		b, err := json.Marshal(r.in)
		if err != nil {
			return err
		}
		body = b
	}
	for attempt := 1; ; attempt++ {
		res, err := c.attempt(ctx, r.method, u.String(), body, r.in != nil)
		if err == nil && res.status < 400 {
			if r.out == nil || len(res.raw) == 0 {
				return nil
			}
			if err := json.Unmarshal(res.raw, r.out); err != nil {
				return fmt.Errorf("decode response: %w", err)
			}
			return nil
		}
		if err == nil {
			err = res.apiError()
		}
		var ae *Error
		if r.statusIsAnswer && errors.As(err, &ae) {
			if ae.Code == "http_error" && r.out != nil {
				// Not an error envelope: the body is the answer (health's 503).
				_ = json.Unmarshal(res.raw, r.out)
			}
			return err
		}
		if attempt > c.retry.max || ctx.Err() != nil || !retryable(r.method, res, err) {
			return err
		}
		wait := c.retry.wait(attempt, res)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // waiting would outlive the caller's deadline
		}
		if serr := c.retry.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w; last attempt: %w", serr, err)
		}
	}
}

// response is what one attempt got back.
type response struct {
	status int
	header http.Header
	raw    []byte
	sent   bool // a connection was made, so the server may have seen the request
}

// attempt sends one request. It returns a non-nil response, with sent
// telling whether the request may have reached the server, also when err
// is a transport error.
func (c *Client) attempt(ctx context.Context, method, u string, body []byte, hasBody bool) (*response, error) {
	res := &response{}
	var connected atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }}
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, u, rd)
	if err != nil {
		return res, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Coffer-Token", c.token)
	}
	req.Header.Set("User-Agent", c.agent)
	resp, err := c.hc.Do(req)
	res.sent = err == nil || connected.Load()
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	res.status, res.header = resp.StatusCode, resp.Header
	res.raw, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return res, fmt.Errorf("read response: %w", err)
	}
	return res, nil
}

// apiError turns an error status into an *Error.
func (r *response) apiError() *Error {
	var eb struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if json.Unmarshal(r.raw, &eb) != nil || eb.Error.Code == "" {
		return &Error{StatusCode: r.status, Code: "http_error", Message: http.StatusText(r.status)}
	}
	return &Error{StatusCode: r.status, Code: eb.Error.Code, Message: eb.Error.Message, RequestID: eb.Error.RequestID}
}

// Token returns the token the client sends.
func (c *Client) Token() string { return c.token }
