package client

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// defaultWatchInterval is Watch's polling interval when none is given.
const defaultWatchInterval = 30 * time.Second

// Watch calls fn with the version of the secret name that sel picks now,
// then again each time sel picks a different version, until ctx is done.
// fn runs on Watch's goroutine, one call at a time; a slow fn delays the
// next check. The Secret passed to fn is fn's to keep.
//
// Watch polls the server every interval (30s when interval <= 0), reading
// past the cache; an implementation on the server's event stream will
// replace polling without changing this contract. Errors that may pass
// (network errors, 5xx, 408, 429, after the Client's own retries) are
// retried at the next interval. Watch returns ctx.Err() when ctx is done,
// or the first error that waiting will not fix, such as not_found,
// forbidden or unauthenticated; the caller may call Watch again.
func (c *Client) Watch(ctx context.Context, name string, sel Selector, interval time.Duration, fn func(*Secret)) error {
	if interval <= 0 {
		interval = defaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	seen := 0 // versions start at 1
	for {
		s, err := c.get(ctx, name, sel)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && permanent(err):
			return err
		case err == nil && s.Version != seen:
			if seen != 0 {
				c.InvalidateCache(name) // the change was made elsewhere
			}
			seen = s.Version
			fn(s)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// permanent reports whether err is a refusal that waiting will not change.
func permanent(err error) bool {
	var ae *Error
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return ae.StatusCode >= 400 && ae.StatusCode < 500
}
