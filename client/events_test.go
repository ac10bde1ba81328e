package client_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// TestFollowEventsInvalidatesCache: a cached read follows a rotation made
// by another client, through the event stream.
func TestFollowEventsInvalidatesCache(t *testing.T) {
	c := core.New(core.Config{Backend: mem.New()})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Core: c}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // runs first: the stream must end before srv.Close can
	res, _ := c.Init(ctx, 1, 1)
	c.Unseal(ctx, res.Keys[0])
	writer, _ := client.New(client.Config{Address: srv.URL, Token: res.RootToken})
	reader, _ := client.New(client.Config{Address: srv.URL, Token: res.RootToken, CacheTTL: time.Hour})
	writer.PutText(ctx, "app/db", "v1")
	if s, _ := reader.Get(ctx, "app/db", client.Current()); s.Text() != "v1" {
		t.Fatal("first read")
	}
	seen := make(chan client.Event, 10)
	go reader.FollowEvents(ctx, "app/", func(e client.Event) { seen <- e })
	time.Sleep(100 * time.Millisecond) // let the subscription start (it begins at "now")
	writer.PutText(ctx, "app/db", "v2")
	select {
	case e := <-seen:
		if e.Type != "version_created" || e.Name != "app/db" || e.Version != 2 {
			t.Fatalf("event = %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	if s, _ := reader.Get(ctx, "app/db", client.Current()); s.Text() != "v2" {
		t.Fatalf("cached read after the event = %q, want v2", s.Text())
	}
}
