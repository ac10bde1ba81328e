package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/secret"
)

// heartbeat keeps idle event streams (and the proxies in front of them) alive.
const heartbeat = 15 * time.Second

func (a *API) eventRoutes() []route {
	return []route{
		{"GET", "/v1/events", Op{"events.subscribe", capCustom}, authenticated, a.subscribe, func(r *request) string { return r.URL.Query().Get("prefix") }},
	}
}

// subscribe streams secret lifecycle events as server-sent events: each
// has an id (its seq, usable as Last-Event-ID or ?cursor= to resume), a
// type and a JSON body. Only events for names the caller may read are sent.
// A cursor older than the server's buffer yields an "event: gap" first,
// telling the client to resynchronise its state.
func (a *API) subscribe(r *request) (any, error) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if err := secret.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	cursorText := q.Get("cursor")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		cursorText = id
	}
	var cursor uint64
	switch cursorText {
	case "":
		cursor = a.core.Events.Last() // from now on
	default:
		n, err := strconv.ParseUint(cursorText, 10, 64)
		if err != nil {
			return nil, badRequest("cursor must be an event id")
		}
		cursor = n
	}
	key := r.principal.LimitKey()
	if !a.openStream(key) {
		return nil, &apiError{http.StatusTooManyRequests, "too_many_streams",
			fmt.Sprintf("at most %d event streams may be open per identity (or token family), and %d on the server; close one", maxStreamsPerKey, maxStreams)}
	}
	r.onDone = func() { a.closeStream(key) }
	return rawResponse(func(w http.ResponseWriter) int {
		a.stream(r, w, prefix, cursor)
		return http.StatusOK
	}), nil
}

// Every open stream is woken by every event: their number is bounded.
const (
	maxStreamsPerKey = 16
	maxStreams       = 1024
)

// openStream takes a stream slot for key, if one is free.
func (a *API) openStream(key string) bool {
	a.streamsMu.Lock()
	defer a.streamsMu.Unlock()
	if a.streamsAll >= maxStreams || a.streams[key] >= maxStreamsPerKey {
		return false
	}
	if a.streams == nil {
		a.streams = map[string]int{}
	}
	a.streams[key]++
	a.streamsAll++
	return true
}

// closeStream gives back a slot taken by openStream.
func (a *API) closeStream(key string) {
	a.streamsMu.Lock()
	defer a.streamsMu.Unlock()
	if a.streams[key]--; a.streams[key] <= 0 {
		delete(a.streams, key)
	}
	a.streamsAll--
}

func (a *API) stream(r *request, w http.ResponseWriter, prefix string, cursor uint64) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(": subscribed at %d\n\n", cursor) {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	tok := requestToken(r.Request)
	for {
		// A token revoked or expired mid-stream ends the stream.
		if _, err := a.core.Tokens.Lookup(r.ctx, tok); err != nil {
			write("event: unauthenticated\ndata: {}\n\n")
			return
		}
		evs, gap, more, closed := a.core.Events.Read(cursor, 256)
		if gap && !write("event: gap\ndata: {\"resync\":true}\n\n") {
			return
		}
		for _, e := range evs {
			cursor = e.Seq
			if !strings.HasPrefix(e.Name, prefix) || a.authorize(r, "events.subscribe", e.Name, "read") != nil {
				continue
			}
			body, _ := json.Marshal(e)
			if !write("id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, body) {
				return
			}
		}
		if len(evs) > 0 {
			continue
		}
		if closed {
			write("event: shutdown\ndata: {}\n\n")
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-more:
		case <-tick.C:
			if !write(": heartbeat\n\n") {
				return
			}
		}
	}
}
