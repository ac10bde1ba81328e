package vaultapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/coffer-dev/coffer/internal/metrics"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/vaultapi"
)

type harness struct {
	core    *core.Core
	api     *vaultapi.API
	srv     *httptest.Server
	root    string
	metrics *metrics.Metrics
}

// newHarness starts an initialized, unsealed core with the API mounted
// under /vault/, as the server mounts it.
func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, core.Config{Backend: mem.New()})
}

// newHarnessWith is newHarness on a core built from cfg.
func newHarnessWith(t testing.TB, cfg core.Config) *harness {
	t.Helper()
	ctx := context.Background()
	c := core.New(cfg)
	m := metrics.New()
	api := vaultapi.New(vaultapi.Config{Core: c, Metrics: m})
	mux := http.NewServeMux()
	mux.Handle("/vault/", http.StripPrefix("/vault", api))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	res, err := c.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	return &harness{core: c, api: api, srv: srv, root: res.RootToken, metrics: m}
}

// do sends one request and decodes a JSON answer (nil for an empty body).
func (h *harness) do(t testing.TB, method, path, tok, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+"/vault"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("X-Vault-Token", tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) == 0 {
		return resp.StatusCode, nil
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
	}
	return resp.StatusCode, out
}

// put writes a JSON value through the domain, as the native API would.
func (h *harness) put(t testing.TB, name, typ, value string) {
	t.Helper()
	if _, err := h.core.Secrets.Put(context.Background(), secret.PutInput{Name: name, Type: typ, Value: []byte(value)}); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

// tokenWith issues a token holding one policy with the given source.
func (h *harness) tokenWith(t testing.TB, name, src string) string {
	t.Helper()
	ctx := context.Background()
	if err := h.core.Policies.Put(ctx, name, src, "test"); err != nil {
		t.Fatal(err)
	}
	tok, _, err := h.core.Tokens.Create(ctx, token.CreateInput{DisplayName: name, Method: "token", Policies: []string{name}, Renewable: true})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func errorsOf(t testing.TB, body map[string]any) []string {
	t.Helper()
	raw, ok := body["errors"]
	if !ok {
		t.Fatalf("body %v has no errors field", body)
	}
	list, ok := raw.([]any)
	if !ok {
		t.Fatalf("errors = %#v, want a list", raw)
	}
	out := []string{}
	for _, e := range list {
		out = append(out, e.(string))
	}
	return out
}

func TestErrorShapes(t *testing.T) {
	h := newHarness(t)
	h.put(t, "app/db", secret.TypeJSON, `{"password":"p1"}`)
	weak := h.tokenWith(t, "weak", `path "other/*" { capabilities = ["read"] }`)
	for _, tc := range []struct {
		name, method, path, tok, body string
		hdr                           []string
		status                        int
		errors                        []string // nil: only check that errors is a list
		contains                      string
	}{
		{name: "no token", method: "GET", path: "/v1/secret/data/app/db", status: 403, errors: []string{"permission denied"}},
		{name: "malformed token", method: "GET", path: "/v1/secret/data/app/db", tok: "nope", status: 403, errors: []string{"permission denied"}},
		{name: "denied", method: "GET", path: "/v1/secret/data/app/db", tok: "weak", status: 403, contains: "permission denied"},
		{name: "missing secret", method: "GET", path: "/v1/secret/data/app/none", tok: "root", status: 404, errors: []string{}},
		{name: "missing version", method: "GET", path: "/v1/secret/data/app/db?version=9", tok: "root", status: 404, errors: []string{}},
		{name: "bad version", method: "GET", path: "/v1/secret/data/app/db?version=x", tok: "root", status: 400, contains: "version"},
		{name: "reserved name", method: "GET", path: "/v1/secret/data/sys/x", tok: "root", status: 400, contains: "name"},
		{name: "bad character", method: "GET", path: "/v1/secret/data/a%20b", tok: "root", status: 400, contains: "name"},
		{name: "empty name", method: "GET", path: "/v1/secret/data/", tok: "root", status: 400, contains: "name"},
		{name: "bad JSON", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{"data":`, status: 400, contains: "not valid JSON"},
		{name: "no data", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{}`, status: 400, errors: []string{"no data provided"}},
		{name: "data not an object", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{"data":[1]}`, status: 400, contains: "object"},
		{name: "unknown field", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{"data":{},"extra":1}`, status: 400, contains: `"extra"`},
		{name: "unknown option", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{"data":{},"options":{"max":1}}`, status: 400, contains: `"max"`},
		{name: "bad cas", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{"data":{},"options":{"cas":"one"}}`, status: 400, contains: "integer"},
		{name: "cas mismatch", method: "POST", path: "/v1/secret/data/app/db", tok: "root", body: `{"data":{"a":1},"options":{"cas":7}}`, status: 400, errors: []string{"check-and-set parameter did not match the current version"}},
		{name: "value too large", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{"data":{"a":"` + strings.Repeat("x", 70<<10) + `"}}`, status: 400, contains: "limit"},
		{name: "body too large", method: "POST", path: "/v1/secret/data/app/x", tok: "root", body: `{"data":{"a":"` + strings.Repeat("x", 2<<20) + `"}}`, status: 413, contains: "larger"},
		{name: "patch without merge-patch type", method: "PATCH", path: "/v1/secret/data/app/db", tok: "root", body: `{"data":{"a":1}}`, status: 415, contains: "merge-patch"},
		{name: "unsupported method", method: "HEAD", path: "/v1/secret/destroy/app/db", tok: "root", status: 405},
		{name: "unsupported method with body", method: "PUT", path: "/v1/secret/metadata", tok: "root", body: `{}`, status: 405, errors: []string{"unsupported operation"}},
		{name: "unknown path", method: "GET", path: "/v1/kv/data/app/db", tok: "root", status: 404, contains: "no handler for route"},
		{name: "delete older versions only", method: "POST", path: "/v1/secret/delete/app/db", tok: "root", body: `{"versions":[0]}`, status: 400, contains: "positive"},
		{name: "no versions", method: "POST", path: "/v1/secret/destroy/app/db", tok: "root", body: `{"versions":[]}`, status: 400, errors: []string{"no version number provided"}},
		{name: "cas_required", method: "POST", path: "/v1/secret/metadata/app/db", tok: "root", body: `{"cas_required":true}`, status: 400, contains: "cas_required"},
		{name: "delete_version_after", method: "POST", path: "/v1/secret/metadata/app/db", tok: "root", body: `{"delete_version_after":"1h"}`, status: 400, contains: "delete_version_after"},
		{name: "metadata of a missing secret", method: "POST", path: "/v1/secret/metadata/app/none", tok: "root", body: `{"max_versions":3}`, status: 404, contains: "write data/ first"},
		{name: "custom metadata object value", method: "POST", path: "/v1/secret/metadata/app/db", tok: "root", body: `{"custom_metadata":{"a":{}}}`, status: 400, contains: "custom_metadata"},
		{name: "too many tags", method: "POST", path: "/v1/secret/metadata/app/db", tok: "root", body: tooManyTags(), status: 400, contains: "tags"},
		{name: "empty list", method: "LIST", path: "/v1/secret/metadata/nothing", tok: "root", status: 404, errors: []string{}},
		{name: "custom token id", method: "POST", path: "/v1/auth/token/create", tok: "root", body: `{"id":"mine"}`, status: 400, contains: "custom token ids"},
		{name: "batch token", method: "POST", path: "/v1/auth/token/create", tok: "root", body: `{"type":"batch"}`, status: 400, contains: "service tokens"},
		{name: "bad ttl", method: "POST", path: "/v1/auth/token/create", tok: "root", body: `{"ttl":"soon"}`, status: 400, contains: "duration"},
		{name: "bad approle login", method: "POST", path: "/v1/auth/approle/login", body: `{"role_id":"x","secret_id":"y"}`, status: 400, errors: []string{"invalid role or secret ID"}},
		{name: "bad health code", method: "GET", path: "/v1/sys/health?sealedcode=abc", status: 400, contains: "sealedcode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := map[string]string{"root": h.root, "weak": weak}[tc.tok]
			if tok == "" {
				tok = tc.tok
			}
			status, body := h.do(t, tc.method, tc.path, tok, tc.body, tc.hdr...)
			if status != tc.status {
				t.Fatalf("%s %s = %d %v, want %d", tc.method, tc.path, status, body, tc.status)
			}
			if tc.method == "HEAD" {
				return
			}
			errs := errorsOf(t, body)
			if tc.errors != nil && !slices.Equal(errs, tc.errors) {
				t.Errorf("errors = %q, want %q", errs, tc.errors)
			}
			if tc.contains != "" && (len(errs) != 1 || !strings.Contains(errs[0], tc.contains)) {
				t.Errorf("errors = %q, want one containing %q", errs, tc.contains)
			}
			for _, e := range errs {
				if strings.Contains(e, h.root) || strings.Contains(e, "p1") {
					t.Errorf("error %q leaks a token or a value", e)
				}
			}
		})
	}
}

// TestDotSegmentsRefused calls the handler directly: an outer ServeMux
// would clean the path and redirect before it gets there.
func TestDotSegmentsRefused(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/v1/secret/data/a/./b", "/v1/secret/data/a/../b", "/v1/secret/data/a//b", "/v1/secret/data/a/.."} {
		req := httptest.NewRequest("GET", "http://x"+p, nil)
		req.URL.Path = p // keep the segments NewRequest would keep anyway
		req.Header.Set("X-Vault-Token", h.root)
		w := httptest.NewRecorder()
		h.api.ServeHTTP(w, req)
		if w.Code != 400 || !strings.Contains(w.Body.String(), "segments") {
			t.Errorf("GET %s = %d %s, want 400 naming the segments", p, w.Code, w.Body)
		}
	}
}

func tooManyTags() string {
	m := map[string]string{}
	for i := range 51 {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	b, _ := json.Marshal(map[string]any{"custom_metadata": m})
	return string(b)
}

func TestSealedRefusesAllButPublic(t *testing.T) {
	h := newHarness(t)
	h.core.Seal()
	for _, rt := range h.api.Routes() {
		if rt.Public {
			continue
		}
		status, body := h.do(t, rt.Method, concrete(rt), h.root, `{}`)
		if status != 503 || !slices.Equal(errorsOf(t, body), []string{"Vault is sealed"}) {
			t.Errorf("%s %s while sealed = %d %v, want 503 Vault is sealed", rt.Method, rt.Pattern, status, body)
		}
	}
	status, body := h.do(t, "POST", "/v1/auth/approle/login", "", `{"role_id":"a","secret_id":"b"}`)
	if status != 503 {
		t.Errorf("approle login while sealed = %d %v, want 503", status, body)
	}
}

// concrete turns a route into a request path.
func concrete(rt vaultapi.RouteInfo) string {
	p := strings.ReplaceAll(rt.Pattern, "{path...}", "app/db")
	if rt.Query != "" {
		p += "?" + rt.Query
	}
	return p
}

// TestEveryRouteRefuses walks every registered route with no token, a
// malformed one, an unknown well-formed one and an under-privileged one,
// and expects a refusal each time.
func TestEveryRouteRefuses(t *testing.T) {
	h := newHarness(t)
	h.put(t, "app/db", secret.TypeJSON, `{"password":"p1"}`)
	weak := h.tokenWith(t, "weak", `path "other/*" { capabilities = ["read"] }`)
	unknown, _ := token.Generate()
	// Routes any valid token may use on itself, tested elsewhere.
	self := map[string]bool{"vault.token.lookup-self": true, "vault.token.renew-self": true, "vault.token.create": true, "vault.sys.mount-info": true}
	for _, rt := range h.api.Routes() {
		if rt.Public {
			continue
		}
		for _, tc := range []struct {
			name, tok string
		}{{"no token", ""}, {"malformed token", "not-a-token"}, {"unknown token", unknown}, {"under-privileged token", weak}} {
			if tc.tok == weak && self[rt.Op] {
				continue
			}
			status, body := h.do(t, rt.Method, concrete(rt), tc.tok, `{"data":{"a":1},"versions":[1]}`)
			want := 403
			if rt.Op == "vault.kv.list" && tc.tok == weak {
				want = 404 // filtered to nothing rather than refused
			}
			if status != want {
				t.Errorf("%s %s with %s = %d %v, want %d", rt.Method, concrete(rt), tc.name, status, body, want)
			}
		}
	}
	// Nothing changed.
	v, err := h.core.Secrets.Get(context.Background(), "app/db", secret.Selector{})
	if err != nil || v.Version != 1 || string(v.Data) != `{"password":"p1"}` {
		t.Fatalf("after refusals: %+v, %v", v, err)
	}
}

func TestListCollapsesFolders(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"a", "a/b", "a/c/d", "a/c/e", "a-b", "a0", "b/x/y/z", "c", "team/one", "team/two/x"} {
		h.put(t, n, secret.TypeText, "v")
	}
	h.put(t, "gone/x", secret.TypeText, "v")
	if _, err := h.core.Secrets.Delete(context.Background(), "gone/x", secret.DeleteInput{}); err != nil {
		t.Fatal(err)
	}
	// Enough names in one folder to span several list pages.
	for i := range 2100 {
		h.put(t, fmt.Sprintf("big/%04d", i), secret.TypeText, "v")
	}
	// team/ is visible to the narrow token only through team/two/*.
	narrow := h.tokenWith(t, "narrow", `
path "team/two/*" { capabilities = ["list"] }
path "a/c/d" { capabilities = ["list"] }
`)
	for _, tc := range []struct {
		name, method, path, tok string
		want                    []string // nil: 404
	}{
		{"root", "LIST", "/v1/secret/metadata/", "root", []string{"a", "a-b", "a/", "a0", "b/", "big/", "c", "gone/", "team/"}},
		{"root without slash via GET", "GET", "/v1/secret/metadata?list=true", "root", []string{"a", "a-b", "a/", "a0", "b/", "big/", "c", "gone/", "team/"}},
		{"folder", "LIST", "/v1/secret/metadata/a/", "root", []string{"b", "c/"}},
		{"folder without slash", "GET", "/v1/secret/metadata/a?list=true", "root", []string{"b", "c/"}},
		{"deep folder", "LIST", "/v1/secret/metadata/b/x", "root", []string{"y/"}},
		{"big folder", "LIST", "/v1/secret/metadata/big", "root", nil},
		{"a name, not a folder", "LIST", "/v1/secret/metadata/c", "root", nil},
		{"missing folder", "LIST", "/v1/secret/metadata/nope", "root", nil},
		{"narrow root", "LIST", "/v1/secret/metadata/", "narrow", []string{"a/", "team/"}},
		{"narrow team", "LIST", "/v1/secret/metadata/team", "narrow", []string{"two/"}},
		{"narrow a", "LIST", "/v1/secret/metadata/a", "narrow", []string{"c/"}},
		{"narrow denied folder", "LIST", "/v1/secret/metadata/b", "narrow", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := map[string]string{"root": h.root, "narrow": narrow}[tc.tok]
			status, body := h.do(t, tc.method, tc.path, tok, "")
			if tc.want == nil && tc.name != "big folder" {
				if status != 404 || len(errorsOf(t, body)) != 0 {
					t.Fatalf("list = %d %v, want 404 with no errors", status, body)
				}
				return
			}
			if status != 200 {
				t.Fatalf("list = %d %v", status, body)
			}
			var keys []string
			for _, k := range body["data"].(map[string]any)["keys"].([]any) {
				keys = append(keys, k.(string))
			}
			if tc.name == "big folder" {
				if len(keys) != 2100 || keys[0] != "0000" || keys[2099] != "2099" {
					t.Fatalf("big folder: %d keys, first %q", len(keys), keys[:3])
				}
				return
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("keys = %q, want %q", keys, tc.want)
			}
		})
	}
}

// TestNoRedirects: behind the server's /vault prefix a ServeMux redirect
// would point outside the Vault API, so there must be none.
func TestNoRedirects(t *testing.T) {
	h := newHarness(t)
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, rt := range h.api.Routes() {
		root, ok := strings.CutSuffix(rt.Pattern, "/{path...}")
		if !ok {
			continue
		}
		for _, p := range []string{root, root + "/"} {
			req, _ := http.NewRequest(rt.Method, h.srv.URL+"/vault"+p, nil)
			req.Header.Set("X-Vault-Token", h.root)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 && resp.StatusCode < 400 {
				t.Errorf("%s %s = %d to %q", rt.Method, p, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	}
}
