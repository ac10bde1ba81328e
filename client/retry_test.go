package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
)

// reply is one scripted answer; status 0 means a success for the route.
type reply struct {
	status     int
	code       string // error code in the body; "" for a body without one
	retryAfter string
}

// scripted answers with replies in order, then with success, and records
// the request bodies it saw.
type scripted struct {
	mu      sync.Mutex
	replies []reply  // guarded by mu
	bodies  []string // guarded by mu
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	var rep reply
	if len(s.replies) > 0 {
		rep, s.replies = s.replies[0], s.replies[1:]
	}
	s.mu.Unlock()
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	switch {
	case rep.status != 0 && rep.code != "":
		writeErr(w, rep.status, rep.code)
	case rep.status != 0:
		http.Error(w, "upstream trouble", rep.status) // a proxy's plain-text answer
	case r.Method == http.MethodGet:
		json.NewEncoder(w).Encode(map[string]any{"name": "x", "version": 1, "type": "text", "value": "v"})
	default:
		json.NewEncoder(w).Encode(map[string]any{"name": "x", "version": 1})
	}
}

func (s *scripted) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// waits records the retry waits of a client instead of sleeping.
type waits struct {
	mu sync.Mutex
	ds []time.Duration // guarded by mu
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ds = append(w.ds, d)
	return ctx.Err()
}

func (w *waits) get() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.ds...)
}

// newRecordingClient returns a client of addr whose retry waits are
// recorded, not slept.
func newRecordingClient(t testing.TB, addr string, cfg client.Config) (*client.Client, *waits) {
	t.Helper()
	cfg.Address = addr
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	client.SetSleep(c, w.sleep)
	return c, w
}

