package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/pquerna/otp/totp"

	"github.com/coffer-dev/coffer/client"
)

// do sends a JSON request with the client's token and decodes the answer.
func (h *harness) do(t testing.TB, tok, method, path string, in, out any) int {
	t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	status, m := h.raw(t, method, path, tok, string(body))
	if out != nil {
		b, _ := json.Marshal(m)
		json.Unmarshal(b, out)
	}
	return status
}

type loginAnswer struct {
	Token string `json:"token"`
	Info  struct {
		Accessor    string            `json:"accessor"`
		DisplayName string            `json:"display_name"`
		Policies    []string          `json:"policies"`
		Meta        map[string]string `json:"meta"`
		MFA         bool              `json:"mfa"`
	} `json:"info"`
}

func TestAppRoleLogin(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.ApplyPolicies(ctx, map[string]string{"payments": `path "prod/payments/*" { capabilities = ["read"] }`}, false)
	h.c.PutText(ctx, "prod/payments/db", "pw")
	h.c.PutText(ctx, "prod/orders/db", "other")
	if s := h.do(t, h.root, "PUT", "/v1/auth/approle/role/payments", map[string]any{
		"token_policies": []string{"payments"}, "token_ttl": "20m", "secret_id_ttl": "1h", "secret_id_num_uses": 2,
		"secret_id_bound_cidrs": []string{"127.0.0.0/8"},
	}, nil); s != 200 {
		t.Fatalf("put role = %d", s)
	}
	var rid struct {
		RoleID string `json:"role_id"`
	}
	h.do(t, h.root, "GET", "/v1/auth/approle/role/payments/role-id", nil, &rid)
	var sid struct {
		SecretID string `json:"secret_id"`
	}
	if s := h.do(t, h.root, "POST", "/v1/auth/approle/role/payments/secret-id", map[string]any{}, &sid); s != 201 || sid.SecretID == "" {
		t.Fatalf("secret-id = %d %+v", s, sid)
	}
	var l loginAnswer
	if s := h.do(t, "", "POST", "/v1/auth/approle/login", map[string]string{"role_id": rid.RoleID, "secret_id": sid.SecretID}, &l); s != 200 {
		t.Fatalf("login = %d", s)
	}
	if l.Info.DisplayName != "approle/payments" || l.Info.Policies[0] != "payments" {
		t.Fatalf("login token = %+v", l.Info)
	}
	app := h.c.WithToken(l.Token)
	if s, err := app.Get(ctx, "prod/payments/db", client.Current()); err != nil || s.Text() != "pw" {
		t.Fatalf("app read = %v, %v", s, err)
	}
	if _, err := app.Get(ctx, "prod/orders/db", client.Current()); client.ErrorCode(err) != "forbidden" {
		t.Fatalf("app read other = %v", err)
	}
	// Two uses: the second login works, the third is refused.
	h.do(t, "", "POST", "/v1/auth/approle/login", map[string]string{"role_id": rid.RoleID, "secret_id": sid.SecretID}, nil)
	var refused struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if s := h.do(t, "", "POST", "/v1/auth/approle/login", map[string]string{"role_id": rid.RoleID, "secret_id": sid.SecretID}, &refused); s != 401 {
		t.Fatalf("third login = %d, want 401", s)
	}
	// The refusal speaks of the credentials, not of a token the caller never sent.
	if refused.Error.Code != "unauthenticated" || refused.Error.Message != "invalid role_id or secret_id" {
		t.Fatalf("third login refused with %+v", refused.Error)
	}
}

