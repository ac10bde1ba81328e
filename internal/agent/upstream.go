package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// maxAnswer bounds a server answer the agent keeps (values are at most 64 KiB).
const maxAnswer = 1 << 20

// upstream reads secrets from the server with the agent's token and keeps
// the server's answer byte for byte.
type upstream struct {
	base *url.URL
	hc   *http.Client // no overall timeout: callers bound requests with ctx
	auth *authenticator
}

// get reads one secret. A 401 makes the agent log in again and the read is
// tried once more with the new token. The error means no answer came.
func (u *upstream) get(ctx context.Context, s selector) (answer, error) {
	tok := u.auth.token()
	if tok == "" {
		var err error
		if tok, err = u.auth.waitToken(ctx, ""); err != nil {
			return answer{}, err
		}
	}
	ans, err := u.read(ctx, s, tok)
	if err != nil || ans.status != http.StatusUnauthorized {
		return ans, err
	}
	u.auth.reportRefused(tok)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if tok, err = u.auth.waitToken(wctx, tok); err != nil {
		return ans, nil // answer the 401: the agent cannot log in now
	}
	return u.read(ctx, s, tok)
}

func (u *upstream) read(ctx context.Context, s selector, tok string) (answer, error) {
	target := *u.base
	target.Path += "/v1/secrets/" + s.name
	target.RawPath = ""
	if s.version != "" || s.stage != "" {
		q := url.Values{}
		if s.version != "" {
			q.Set("version", s.version)
		}
		if s.stage != "" {
			q.Set("stage", s.stage)
		}
		target.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("X-Coffer-Token", tok)
	resp, err := u.hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("read from the server: %w", scrubURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return answer{}, fmt.Errorf("read the server's answer: %w", err)
	}
	if len(body) > maxAnswer {
		return answer{}, fmt.Errorf("the server's answer is larger than %d bytes", maxAnswer)
	}
	return answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: body}, nil
}

// scrubURLError drops the query of a *url.Error's URL; it holds no
// credential, but keeps logs about one read short.
func scrubURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// refresher fetches keys again in the background, one at a time, so an
// event storm or a resynchronisation does not flood the server. Keys
// waiting are deduplicated. Safe for concurrent use.
type refresher struct {
	mu      sync.Mutex            // guards pending
	pending map[selector]struct{} // waiting to be fetched
	wake    chan struct{}         // buffered 1: pending is not empty
}

func newRefresher() *refresher {
	return &refresher{pending: map[selector]struct{}{}, wake: make(chan struct{}, 1)}
}

// add schedules selectors; it never blocks.
func (r *refresher) add(sels ...selector) {
	if len(sels) == 0 {
		return
	}
	r.mu.Lock()
	for _, s := range sels {
		r.pending[s] = struct{}{}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *refresher) take() (selector, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.pending {
		delete(r.pending, s)
		return s, true
	}
	return selector{}, false
}

// run refreshes scheduled keys through c until ctx ends.
func (r *refresher) run(ctx context.Context, c *cache) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		for {
			s, ok := r.take()
			if !ok || ctx.Err() != nil {
				break
			}
			c.refetch(ctx, s)
		}
	}
}
