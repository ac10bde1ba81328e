package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Event is a secret lifecycle event. It never carries a value.
type Event struct {
	Seq     uint64    `json:"seq"`
	Type    string    `json:"type"` // version_created, stage_moved, deleted, restored, destroyed, purged, metadata_updated, gap
	Name    string    `json:"name"`
	Version int       `json:"version"`
	Stage   string    `json:"stage"`
	Time    time.Time `json:"time"`
}

// EventGap is the Type of a synthetic event telling the subscriber that
// events were missed (it resumed from a cursor older than the server keeps):
// it should resynchronise whatever state it derives from events.
const EventGap = "gap"

// maxEventLine bounds one line of the event stream.
const maxEventLine = 64 << 10

// Subscribe streams events for names under prefix that the token may read,
// calling fn for each, in order, until ctx ends or the stream breaks. It
// resumes after the event with id after ("" for from now on) and returns
// the id of the last event delivered, so a caller can reconnect without
// missing any: see FollowEvents for a loop that does.
func (c *Client) Subscribe(ctx context.Context, prefix, after string, fn func(Event)) (string, error) {
	u := *c.base
	u.Path += "/v1/events"
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
	if err != nil {
		return after, err
	}
	if c.token != "" {
		req.Header.Set("X-Coffer-Token", c.token)
	}
	if after != "" {
		req.Header.Set("Last-Event-ID", after)
	}
	req.Header.Set("Accept", "text/event-stream")
	// The stream is long-lived: no client timeout, only ctx.
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return after, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return after, &Error{StatusCode: resp.StatusCode, Code: "http_error", Message: "event stream refused: " + http.StatusText(resp.StatusCode)}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	var id, typ string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			id, typ = "", ""
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			switch typ {
			case "shutdown":
				return after, errors.New("the server is shutting down")
			case "unauthenticated":
				return after, &Error{StatusCode: http.StatusUnauthorized, Code: "unauthenticated", Message: "token expired or revoked"}
			case EventGap:
				fn(Event{Type: EventGap})
				continue
			}
			var e Event
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e); err != nil {
				return after, fmt.Errorf("decode event: %w", err)
			}
			fn(e)
			if id != "" {
				after = id
			}
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return after, err
	}
	return after, ctx.Err()
}

// FollowEvents keeps a subscription open until ctx ends, reconnecting with
// backoff and resuming where it left off, and calls fn for every event. When
// the client has a read cache, each event also drops the cached values of
// its secret, and a gap drops them all, so cached reads follow rotations.
func (c *Client) FollowEvents(ctx context.Context, prefix string, fn func(Event)) error {
	after := ""
	wait := 250 * time.Millisecond
	for {
		last, err := c.Subscribe(ctx, prefix, after, func(e Event) {
			if c.cache != nil {
				if e.Type == EventGap {
					c.ClearCache()
				} else {
					c.InvalidateCache(e.Name)
				}
			}
			if fn != nil {
				fn(e)
			}
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if last != after {
			after, wait = last, 250*time.Millisecond
		}
		if code := ErrorCode(err); code == "unauthenticated" || code == "forbidden" {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}
