package client

import (
	"context"
	"time"
)

// SetSleep replaces the wait between retries, e.g. to record it.
func SetSleep(c *Client, sleep func(ctx context.Context, d time.Duration) error) {
	c.retry.sleep = sleep
}

// SetCacheClock replaces the cache's clock.
func SetCacheClock(c *Client, now func() time.Time) { c.cache.now = now }

// SetCacheMax replaces the cache's size bound.
func SetCacheMax(c *Client, n int) { c.cache.max = n }

// CacheLen returns the number of cached entries.
func CacheLen(c *Client) int { return c.cache.len() }
