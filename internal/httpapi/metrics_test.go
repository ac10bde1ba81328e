package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func scrape(t *testing.T, h *harness) string {
	t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/sys/metrics", nil)
	req.Header.Set("X-Coffer-Token", h.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics = %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// TestMetricsMove checks that each counter moves when its event happens and
// that no label carries a secret name or a token.
func TestMetricsMove(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.PutText(ctx, "prod/payments/db", "v")
	h.c.PutText(ctx, "toplevelsecretname", "v")
	h.c.Get(ctx, "prod/payments/db", client.Current())
	h.c.WithToken("").Get(ctx, "prod/payments/db", client.Current())
	weak, _ := h.c.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"none"}})
	h.c.WithToken(weak.Token).Get(ctx, "toplevelsecretname", client.Current())
	h.c.LoginUserpass(ctx, "nobody", "wrong password", "")
	h.c.ApplyPolicies(ctx, map[string]string{"oncall": `path "sys/break-glass" { capabilities = ["update"] }`}, false)
	h.c.BreakGlass(ctx, "INC-1: testing that the metric moves", []string{"oncall"}, "")
	out := scrape(t, h)
	for _, want := range []string{
		`coffer_requests_total{code="2xx",op="secret.read"} 1`,
		`coffer_requests_total{code="4xx",op="secret.read"} 2`,
		`coffer_refused_requests_total{prefix="prod",reason="unauthenticated"} 1`,
		`coffer_refused_requests_total{prefix="top-level",reason="forbidden"} 1`,
		`coffer_logins_total{method="userpass",result="failure"} 1`,
		`coffer_break_glass_tokens_issued_total 1`,
		`coffer_request_duration_seconds_bucket{op="secret.write"`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, leak := range []string{"toplevelsecretname", "payments/db", h.root, weak.Token} {
		if strings.Contains(out, leak) {
			t.Errorf("metrics hold %q", leak)
		}
	}
}

// TestMetricsAccess: by default a scrape needs a token; with unauthenticated
// access it needs none, but only from the allowed networks.
func TestMetricsAccess(t *testing.T) {
	get := func(api *httpapi.API) int {
		srv := httptest.NewServer(api)
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/v1/sys/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	h := newHarness(t)
	c := h.core
	if s := get(httpapi.New(httpapi.Config{Core: c})); s != 401 {
		t.Fatalf("default scrape without a token = %d, want 401", s)
	}
	open := httpapi.MetricsAccess{Unauthenticated: true}
	if s := get(httpapi.New(httpapi.Config{Core: c, MetricsAccess: open})); s != 200 {
		t.Fatalf("unauthenticated scrape = %d, want 200", s)
	}
	sealed := core.New(core.Config{Backend: mem.New()})
	if s := get(httpapi.New(httpapi.Config{Core: sealed, MetricsAccess: open})); s != 200 {
		t.Fatalf("unauthenticated scrape of a sealed server = %d, want 200", s)
	}
	open.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if s := get(httpapi.New(httpapi.Config{Core: c, MetricsAccess: open})); s != 403 {
		t.Fatalf("scrape from outside the allowed CIDRs = %d, want 403", s)
	}
	withToken := func(api *httpapi.API, tok string) int {
		srv := httptest.NewServer(api)
		defer srv.Close()
		req, _ := http.NewRequest("GET", srv.URL+"/v1/sys/metrics", nil)
		req.Header.Set("X-Coffer-Token", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := withToken(httpapi.New(httpapi.Config{Core: c, MetricsAccess: open}), h.root); s != 200 {
		t.Fatalf("scrape with a token from outside the allowed CIDRs = %d, want 200", s)
	}
	if s := withToken(httpapi.New(httpapi.Config{Core: c, MetricsAccess: open}), "cof_bogus"); s != 401 {
		t.Fatalf("scrape with a bad token from outside the allowed CIDRs = %d, want 401", s)
	}
	open.AllowedCIDRs = append(open.AllowedCIDRs, netip.MustParsePrefix("127.0.0.0/8"))
	if s := get(httpapi.New(httpapi.Config{Core: c, MetricsAccess: open})); s != 200 {
		t.Fatalf("scrape from an allowed CIDR = %d, want 200", s)
	}
}
