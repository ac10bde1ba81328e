package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// TestAgentJWTRereadsTheTokenFile: the Kubernetes sidecar case. The
// projected service-account token is rotated on disk; the next login uses
// the new one.
func TestAgentJWTRereadsTheTokenFile(t *testing.T) {
	t.Parallel()
	c, cr := startCoffer(t, "", "")
	ctx := context.Background()
	cl := c.client()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(jwks) }))
	t.Cleanup(issuer.Close)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	sign := func(pod string) string {
		now := time.Now()
		tok, err := josejwt.Signed(signer).Claims(map[string]any{
			"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:shop:app", "aud": "coffer",
			"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "pod": pod,
		}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if err := cl.Do(ctx, "PUT", "/v1/auth/jwt/config", map[string]any{"jwks_url": issuer.URL, "bound_issuer": "https://kubernetes.default.svc"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, "PUT", "/v1/auth/jwt/role/app", map[string]any{
		"bound_audiences": []string{"coffer"}, "user_claim": "sub", "claim_mappings": map[string]string{"pod": "pod"},
		"token_policies": []string{"app"}, "token_ttl": "10m",
	}, nil); err != nil {
		t.Fatal(err)
	}
	cl.PutText(ctx, "app/db", "pw1")
	jwtFile := filepath.Join(cr.dir, "sa-token")
	os.WriteFile(jwtFile, []byte(sign("pod-a")), 0o600)
	ta := startAgent(t, fmt.Sprintf(`
server = %q
auto_auth {
  method   = "jwt"
  role     = "app"
  jwt_file = %q
}
cache {
  listen_tcp = "127.0.0.1:0"
  listen_unix = %q
}
metrics_listen = "127.0.0.1:0"
`, c.url(), jwtFile, filepath.Join(cr.dir, "agent.sock")))
	pod := func() string {
		info, err := cl.WithToken(ta.auth.token()).TokenSelf(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Meta["pod"]
	}
	if p := pod(); p != "pod-a" {
		t.Fatalf("first login's pod = %q", p)
	}
	// Kubernetes rotates the token; the server then refuses the agent's
	// Coffer token (here: revoked), and the agent logs in with the new JWT.
	os.WriteFile(jwtFile, []byte(sign("pod-b")), 0o600)
	if err := cl.WithToken(ta.auth.token()).RevokeSelf(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _, body := ta.get(t, ta.tcp, "/v1/secrets/app/db"); st != 200 || valueOf(t, body) != "pw1" {
		t.Fatalf("read after the revocation = %d %s", st, body)
	}
	if p := pod(); p != "pod-b" {
		t.Fatalf("second login's pod = %q, want the rotated JWT's pod-b", p)
	}
}
