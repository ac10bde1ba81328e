package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/logredact"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsHoldNoSecrets drives every route, with a debug-level logger, using
// distinctive secret values, tokens and credentials, and checks that none of
// them reaches the operational log.
func TestLogsHoldNoSecrets(t *testing.T) {
	var buf syncBuffer
	log := slog.New(logredact.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	c := core.New(core.Config{Backend: mem.New(), Logger: log})
	api := httpapi.New(httpapi.Config{Core: c, Logger: log})
	srv := httptest.NewServer(api)
	defer srv.Close()
	res, err := c.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Unseal(ctx, res.Keys[0])
	h := &harness{core: c, api: api, srv: srv, root: res.RootToken, keys: res.Keys}
	h.c, _ = client.New(client.Config{Address: srv.URL, Token: res.RootToken})

	const value = "SECRET-VALUE-7f3a9c"
	secrets := []string{value, res.RootToken, res.Keys[0], "correct horse battery"}
	h.c.PutText(ctx, "prod/db", value)
	child, _ := h.c.CreateToken(ctx, client.TokenCreateInput{})
	secrets = append(secrets, child.Token)
	h.do(t, h.root, "PUT", "/v1/auth/userpass/users/alice", map[string]any{"password": "correct horse battery"}, nil)
	h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": "correct horse battery"}, nil)
	h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": value}, nil)
	for _, rt := range api.Routes() {
		if rt.Op == "events.subscribe" {
			continue // streams until the client leaves; it logs nothing per event
		}
		path := concrete(rt.Pattern)
		for _, tok := range []string{h.root, child.Token, "cof_" + strings.Repeat("A", 49)} {
			h.raw(t, rt.Method, path, tok, `{"value":"`+value+`","token":"`+child.Token+`","key":"`+res.Keys[0]+`"}`)
		}
	}
	out := buf.String()
	if out == "" {
		t.Fatal("nothing was logged; the test proves nothing")
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("the log holds %q", s[:8]+"...")
		}
	}
}
