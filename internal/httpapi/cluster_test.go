package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/coffer-dev/coffer/client"
)

// TestClusterAccess: the node list needs read on sys/cluster; the public
// leader answer says only whether this node leads.
func TestClusterAccess(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.c.WritePolicy(ctx, "cluster-reader", `path "sys/cluster" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	reader, err := h.c.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"cluster-reader"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.c.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, tok string
		want      int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"token without sys/cluster", other.Token, http.StatusForbidden},
		{"reader", reader.Token, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := h.raw(t, "GET", "/v1/sys/cluster", tc.tok, "")
			if code != tc.want {
				t.Fatalf("GET /v1/sys/cluster = %d %v, want %d", code, body, tc.want)
			}
			if code == http.StatusOK && body["leader"] != "local" {
				t.Fatalf("GET /v1/sys/cluster = %v, want the single server as leader", body)
			}
		})
	}
	code, body := h.raw(t, "GET", "/v1/sys/leader", "", "")
	if code != http.StatusOK || body["clustered"] != false || body["leader"] != true || len(body) != 2 {
		t.Fatalf("GET /v1/sys/leader = %d %v, want 200 {clustered: false, leader: true}", code, body)
	}
}