func TestJWTLoginWithLocalIssuer(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jwks)
	}))
	defer issuer.Close()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1").WithType("JWT"))
	sign := func(claims map[string]any) string {
		tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if s := h.do(t, h.root, "PUT", "/v1/auth/jwt/config", map[string]any{"jwks_url": issuer.URL, "bound_issuer": "https://token.actions.githubusercontent.com"}, nil); s != 200 {
		t.Fatalf("jwt config = %d", s)
	}
	h.c.ApplyPolicies(ctx, map[string]string{"ci": `path "ci/{{identity.meta.repository_name}}/*" { capabilities = ["read"] }`}, false)
	if s := h.do(t, h.root, "PUT", "/v1/auth/jwt/role/deploy", map[string]any{
		"bound_audiences": []string{"coffer"}, "bound_claims": map[string][]string{"repository": {"acme/*"}, "ref": {"refs/heads/main"}},
		"claim_mappings": map[string]string{"repository_name": "repository_name"}, "user_claim": "repository",
		"token_policies": []string{"ci"}, "token_ttl": "10m",
	}, nil); s != 200 {
		t.Fatalf("jwt role = %d", s)
	}
	h.c.PutText(ctx, "ci/shop/deploy-key", "k")
	h.c.PutText(ctx, "ci/bank/deploy-key", "k2")
	now := time.Now()
	good := map[string]any{"iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/shop:ref:refs/heads/main",
		"aud": "coffer", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "repository": "acme/shop",
		"repository_name": "shop", "ref": "refs/heads/main"}
	var l loginAnswer
	if s := h.do(t, "", "POST", "/v1/auth/jwt/login", map[string]string{"role": "deploy", "jwt": sign(good)}, &l); s != 200 {
		t.Fatalf("jwt login = %d", s)
	}
	ci := h.c.WithToken(l.Token)
	if _, err := ci.Get(ctx, "ci/shop/deploy-key", client.Current()); err != nil {
		t.Fatalf("ci read own = %v", err)
	}
	if _, err := ci.Get(ctx, "ci/bank/deploy-key", client.Current()); client.ErrorCode(err) != "forbidden" {
		t.Fatalf("ci read other repo = %v", err)
	}
	for name, mutate := range map[string]func(map[string]any){
		"branch not bound": func(c map[string]any) { c["ref"] = "refs/heads/dev" },
		"wrong audience":   func(c map[string]any) { c["aud"] = "other" },
		"expired":          func(c map[string]any) { c["exp"] = now.Add(-10 * time.Minute).Unix() },
		"other org":        func(c map[string]any) { c["repository"] = "evil/shop" },
	} {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		mutate(c)
		if s := h.do(t, "", "POST", "/v1/auth/jwt/login", map[string]string{"role": "deploy", "jwt": sign(c)}, nil); s != 401 {
			t.Errorf("%s: login = %d, want 401", name, s)
		}
	}
}

func TestUserpassMFAAndLockout(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.ApplyPolicies(ctx, map[string]string{"dba": `
path "prod/db/*" {
  capabilities = ["read"]
  condition {
    require_mfa = true
  }
}`}, false)
	h.c.PutText(ctx, "prod/db/root", "pw")
	if s := h.do(t, h.root, "PUT", "/v1/auth/userpass/users/alice", map[string]any{"password": "correct horse battery", "token_policies": []string{"dba"}}, nil); s != 200 {
		t.Fatalf("put user = %d", s)
	}
	var l loginAnswer
	if s := h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": "correct horse battery"}, &l); s != 200 || l.Info.MFA {
		t.Fatalf("password login = %d %+v", s, l.Info)
	}
	alice := h.c.WithToken(l.Token)
	_, err := alice.Get(ctx, "prod/db/root", client.Current())
	if client.ErrorCode(err) != "forbidden" || !strings.Contains(err.Error(), "mfa") {
		t.Fatalf("read without MFA = %v", err)
	}
	// Alice enrols TOTP on her own account.
	var enrol struct {
		Secret string `json:"secret"`
	}
	if s := h.do(t, l.Token, "POST", "/v1/auth/userpass/users/alice/totp", map[string]any{}, &enrol); s != 200 || enrol.Secret == "" {
		t.Fatalf("enrol = %d", s)
	}
	code, _ := totp.GenerateCode(enrol.Secret, time.Now())
	if s := h.do(t, l.Token, "POST", "/v1/auth/userpass/users/alice/totp/confirm", map[string]string{"code": code}, nil); s != 200 {
		t.Fatalf("confirm = %d", s)
	}
	// ...but not on Bob's.
	if s := h.do(t, l.Token, "POST", "/v1/auth/userpass/users/bob/totp", map[string]any{}, nil); s != 403 {
		t.Fatalf("enrol for another user = %d, want 403", s)
	}
	code, _ = totp.GenerateCode(enrol.Secret, time.Now().Add(30*time.Second))
	var m loginAnswer
	if s := h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": "correct horse battery", "totp": code}, &m); s != 200 || !m.Info.MFA {
		t.Fatalf("MFA login = %d %+v", s, m.Info)
	}
	if s, err := h.c.WithToken(m.Token).Get(ctx, "prod/db/root", client.Current()); err != nil || s.Text() != "pw" {
		t.Fatalf("read with MFA = %v, %v", s, err)
	}
	// Five bad passwords lock the account; the right one is then refused with 429.
	for i := 0; i < 5; i++ {
		h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": "wrong password!"}, nil)
	}
	if s := h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": "correct horse battery", "totp": code}, nil); s != 429 {
		t.Fatalf("login while locked = %d, want 429", s)
	}
	if s := h.do(t, h.root, "POST", "/v1/auth/userpass/users/alice/unlock", map[string]any{}, nil); s != 204 {
		t.Fatalf("unlock = %d", s)
	}
}
