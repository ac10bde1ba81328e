package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
)

// readEvents reads SSE frames until it has n "event:" lines or times out.
func readEvents(t *testing.T, sc *bufio.Scanner, n int) []string {
	t.Helper()
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ev, id string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				got = append(got, ev+"#"+id+" "+strings.TrimPrefix(line, "data: "))
				if len(got) == n {
					return
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("got %d events, want %d: %v", len(got), n, got)
	}
	return got
}

func subscribe(t *testing.T, h *harness, tok, query string, lastID string) (*bufio.Scanner, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/v1/events"+query, nil)
	req.Header.Set("X-Coffer-Token", tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("subscribe = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return bufio.NewScanner(resp.Body), func() { cancel(); resp.Body.Close() }
}

func TestEventsStream(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.ApplyPolicies(ctx, map[string]string{"pay": `path "prod/payments/*" { capabilities = ["read"] }`}, false)
	app, _ := h.c.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"pay"}})

	all, stopAll := subscribe(t, h, h.root, "?prefix=prod/", "")
	defer stopAll()
	mine, stopMine := subscribe(t, h, app.Token, "", "")
	h.c.PutText(ctx, "prod/orders/db", "x")   // the app may not read it
	h.c.PutText(ctx, "prod/payments/db", "1") // it may
	h.c.PutText(ctx, "dev/other", "x")        // outside the root's prefix
	h.c.PutText(ctx, "prod/payments/db", "2")
	h.c.MoveStage(ctx, "prod/payments/db", "current", 1, 2)
	h.c.Delete(ctx, "prod/payments/db", client.DeleteOptions{})

	got := readEvents(t, all, 5)
	for i, want := range []string{"version_created#", "version_created#", "version_created#", "stage_moved#", "deleted#"} {
		if !strings.HasPrefix(got[i], want) {
			t.Fatalf("root event %d = %q, want %s...", i, got[i], want)
		}
	}
	if strings.Contains(strings.Join(got, "\n"), "dev/other") {
		t.Fatal("prefix filter let dev/other through")
	}
	appGot := readEvents(t, mine, 4)
	if strings.Contains(strings.Join(appGot, "\n"), "orders") {
		t.Fatalf("the app saw an event for a name it may not read: %v", appGot)
	}
	stopMine()

	// Resume after a disconnect from the last id seen: nothing is missed.
	lastID := strings.SplitN(strings.SplitN(appGot[1], "#", 2)[1], " ", 2)[0]
	again, stopAgain := subscribe(t, h, app.Token, "", lastID)
	defer stopAgain()
	rest := readEvents(t, again, 2)
	if !strings.HasPrefix(rest[0], "stage_moved#") || !strings.HasPrefix(rest[1], "deleted#") {
		t.Fatalf("resumed events = %v", rest)
	}
	if strings.Contains(rest[0], "value") {
		t.Fatal("an event carries a value")
	}
}

// TestEventStreamsBounded: every open stream is woken by every event, so a
// token (with the tokens it made) holds at most 16 at once; closing one
// frees its slot.
func TestEventStreamsBounded(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	app, _ := h.c.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"default"}})
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	for i := 0; i < 16; i++ {
		_, stop := subscribe(t, h, app.Token, "", "")
		stops = append(stops, stop)
	}
	child, _ := h.c.WithToken(app.Token).CreateToken(ctx, client.TokenCreateInput{})
	for _, tok := range []string{app.Token, child.Token} {
		s, body := h.raw(t, "GET", "/v1/events", tok, "")
		if s != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(body), "too_many_streams") {
			t.Fatalf("17th stream = %d %v, want 429 too_many_streams", s, body)
		}
	}
	stops[0]()
	stops = stops[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest("GET", h.srv.URL+"/v1/events", nil)
		req.Header.Set("X-Coffer-Token", app.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusOK {
			res.Body.Close()
			break
		}
		res.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's slot was not freed: %d", res.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Other callers are not affected.
	_, stop := subscribe(t, h, h.root, "", "")
	stops = append(stops, stop)
}
