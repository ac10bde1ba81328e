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
	"net/url"
	"os"
	"strings"
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
	Timeout                       time.Duration // per request; default 60s
	HTTPClient                    *http.Client  // overrides CACertFile and Timeout
}

// Client talks to one Coffer server.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
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
	return &Client{base: u, token: cfg.Token, hc: hc}, nil
}

// WithToken returns a copy of c that sends token.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
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

// do sends a request and decodes a JSON answer into out (which may be nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := *c.base
	u.Path += path
	u.RawPath = ""
	if query != nil {
		u.RawQuery = query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Coffer-Token", c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 400 {
		var eb struct {
			Error struct {
				Code      string `json:"code"`
				Message   string `json:"message"`
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &eb) != nil || eb.Error.Code == "" {
			return &Error{StatusCode: resp.StatusCode, Code: "http_error", Message: http.StatusText(resp.StatusCode)}
		}
		return &Error{StatusCode: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, RequestID: eb.Error.RequestID}
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
