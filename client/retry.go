package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Retry defaults; see Config.
const (
	defaultMaxRetries   = 3
	defaultMinRetryWait = 250 * time.Millisecond
	defaultMaxRetryWait = 30 * time.Second
)

// retryPolicy decides how long to wait between attempts.
type retryPolicy struct {
	max      int // retries after the first attempt; 0: none
	min, cap time.Duration
	// sleep waits d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	// now reads the clock for Retry-After dates.
	now func() time.Time
}

func newRetryPolicy(cfg Config) retryPolicy {
	p := retryPolicy{max: cfg.MaxRetries, min: cfg.MinRetryWait, cap: cfg.MaxRetryWait, sleep: sleepCtx, now: time.Now}
	switch {
	case p.max == 0:
		p.max = defaultMaxRetries
	case p.max < 0:
		p.max = 0
	}
	if p.min <= 0 {
		p.min = defaultMinRetryWait
	}
	if p.cap <= 0 {
		p.cap = defaultMaxRetryWait
	}
	if p.min > p.cap {
		p.min = p.cap
	}
	return p
}

// wait returns how long to wait before retry number n (1-based) after
// res: the server's Retry-After if it sent one, else a random duration up
// to min·2ⁿ⁻¹ (full jitter); never more than cap.
func (p retryPolicy) wait(n int, res *response) time.Duration {
	if res != nil && res.header != nil {
		if d, ok := retryAfter(res.header.Get("Retry-After"), p.now()); ok {
			return min(d, p.cap)
		}
	}
	ceil := p.cap
	if shift := n - 1; shift < 32 && p.min<<shift > 0 && p.min<<shift < p.cap {
		ceil = p.min << shift
	}
	return rand.N(ceil + 1)
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, 1<<20)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idempotent reports whether sending method twice has the effect of
// sending it once.
func idempotent(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// retryable reports whether a failed attempt may be tried again. err is
// the attempt's transport error or the *Error its status produced.
func retryable(method string, res *response, err error) bool {
	var ae *Error
	if !errors.As(err, &ae) {
		return transientNetError(err) && (idempotent(method) || !res.sent)
	}
	switch ae.StatusCode {
	case http.StatusTooManyRequests:
		return idempotent(method) || ae.Code == "throttled"
	case http.StatusServiceUnavailable:
		if ae.Code == "not_initialized" { // waiting will not initialize it
			return false
		}
		// The server refuses sealed and audit-less requests before acting.
		return idempotent(method) || ae.Code == "sealed" || ae.Code == "audit_unavailable"
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return idempotent(method) // a proxy may have forwarded the request
	}
	return false
}

// transientNetError reports whether a transport error may go away by
// itself: refused or reset connections, timeouts, early EOFs. TLS
// verification failures, unknown hosts and malformed requests do not.
func transientNetError(err error) bool {
	if err == nil {
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // *url.Error is itself a net.Error; judge what it wraps
	}
	var (
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		dnsErr   *net.DNSError
		opErr    *net.OpError
		netErr   net.Error
		alertErr tls.AlertError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &recErr), errors.As(err, &alertErr):
		return false
	case errors.As(err, &dnsErr):
		return !dnsErr.IsNotFound
	case errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error"):
		return false // a TLS alert: the handshake was refused
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return errors.As(err, &netErr)
}
