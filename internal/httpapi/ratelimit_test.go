package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func TestRateLimitPerIdentity(t *testing.T) {
	ctx := context.Background()
	c := core.New(core.Config{Backend: mem.New(), RateLimits: []ratelimit.Rule{{Prefix: "prod/", IdentityRate: 1, IdentityBurst: 3}}})
	api := httpapi.New(httpapi.Config{Core: c})
	srv := httptest.NewServer(api)
	defer srv.Close()
	res, _ := c.Init(ctx, 1, 1)
	c.Unseal(ctx, res.Keys[0])
	h := &harness{core: c, api: api, srv: srv, root: res.RootToken}
	h.c, _ = client.New(client.Config{Address: srv.URL, Token: res.RootToken})
	h.c.PutText(ctx, "prod/db", "v")
	h.c.PutText(ctx, "dev/db", "v")
	var limited *http.Response
	for i := 0; i < 10 && limited == nil; i++ {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/secrets/prod/db", nil)
		req.Header.Set("X-Coffer-Token", res.RootToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp
		}
	}
	if limited == nil || limited.Header.Get("Retry-After") == "" {
		t.Fatalf("no 429 with Retry-After after a burst over the limit: %+v", limited)
	}
	// Other prefixes and other identities are not affected.
	if _, err := h.c.Get(ctx, "dev/db", client.Current()); err != nil {
		t.Fatalf("dev read = %v", err)
	}
	other, _, _ := c.Tokens.Create(ctx, token.CreateInput{DisplayName: "other", Method: "root", Policies: []string{"root"}})
	if _, err := h.c.WithToken(other).Get(ctx, "prod/db", client.Current()); err != nil {
		t.Fatalf("another identity's read = %v", err)
	}
	// Tokens the throttled one creates, children or orphans, share its
	// bucket: making tokens is not a way around the limit.
	noRetry, _ := client.New(client.Config{Address: srv.URL, Token: res.RootToken, MaxRetries: -1})
	for _, orphan := range []bool{false, true} {
		child, err := h.c.CreateToken(ctx, client.TokenCreateInput{Orphan: orphan})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := noRetry.WithToken(child.Token).Get(ctx, "prod/db", client.Current()); client.ErrorCode(err) != "throttled" {
			t.Errorf("read with a new token (orphan %v) of the throttled one = %v, want throttled", orphan, err)
		}
	}
	if out := scrape(t, h); !strings.Contains(out, `coffer_refused_requests_total{prefix="prod",reason="throttled"}`) {
		t.Error("throttled requests not counted")
	}
}
