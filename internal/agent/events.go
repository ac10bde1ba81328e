package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// streamIdle is how long the event stream may stay silent before the agent
// gives up on it; the server sends a heartbeat every 15 seconds.
const streamIdle = 45 * time.Second

// maxEventLine bounds one line of the event stream.
const maxEventLine = 64 << 10

// event is one secret lifecycle event of GET /v1/events.
type event struct {
	Seq     uint64 `json:"seq"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version int    `json:"version"`
	Stage   string `json:"stage"`
}

// follower follows the server's event stream with the agent's token and
// reports changes. The server sends only events for names the token may
// read. It reconnects with backoff when the stream breaks, resuming from
// the last event id when the same server is likely still there.
type follower struct {
	base    *url.URL
	hc      *http.Client // no overall timeout: the stream is long-lived
	auth    *authenticator
	log     *slog.Logger
	metrics *metrics
	retry   func() *backoff
	idle    time.Duration

	// onEvent is called for each event about a name, in order.
	onEvent func(ev event)
	// onGap is called when the server lost events the agent had not seen.
	onGap func()
	// onSubscribed is called once the stream is open without a cursor:
	// changes made before it may have been missed.
	onSubscribed func()
	// onLost is called when a stream that was open breaks: from then on
	// the agent does not learn of changes.
	onLost func()

	connected atomic.Bool
}

// streamEnd says why a stream ended and so how to reconnect.
type streamEnd int

const (
	endBroken       streamEnd = iota // read error, EOF, idle: resume from the cursor
	endServerGone                    // shutdown, unreachable, unavailable: a new server instance numbers events afresh
	endUnauthorized                  // the token was refused: log in again, then resume
	endRefused                       // the server refused the subscription for another reason
)

// run follows the stream until ctx ends.
func (f *follower) run(ctx context.Context) {
	var (
		cursor    uint64
		hasCursor bool
	)
	b := f.retry()
	for ctx.Err() == nil {
		tok, err := f.auth.waitToken(ctx, "")
		if err != nil {
			return
		}
		from := ""
		if hasCursor {
			from = strconv.FormatUint(cursor, 10)
		}
		opened := false
		end, err := f.stream(ctx, tok, from, func() {
			opened = true
			b.reset()
			if from == "" {
				f.onSubscribed()
			}
		}, func(id uint64) { cursor, hasCursor = id, true })
		if ctx.Err() != nil {
			return
		}
		if opened {
			f.onLost()
		}
		switch end {
		case endServerGone:
			// A new server instance numbers events afresh (from its start
			// time): start from now and refetch rather than trust an old cursor.
			cursor, hasCursor = 0, false
		case endUnauthorized:
			f.auth.reportRefused(tok)
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			f.auth.waitToken(wctx, tok)
			cancel()
		}
		d := b.next()
		lvl := slog.LevelWarn
		if opened {
			lvl = slog.LevelInfo
		}
		f.log.Log(ctx, lvl, "event stream ended; reconnecting", "retry_in", d.Round(time.Millisecond), "error", err)
		if !sleep(ctx, d) {
			return
		}
		f.metrics.reconnect.Inc()
	}
}

// stream opens one subscription and reads it until it ends. opened is
// called when the server accepted it; seen with each event id.
func (f *follower) stream(ctx context.Context, tok, from string, opened func(), seen func(id uint64)) (streamEnd, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	target := *f.base
	target.Path += "/v1/events"
	target.RawPath = ""
	target.RawQuery = "prefix="
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return endRefused, err
	}
	req.Header.Set("X-Coffer-Token", tok)
	req.Header.Set("Accept", "text/event-stream")
	if from != "" {
		req.Header.Set("Last-Event-ID", from)
	}
	watchdog := time.AfterFunc(f.idle, cancel)
	defer watchdog.Stop()
	resp, err := f.hc.Do(req)
	if err != nil {
		return endServerGone, fmt.Errorf("subscribe: %w", scrubURLError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return endUnauthorized, errors.New("subscribe: the server refused the agent's token")
	case unavailable(resp.StatusCode):
		return endServerGone, fmt.Errorf("subscribe: the server answered %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return endRefused, fmt.Errorf("subscribe: the server answered %d", resp.StatusCode)
	}
	f.connected.Store(true)
	defer f.connected.Store(false)
	opened()
	f.log.Info("following the server's event stream", "resumed_after", from)

	r := bufio.NewReaderSize(resp.Body, maxEventLine)
	var typ, id string
	var data []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return endBroken, errors.New("event stream line too long")
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return endBroken, err
		}
		watchdog.Reset(f.idle)
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0: // dispatch
			if typ == "" {
				data, id = data[:0], ""
				continue
			}
			if end, stop := f.dispatch(typ, id, data, seen); stop {
				return end, fmt.Errorf("the server ended the stream with %q", typ)
			}
			typ, id, data = "", "", data[:0]
		case line[0] == ':': // comment: subscribed, heartbeat
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				typ = string(value)
			case "id":
				id = string(value)
			case "data":
				data = append(data, value...)
			}
		}
	}
}

// dispatch handles one event; stop is set when the stream is over.
func (f *follower) dispatch(typ, id string, data []byte, seen func(uint64)) (end streamEnd, stop bool) {
	switch typ {
	case "gap":
		f.log.Warn("the server lost events the agent had not seen; dropping the cache")
		f.onGap()
		return 0, false
	case "unauthenticated":
		return endUnauthorized, true
	case "shutdown":
		return endServerGone, true
	}
	var ev event
	if err := json.Unmarshal(data, &ev); err != nil || ev.Name == "" {
		f.log.Warn("ignoring a malformed event", "type", typ)
	} else {
		if ev.Type == "" {
			ev.Type = typ
		}
		f.metrics.events.Inc()
		f.onEvent(ev)
	}
	if n, err := strconv.ParseUint(id, 10, 64); err == nil {
		seen(n)
	}
	return 0, false
}
