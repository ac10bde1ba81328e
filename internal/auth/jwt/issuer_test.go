package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// testClock is an adjustable clock for Options.Now.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testEpoch is when test clocks start.
func testEpoch() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// testKey is an issuer's signing key.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newRSAKey(tb testing.TB, kid string) testKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.RS256, priv: k}
}

func newECKey(tb testing.TB, kid string) testKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.ES256, priv: k}
}

func newEdKey(tb testing.TB, kid string) testKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.EdDSA, priv: k}
}

func (k testKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

func (k testKey) publicPEM(tb testing.TB) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// jwksJSON returns a JWK Set document of the keys' public halves.
func jwksJSON(tb testing.TB, keys ...testKey) string {
	tb.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.publicJWK())
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// sign returns a compact JWT of claims signed by k, with k's kid in the header.
func sign(tb testing.TB, k testKey, claims map[string]any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// signHMAC returns claims signed with HS256 under secret: the alg confusion
// attack when secret is the issuer's public key.
func signHMAC(tb testing.TB, secret []byte, claims map[string]any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// unsigned returns claims as an alg "none" JWT.
func unsigned(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

// testIssuer is a real OIDC issuer over TLS: it serves a discovery document
// naming its own URL and a JWKS of its current keys.
type testIssuer struct {
	srv           *httptest.Server
	discoveryHits atomic.Int64
	jwksHits      atomic.Int64

	mu          sync.Mutex // guards the fields below
	keys        []testKey
	claimIssuer string // issuer named by the discovery document; "" means the server's URL
}

func newTestIssuer(tb testing.TB, keys ...testKey) *testIssuer {
	tb.Helper()
	i := &testIssuer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		i.discoveryHits.Add(1)
		i.mu.Lock()
		iss := i.claimIssuer
		i.mu.Unlock()
		if iss == "" {
			iss = i.URL()
		}
		writeJSON(w, map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              i.URL() + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		i.jwksHits.Add(1)
		i.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range i.keys {
			set.Keys = append(set.Keys, k.publicJWK())
		}
		i.mu.Unlock()
		writeJSON(w, set)
	})
	i.srv = httptest.NewTLSServer(mux)
	tb.Cleanup(i.srv.Close)
	return i
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// URL is the issuer, as found in iss.
func (i *testIssuer) URL() string { return i.srv.URL }

// setKeys replaces the published keys (a rotation).
func (i *testIssuer) setKeys(keys ...testKey) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = keys
}

func (i *testIssuer) setClaimIssuer(iss string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.claimIssuer = iss
}

// newTestService returns a Service over a fresh in-memory store that fetches
// through client (which may be nil) and reads clk.
func newTestService(tb testing.TB, clk *testClock, client *http.Client) *Service {
	tb.Helper()
	return New(mem.New(), Options{Now: clk.Now, HTTPClient: client})
}

func mustConfigure(tb testing.TB, s *Service, cfg Config) {
	tb.Helper()
	if err := s.Configure(tb.Context(), cfg); err != nil {
		tb.Fatalf("Configure(%+v) = %v", cfg, err)
	}
}

func mustPutRole(tb testing.TB, s *Service, r Role) {
	tb.Helper()
	if err := s.PutRole(tb.Context(), r); err != nil {
		tb.Fatalf("PutRole(%s) = %v", r.Name, err)
	}
}

// k8sClaims are the claims of a projected Kubernetes service-account token
// for payments/api.
func k8sClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss,
		"sub": "system:serviceaccount:payments:api",
		"aud": []string{"coffer", "https://kubernetes.default.svc"},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      "payments",
			"pod":            map[string]any{"name": "api-7d9f8", "uid": "0c5e4c2e-1f0e-4a59-a0c3-6a1d2b9f0e11"},
			"serviceaccount": map[string]any{"name": "api", "uid": "6f1f1c1e-9a3b-4c2d-8e7f-0a1b2c3d4e5f"},
		},
	}
}

// githubClaims are the claims of a GitHub Actions OIDC token, plus a list
// claim and a number claim.
func githubClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":                iss,
		"sub":                "repo:acme/payments:ref:refs/heads/main",
		"aud":                "https://github.com/acme",
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(5 * time.Minute).Unix(),
		"repository":         "acme/payments",
		"repository_owner":   "acme",
		"ref":                "refs/heads/main",
		"job_workflow_ref":   "acme/workflows/.github/workflows/deploy.yml@refs/heads/main",
		"run_attempt":        1,
		"runner_environment": "github-hosted",
		"groups":             []string{"devs", "deployers"},
	}
}