func TestRetry(t *testing.T) {
	get := func(ctx context.Context, c *client.Client) error {
		_, err := c.Get(ctx, "x", client.Current())
		return err
	}
	put := func(ctx context.Context, c *client.Client) error {
		_, err := c.PutText(ctx, "x", "value")
		return err
	}
	tests := []struct {
		name      string
		call      func(context.Context, *client.Client) error
		replies   []reply
		wantReqs  int
		wantCode  string // error code of the result; "" for success
		wantWaits []time.Duration
	}{
		{name: "GET 503 then 200", call: get, replies: []reply{{status: 503}}, wantReqs: 2},
		{name: "GET 502 and 504 then 200", call: get, replies: []reply{{status: 502}, {status: 504}}, wantReqs: 3},
		{name: "GET 429 honours Retry-After", call: get, replies: []reply{{status: 429, code: "throttled", retryAfter: "1"}}, wantReqs: 2, wantWaits: []time.Duration{time.Second}},
		{name: "GET Retry-After capped by MaxRetryWait", call: get, replies: []reply{{status: 503, code: "sealed", retryAfter: "3600"}}, wantReqs: 2, wantWaits: []time.Duration{30 * time.Second}},
		{name: "GET gives up after MaxRetries", call: get, replies: []reply{{status: 503}, {status: 503}, {status: 503}, {status: 503}}, wantReqs: 4, wantCode: "http_error"},
		{name: "GET 503 not_initialized not retried", call: get, replies: []reply{{status: 503, code: "not_initialized"}}, wantReqs: 1, wantCode: "not_initialized"},
		{name: "GET 500 not retried", call: get, replies: []reply{{status: 500, code: "internal"}}, wantReqs: 1, wantCode: "internal"},
		{name: "GET 404 not retried", call: get, replies: []reply{{status: 404, code: "not_found"}}, wantReqs: 1, wantCode: "not_found"},
		{name: "PUT 503 sealed retried", call: put, replies: []reply{{status: 503, code: "sealed", retryAfter: "5"}}, wantReqs: 2, wantWaits: []time.Duration{5 * time.Second}},
		{name: "PUT 503 audit_unavailable retried", call: put, replies: []reply{{status: 503, code: "audit_unavailable"}}, wantReqs: 2},
		{name: "PUT 429 throttled retried", call: put, replies: []reply{{status: 429, code: "throttled", retryAfter: "1"}}, wantReqs: 2, wantWaits: []time.Duration{time.Second}},
		{name: "PUT 429 locked not retried", call: put, replies: []reply{{status: 429, code: "locked"}}, wantReqs: 1, wantCode: "locked"},
		{name: "PUT proxy 503 not retried", call: put, replies: []reply{{status: 503}}, wantReqs: 1, wantCode: "http_error"},
		{name: "PUT 502 not retried", call: put, replies: []reply{{status: 502}}, wantReqs: 1, wantCode: "http_error"},
		{name: "PUT 504 not retried", call: put, replies: []reply{{status: 504}}, wantReqs: 1, wantCode: "http_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripted{replies: tt.replies}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c, w := newRecordingClient(t, srv.URL, client.Config{})
			err := tt.call(context.Background(), c)
			if got := client.ErrorCode(err); got != tt.wantCode || (tt.wantCode == "" && err != nil) {
				t.Errorf("error = %v, want code %q", err, tt.wantCode)
			}
			reqs := s.requests()
			if len(reqs) != tt.wantReqs {
				t.Errorf("server saw %d requests, want %d", len(reqs), tt.wantReqs)
			}
			for i, b := range reqs {
				if b != reqs[0] {
					t.Errorf("attempt %d sent body %q, want %q as the first", i+1, b, reqs[0])
				}
			}
			if got := w.get(); len(got) != tt.wantReqs-1 {
				t.Errorf("waited %v, want %d waits", got, tt.wantReqs-1)
			} else if tt.wantWaits != nil && !equalDurations(got, tt.wantWaits) {
				t.Errorf("waited %v, want %v", got, tt.wantWaits)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRetryBackoffBounds: without Retry-After, the nth wait is at most
// MinRetryWait·2ⁿ⁻¹ and never more than MaxRetryWait.
func TestRetryBackoffBounds(t *testing.T) {
	s := &scripted{replies: []reply{{status: 502}, {status: 502}, {status: 502}, {status: 502}, {status: 502}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, w := newRecordingClient(t, srv.URL, client.Config{MaxRetries: 5, MinRetryWait: 100 * time.Millisecond, MaxRetryWait: 300 * time.Millisecond})
	if _, err := c.Get(context.Background(), "x", client.Current()); err != nil {
		t.Fatal(err)
	}
	ceilings := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	got := w.get()
	if len(got) != len(ceilings) {
		t.Fatalf("waited %v, want %d waits", got, len(ceilings))
	}
	for i, d := range got {
		if d < 0 || d > ceilings[i] {
			t.Errorf("wait %d = %v, want within [0, %v]", i+1, d, ceilings[i])
		}
	}
}

func TestRetryDisabled(t *testing.T) {
	s := &scripted{replies: []reply{{status: 503}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := newRecordingClient(t, srv.URL, client.Config{MaxRetries: -1})
	if _, err := c.Get(context.Background(), "x", client.Current()); client.ErrorCode(err) != "http_error" {
		t.Fatalf("Get = %v, want the 503", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Fatalf("server saw %d requests with retries disabled, want 1", n)
	}
}

// TestRetryRespectsDeadline: a Retry-After longer than the time the
// context has left ends the call at once with the server's error.
func TestRetryRespectsDeadline(t *testing.T) {
	s := &scripted{replies: []reply{{status: 503, code: "sealed", retryAfter: "20"}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, w := newRecordingClient(t, srv.URL, client.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "x", client.Current()); client.ErrorCode(err) != "sealed" {
		t.Fatalf("Get = %v, want sealed", err)
	}
	if got := w.get(); len(got) != 0 {
		t.Fatalf("waited %v past the deadline", got)
	}
}

// TestRetryCanceledWhileWaiting: a context canceled during a wait ends the
// call with an error that is both the cancellation and the last failure.
func TestRetryCanceledWhileWaiting(t *testing.T) {
	s := &scripted{replies: []reply{{status: 503, code: "sealed"}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := newRecordingClient(t, srv.URL, client.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	client.SetSleep(c, func(context.Context, time.Duration) error { cancel(); return ctx.Err() })
	_, err := c.Get(ctx, "x", client.Current())
	if !errors.Is(err, context.Canceled) || client.ErrorCode(err) != "sealed" {
		t.Fatalf("Get = %v, want context.Canceled wrapping sealed", err)
	}
}

// TestRetryAmbiguousNetworkError: the server reads the request and drops
// the connection without answering. The write may have happened, so a PUT
// is not retried; a GET is.
func TestRetryAmbiguousNetworkError(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		mu.Lock()
		n++
		mu.Unlock()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }

	c, w := newRecordingClient(t, srv.URL, client.Config{})
	if _, err := c.PutText(context.Background(), "x", "v"); err == nil {
		t.Fatal("PutText on a dropped connection succeeded")
	}
	if got := count(); got != 1 || len(w.get()) != 0 {
		t.Fatalf("PutText: server saw %d requests after %d waits, want 1 and none", got, len(w.get()))
	}

	c, w = newRecordingClient(t, srv.URL, client.Config{})
	if _, err := c.Get(context.Background(), "x", client.Current()); err == nil {
		t.Fatal("Get on a dropped connection succeeded")
	}
	if got := len(w.get()); got != 3 {
		t.Fatalf("Get waited %d times on dropped connections, want 3 retries", got)
	}
}

// TestRetryWriteBeforeSending: a refused connection means the server never
// saw the request, so even a PUT is retried.
func TestRetryWriteBeforeSending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	c, w := newRecordingClient(t, addr, client.Config{})
	_, err = c.PutText(context.Background(), "x", "v")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("PutText to a closed port = %v, want connection refused", err)
	}
	if got := len(w.get()); got != 3 {
		t.Fatalf("PutText waited %d times, want 3 retries", got)
	}
}

// TestHealthNotRetried: Health's 503 is an answer, not a failure.
func TestHealthNotRetried(t *testing.T) {
	s := &scripted{replies: []reply{{status: 503}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, w := newRecordingClient(t, srv.URL, client.Config{})
	h, err := c.Health(context.Background())
	if err != nil || h.StatusCode != 503 {
		t.Fatalf("Health = %+v, %v, want status 503", h, err)
	}
	if n := len(s.requests()); n != 1 || len(w.get()) != 0 {
		t.Fatalf("Health sent %d requests, want 1", n)
	}
}

// TestRetryAfterHTTPDate: Retry-After may also be a date.
func TestRetryAfterHTTPDate(t *testing.T) {
	when := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	s := &scripted{replies: []reply{{status: 429, code: "throttled", retryAfter: when}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, w := newRecordingClient(t, srv.URL, client.Config{MaxRetryWait: 2 * time.Second})
	if _, err := c.Get(context.Background(), "x", client.Current()); err != nil {
		t.Fatal(err)
	}
	if got := w.get(); len(got) != 1 || got[0] != 2*time.Second {
		t.Fatalf("waited %v, want [2s] (an hour, capped)", got)
	}
}
