package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/auth/awskey"
	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// TestAWSKeyRoutes drives the access-key admin routes through the API's
// pipeline on their own mux, as table() will once they are registered.
func TestAWSKeyRoutes(t *testing.T) {
	ctx := context.Background()
	c := core.New(core.Config{Backend: mem.New()})
	res, err := c.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	keys := awskey.New(mem.New(), nil)
	a := New(Config{Core: c})
	mux := http.NewServeMux()
	for _, rt := range a.awsKeyRoutes(keys) {
		mux.Handle(rt.method+" "+rt.pattern, a.wrap(rt))
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := c.Policies.Put(ctx, "keys-ro", `path "auth/awskey/keys" { capabilities = ["list"] }`, "test"); err != nil {
		t.Fatal(err)
	}
	ro, _, err := c.Tokens.Create(ctx, token.CreateInput{DisplayName: "ro", Policies: []string{"keys-ro"}})
	if err != nil {
		t.Fatal(err)
	}

	call := func(method, path, tok, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("X-Coffer-Token", tok)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	status, out := call("POST", "/v1/auth/awskey/keys", res.RootToken, `{"name":"payments","policies":["payments-read"],"ttl":"720h"}`)
	if status != http.StatusCreated {
		t.Fatalf("create = %d %v", status, out)
	}
	id, _ := out["access_key_id"].(string)
	secret, _ := out["secret_access_key"].(string)
	if !awskey.ValidID(id) || len(secret) != 40 || out["key"].(map[string]any)["expires_at"] == nil ||
		out["key"].(map[string]any)["created_by"] != "root" {
		t.Fatalf("create = %v", out)
	}

	status, out = call("GET", "/v1/auth/awskey/keys", ro, "")
	list, _ := out["keys"].([]any)
	if status != http.StatusOK || len(list) != 1 || list[0].(map[string]any)["access_key_id"] != id {
		t.Fatalf("list = %d %v", status, out)
	}
	raw, _ := json.Marshal(out)
	if strings.Contains(string(raw), secret) {
		t.Fatal("list shows the secret access key")
	}

	for _, tc := range []struct {
		name, method, path, tok, body string
		status                        int
	}{
		{"no token", "POST", "/v1/auth/awskey/keys", "", `{"name":"x"}`, http.StatusUnauthorized},
		{"list-only token creates", "POST", "/v1/auth/awskey/keys", ro, `{"name":"x"}`, http.StatusForbidden},
		{"list-only token deletes", "DELETE", "/v1/auth/awskey/keys/" + id, ro, "", http.StatusForbidden},
		{"root policy", "POST", "/v1/auth/awskey/keys", res.RootToken, `{"name":"x","policies":["root"]}`, http.StatusBadRequest},
		{"bad name", "POST", "/v1/auth/awskey/keys", res.RootToken, `{"name":"a/b"}`, http.StatusBadRequest},
		{"unknown field", "POST", "/v1/auth/awskey/keys", res.RootToken, `{"name":"a","secret":"s"}`, http.StatusBadRequest},
		{"delete", "DELETE", "/v1/auth/awskey/keys/" + id, res.RootToken, "", http.StatusNoContent},
		{"delete again", "DELETE", "/v1/auth/awskey/keys/" + id, res.RootToken, "", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, out := call(tc.method, tc.path, tc.tok, tc.body); status != tc.status {
				t.Fatalf("%s %s = %d %v, want %d", tc.method, tc.path, status, out, tc.status)
			}
		})
	}
}
