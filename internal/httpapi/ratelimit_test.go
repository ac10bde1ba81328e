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
	// Tokens a throttled token creates share its bucket: making children
	// is not a way around the limit.
	c.Policies.Put(ctx, "reader", `path "prod/*" { capabilities = ["read"] }
path "auth/token/create" { capabilities = ["update"] }`, "test")
	app, _ := h.c.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"reader"}})
	noRetry, _ := client.New(client.Config{Address: srv.URL, Token: app.Token, MaxRetries: -1})
	var err error
	for i := 0; i < 10 && client.ErrorCode(err) != "throttled"; i++ {
		_, err = noRetry.Get(ctx, "prod/db", client.Current())
	}
	if client.ErrorCode(err) != "throttled" {
		t.Fatalf("the app token was never throttled: %v", err)
	}
	child, err := noRetry.CreateToken(ctx, client.TokenCreateInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noRetry.WithToken(child.Token).Get(ctx, "prod/db", client.Current()); client.ErrorCode(err) != "throttled" {
		t.Errorf("read with a child of the throttled token = %v, want throttled", err)
	}
	if out := scrape(t, h); !strings.Contains(out, `coffer_refused_requests_total{prefix="prod",reason="throttled"}`) {
		t.Error("throttled requests not counted")
	}
}
