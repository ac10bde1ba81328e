package jwt

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
)

// loginCase is one Login call and its expected outcome.
type loginCase struct {
	name  string
	role  string
	token func(tb testing.TB) string
	want  error                                  // nil: success
	check func(tb testing.TB, login *auth.Login) // optional, on success
}

// runLoginCases runs each case against s and checks that failures are login
// failures with the wanted reason that do not echo the token.
func runLoginCases(t *testing.T, s *Service, cases []loginCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t)
			login, err := s.Login(t.Context(), tc.role, tok)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Login(%q) = %v, want success", tc.role, err)
				}
				if tc.check != nil {
					tc.check(t, login)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("Login(%q) = %v, want %v wrapping auth.ErrUnauthenticated", tc.role, err, tc.want)
			}
			if login != nil {
				t.Errorf("Login(%q) returned a login with error %v", tc.role, err)
			}
			msg := err.Error()
			if len(tok) > 8 && strings.Contains(msg, tok) || len(msg) > 120 {
				t.Errorf("Login(%q) error %q is long or holds the token", tc.role, msg)
			}
			for _, secret := range []string{"system:serviceaccount", "acme/payments", "api-7d9f8", "eyJ"} {
				if strings.Contains(msg, secret) {
					t.Errorf("Login(%q) error %q holds claim or token material %q", tc.role, msg, secret)
				}
			}
		})
	}
}

// claimsWith returns a token func signing base claims changed by edit.
func claimsWith(k testKey, base func() map[string]any, edit func(c map[string]any)) func(testing.TB) string {
	return func(tb testing.TB) string {
		c := base()
		if edit != nil {
			edit(c)
		}
		return sign(tb, k, c)
	}
}

func wantLogin(name, identity string, meta map[string]string, policies ...string) func(testing.TB, *auth.Login) {
	return func(tb testing.TB, l *auth.Login) {
		tb.Helper()
		if l.Method != "jwt" || l.Name != name || l.IdentityID != identity {
			tb.Errorf("Login = {Method %q, Name %q, IdentityID %q}, want {jwt, %q, %q}", l.Method, l.Name, l.IdentityID, name, identity)
		}
		if len(l.Meta) != len(meta) {
			tb.Errorf("Login.Meta = %v, want %v", l.Meta, meta)
		}
		for k, v := range meta {
			if l.Meta[k] != v {
				tb.Errorf("Login.Meta[%q] = %q, want %q", k, l.Meta[k], v)
			}
		}
		if !slices.Equal(l.Token.Policies, policies) {
			tb.Errorf("Login.Token.Policies = %v, want %v", l.Token.Policies, policies)
		}
	}
}

func kubernetesRole() Role {
	return Role{
		Name:           "payments-api",
		BoundAudiences: []string{"coffer"},
		BoundSubject:   "system:serviceaccount:payments:api",
		BoundClaims: map[string][]string{
			"/kubernetes.io/namespace":           {"payments"},
			"/kubernetes.io/serviceaccount/name": {"api*"},
		},
		ClaimMappings: map[string]string{
			"/kubernetes.io/namespace": "namespace",
			"/kubernetes.io/pod/name":  "pod",
			"kubernetes.io":            "whole_object", // an object: skipped
		},
		UserClaim:     "/kubernetes.io/serviceaccount/name",
		TokenSettings: auth.TokenSettings{Policies: []string{"payments-read"}, TTL: auth.Duration(time.Hour)},
	}
}

func githubRole() Role {
	return Role{
		Name:           "deploy",
		BoundAudiences: []string{"coffer", "https://github.com/acme"},
		BoundClaims: map[string][]string{
			"repository":       {"acme/payments", "acme/billing"},
			"ref":              {"refs/heads/main", "refs/tags/v*"},
			"job_workflow_ref": {"acme/workflows/.github/workflows/deploy.yml@*"},
			"groups":           {"deployers"},
			"run_attempt":      {"1", "2"},
		},
		ClaimMappings: map[string]string{
			"repository":  "repository",
			"ref":         "ref",
			"run_attempt": "run_attempt",
			"groups":      "groups", // an array: skipped
			"missing":     "missing",
		},
		UserClaim:     "repository",
		TokenSettings: auth.TokenSettings{Policies: []string{"deploy"}},
	}
}

func TestLoginDiscovery(t *testing.T) {
	rsaKey, ecKey := newRSAKey(t, "rsa-1"), newECKey(t, "ec-1")
	iss := newTestIssuer(t, rsaKey, ecKey)
	clk := newTestClock(testEpoch())
	s := newTestService(t, clk, iss.srv.Client())
	mustConfigure(t, s, Config{OIDCDiscoveryURL: iss.URL()})
	mustPutRole(t, s, kubernetesRole())
	mustPutRole(t, s, githubRole())
	maxAge := githubRole()
	maxAge.Name, maxAge.MaxAgeSeconds = "fresh-only", 300
	mustPutRole(t, s, maxAge)
	noLeeway := kubernetesRole()
	noLeeway.Name, noLeeway.LeewaySeconds = "strict", -1
	mustPutRole(t, s, noLeeway)

	now := clk.Now()
	k8s := func() map[string]any { return k8sClaims(iss.URL(), now) }
	gh := func() map[string]any { return githubClaims(iss.URL(), now) }
	rogue := newECKey(t, "rogue")
	impostor := newECKey(t, "ec-1") // reuses a published kid
	k8sOK := wantLogin("jwt/payments-api/api", "jwt:"+iss.URL()+":system:serviceaccount:payments:api",
		map[string]string{"role": "payments-api", "namespace": "payments", "pod": "api-7d9f8"}, "payments-read")
	ghOK := wantLogin("jwt/deploy/acme/payments", "jwt:"+iss.URL()+":repo:acme/payments:ref:refs/heads/main",
		map[string]string{"role": "deploy", "repository": "acme/payments", "ref": "refs/heads/main", "run_attempt": "1"}, "deploy")

	runLoginCases(t, s, []loginCase{
		{name: "kubernetes RS256", role: "payments-api", token: claimsWith(rsaKey, k8s, nil), check: k8sOK},
		{name: "kubernetes ES256", role: "payments-api", token: claimsWith(ecKey, k8s, nil), check: k8sOK},
		{name: "github actions", role: "deploy", token: claimsWith(rsaKey, gh, nil), check: ghOK},
		{name: "github tag matches glob", role: "deploy", token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["ref"] = "refs/tags/v1.4.2"
		})},
		{name: "second allowed repository", role: "deploy", token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["repository"] = "acme/billing"
		})},
		{name: "audience string among several", role: "deploy", token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["aud"] = "coffer"
		})},
		{name: "expired within leeway", role: "payments-api", token: claimsWith(ecKey, k8s, func(c map[string]any) {
			c["exp"] = now.Add(-30 * time.Second).Unix()
		})},
		{name: "nbf within leeway", role: "payments-api", token: claimsWith(ecKey, k8s, func(c map[string]any) {
			c["nbf"] = now.Add(30 * time.Second).Unix()
		})},
		{name: "max age satisfied", role: "fresh-only", token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["iat"] = now.Add(-200 * time.Second).Unix()
		})},

		{name: "wrong audience", role: "payments-api", want: ErrAudience, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["aud"] = []string{"https://kubernetes.default.svc"}
		})},
		{name: "no audience", role: "payments-api", want: ErrAudience, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			delete(c, "aud")
		})},
		{name: "wrong issuer", role: "payments-api", want: ErrIssuer, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["iss"] = "https://evil.example"
		})},
		{name: "issuer with trailing slash", role: "payments-api", want: ErrIssuer, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["iss"] = iss.URL() + "/"
		})},
		{name: "expired", role: "payments-api", want: ErrTokenExpired, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["exp"] = now.Add(-61 * time.Second).Unix()
		})},
		{name: "expired without leeway", role: "strict", want: ErrTokenExpired, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["exp"] = now.Unix()
		})},
		{name: "no expiry", role: "payments-api", want: ErrNoExpiry, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			delete(c, "exp")
		})},
		{name: "not yet valid", role: "payments-api", want: ErrNotYetValid, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["nbf"] = now.Add(2 * time.Minute).Unix()
		})},
		{name: "issued in the future", role: "payments-api", want: ErrIssuedInFuture, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["iat"] = now.Add(2 * time.Minute).Unix()
		})},
		{name: "older than max age", role: "fresh-only", want: ErrTooOld, token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["iat"] = now.Add(-400 * time.Second).Unix()
		})},
		{name: "max age without iat", role: "fresh-only", want: ErrTooOld, token: claimsWith(ecKey, gh, func(c map[string]any) {
			delete(c, "iat")
		})},
		{name: "exp is a string", role: "payments-api", want: ErrMalformed, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["exp"] = "tomorrow"
		})},
		{name: "signed by unknown key", role: "payments-api", want: ErrSignature, token: claimsWith(rogue, k8s, nil)},
		{name: "signed by impostor with known kid", role: "payments-api", want: ErrSignature, token: claimsWith(impostor, k8s, nil)},
		{name: "tampered payload", role: "payments-api", want: ErrSignature, token: func(tb testing.TB) string {
			good := strings.Split(sign(tb, rsaKey, k8s()), ".")
			other := strings.Split(sign(tb, rsaKey, gh()), ".")
			return good[0] + "." + other[1] + "." + good[2]
		}},
		{name: "alg none", role: "payments-api", want: ErrAlgorithm, token: func(tb testing.TB) string {
			return unsigned(tb, k8s())
		}},
		{name: "HS256 keyed with the public key", role: "payments-api", want: ErrAlgorithm, token: func(tb testing.TB) string {
			return signHMAC(tb, []byte(rsaKey.publicPEM(tb)), k8s())
		}},
		{name: "bound subject mismatch", role: "payments-api", want: ErrSubject, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["sub"] = "system:serviceaccount:payments:worker"
		})},
		{name: "no subject", role: "payments-api", want: ErrNoSubject, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			delete(c, "sub")
		})},
		{name: "nested bound claim mismatch", role: "payments-api", want: ErrClaimMismatch, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["kubernetes.io"].(map[string]any)["namespace"] = "billing"
		})},
		{name: "nested bound claim missing", role: "payments-api", want: ErrClaimMissing, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			delete(c["kubernetes.io"].(map[string]any), "namespace")
		})},
		{name: "nested claim parent not an object", role: "payments-api", want: ErrClaimMissing, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["kubernetes.io"] = "payments"
		})},
		{name: "glob does not match", role: "deploy", want: ErrClaimMismatch, token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["ref"] = "refs/heads/feature"
		})},
		{name: "glob prefix is not a substring match", role: "deploy", want: ErrClaimMismatch, token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["job_workflow_ref"] = "evil/acme/workflows/.github/workflows/deploy.yml@refs/heads/main"
		})},
		{name: "list claim lacks value", role: "deploy", want: ErrClaimMismatch, token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["groups"] = []string{"devs"}
		})},
		{name: "number claim mismatch", role: "deploy", want: ErrClaimMismatch, token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["run_attempt"] = 3
		})},
		{name: "object where a string is bound", role: "deploy", want: ErrClaimMismatch, token: claimsWith(ecKey, gh, func(c map[string]any) {
			c["repository"] = map[string]any{"name": "acme/payments"}
		})},
		{name: "missing bound claim", role: "deploy", want: ErrClaimMissing, token: claimsWith(ecKey, gh, func(c map[string]any) {
			delete(c, "job_workflow_ref")
		})},
		{name: "user claim not a string", role: "deploy-bool", want: ErrUserClaimMissing, token: func(tb testing.TB) string {
			r := githubRole()
			r.Name, r.UserClaim = "deploy-bool", "admin"
			mustPutRole(tb, s, r)
			c := gh()
			c["admin"] = true
			return sign(tb, ecKey, c)
		}},
		{name: "unknown role", role: "nope", want: ErrRoleNotFound, token: claimsWith(rsaKey, k8s, nil)},
		{name: "invalid role name", role: "../config", want: ErrRoleNotFound, token: claimsWith(rsaKey, k8s, nil)},
		{name: "oversized token", role: "payments-api", want: ErrTokenTooLarge, token: func(tb testing.TB) string {
			c := k8s()
			c["padding"] = strings.Repeat("x", MaxTokenSize)
			return sign(tb, rsaKey, c)
		}},
		{name: "empty token", role: "payments-api", want: ErrMalformed, token: func(testing.TB) string { return "" }},
		{name: "garbage token", role: "payments-api", want: ErrMalformed, token: func(testing.TB) string { return "not a jwt" }},
		{name: "garbage segments", role: "payments-api", want: ErrMalformed, token: func(testing.TB) string { return "eyJhbGciOi.!!!.???" }},
		{name: "JSON serialization", role: "payments-api", want: ErrMalformed, token: func(testing.TB) string {
			return `{"payload":"e30","signatures":[{"protected":"eyJhbGciOiJFUzI1NiJ9","signature":"AA"}]}`
		}},
	})

	if got := iss.discoveryHits.Load(); got != 1 {
		t.Errorf("discovery fetched %d times, want 1 (cached)", got)
	}
	if got := iss.jwksHits.Load(); got != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (cached, refetch throttled)", got)
	}
}

func TestLoginKeyRotation(t *testing.T) {
	oldKey, newKey := newECKey(t, "2026-01"), newRSAKey(t, "2026-02")
	iss := newTestIssuer(t, oldKey)
	clk := newTestClock(testEpoch())
	s := newTestService(t, clk, iss.srv.Client())
	mustConfigure(t, s, Config{OIDCDiscoveryURL: iss.URL()})
	mustPutRole(t, s, kubernetesRole())

	login := func(k testKey) error {
		_, err := s.Login(t.Context(), "payments-api", sign(t, k, k8sClaims(iss.URL(), clk.Now())))
		return err
	}
	if err := login(oldKey); err != nil {
		t.Fatalf("Login(old key) = %v", err)
	}
	iss.setKeys(newKey)

	// Within the refetch interval an unknown kid does not reach the issuer.
	if err := login(newKey); !errors.Is(err, ErrSignature) {
		t.Fatalf("Login(new key, right after a fetch) = %v, want %v", err, ErrSignature)
	}
	if got := iss.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", got)
	}

	clk.Advance(minRefetch + time.Second)
	if err := login(newKey); err != nil {
		t.Fatalf("Login(new key) after rotation = %v", err)
	}
	if got := iss.jwksHits.Load(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2", got)
	}
	if err := login(newKey); err != nil {
		t.Fatalf("Login(new key) again = %v", err)
	}
	if err := login(oldKey); !errors.Is(err, ErrSignature) {
		t.Errorf("Login(withdrawn key) = %v, want %v", err, ErrSignature)
	}
	if got := iss.jwksHits.Load(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (cached)", got)
	}

	// Keys older than maxKeyAge are fetched again.
	clk.Advance(maxKeyAge)
	if err := login(newKey); err != nil {
		t.Fatalf("Login(new key) after maxKeyAge = %v", err)
	}
	if got := iss.jwksHits.Load(); got != 3 {
		t.Errorf("JWKS fetched %d times, want 3", got)
	}
	if got := iss.discoveryHits.Load(); got != 1 {
		t.Errorf("discovery fetched %d times, want 1", got)
	}
}

func TestLoginJWKSURL(t *testing.T) {
	rsaKey, ecKey := newRSAKey(t, "rsa-1"), newECKey(t, "ec-1")
	iss := newTestIssuer(t, rsaKey, ecKey)
	clk := newTestClock(testEpoch())
	s := newTestService(t, clk, iss.srv.Client())
	mustConfigure(t, s, Config{JWKSURL: iss.URL() + "/jwks", BoundIssuer: "https://token.actions.githubusercontent.com"})
	mustPutRole(t, s, githubRole())

	now := clk.Now()
	gh := func() map[string]any { return githubClaims("https://token.actions.githubusercontent.com", now) }
	runLoginCases(t, s, []loginCase{
		{name: "RS256", role: "deploy", token: claimsWith(rsaKey, gh, nil),
			check: wantLogin("jwt/deploy/acme/payments", "jwt:https://token.actions.githubusercontent.com:repo:acme/payments:ref:refs/heads/main",
				map[string]string{"role": "deploy", "repository": "acme/payments", "ref": "refs/heads/main", "run_attempt": "1"}, "deploy")},
		{name: "ES256", role: "deploy", token: claimsWith(ecKey, gh, nil)},
		{name: "issuer is the JWKS host", role: "deploy", want: ErrIssuer, token: claimsWith(rsaKey, gh, func(c map[string]any) {
			c["iss"] = iss.URL()
		})},
		{name: "unknown key", role: "deploy", want: ErrSignature, token: claimsWith(newECKey(t, "other"), gh, nil)},
		{name: "wrong audience", role: "deploy", want: ErrAudience, token: claimsWith(rsaKey, gh, func(c map[string]any) {
			c["aud"] = "sts.amazonaws.com"
		})},
	})
	if got := iss.discoveryHits.Load(); got != 0 {
		t.Errorf("discovery fetched %d times with jwks_url, want 0", got)
	}
}

func TestLoginStaticJWKS(t *testing.T) {
	rsaKey, ecKey, edKey := newRSAKey(t, "rsa-1"), newECKey(t, "ec-1"), newEdKey(t, "ed-1")
	clk := newTestClock(testEpoch())
	s := newTestService(t, clk, nil)
	const issuer = "https://kubernetes.default.svc.cluster.local"
	mustConfigure(t, s, Config{JWKS: jwksJSON(t, rsaKey, ecKey, edKey), BoundIssuer: issuer, SupportedAlgs: []string{"RS256", "ES256", "EdDSA"}})
	mustPutRole(t, s, kubernetesRole())

	now := clk.Now()
	k8s := func() map[string]any { return k8sClaims(issuer, now) }
	runLoginCases(t, s, []loginCase{
		{name: "RS256", role: "payments-api", token: claimsWith(rsaKey, k8s, nil)},
		{name: "ES256", role: "payments-api", token: claimsWith(ecKey, k8s, nil)},
		{name: "EdDSA", role: "payments-api", token: claimsWith(edKey, k8s, nil)},
		{name: "unknown key", role: "payments-api", want: ErrSignature, token: claimsWith(newECKey(t, "ec-2"), k8s, nil)},
		{name: "known key under another kid", role: "payments-api", want: ErrSignature, token: claimsWith(testKey{kid: "rsa-2", alg: rsaKey.alg, priv: rsaKey.priv}, k8s, nil)},
		{name: "algorithm not configured", role: "payments-api", want: ErrAlgorithm, token: claimsWith(testKey{kid: "rsa-1", alg: "PS256", priv: rsaKey.priv}, k8s, nil)},
		{name: "expired", role: "payments-api", want: ErrTokenExpired, token: claimsWith(ecKey, k8s, func(c map[string]any) {
			c["exp"] = now.Add(-time.Hour).Unix()
		})},
	})
}

func TestLoginStaticPEM(t *testing.T) {
	rsaKey, ecKey, edKey := newRSAKey(t, ""), newECKey(t, ""), newEdKey(t, "")
	clk := newTestClock(testEpoch())
	s := newTestService(t, clk, nil)
	const issuer = "https://iam.example.com"
	mustConfigure(t, s, Config{PublicKeys: []string{rsaKey.publicPEM(t), ecKey.publicPEM(t), edKey.publicPEM(t)}, BoundIssuer: issuer})
	mustPutRole(t, s, kubernetesRole())

	now := clk.Now()
	k8s := func() map[string]any { return k8sClaims(issuer, now) }
	withKid := rsaKey
	withKid.kid = "any"
	runLoginCases(t, s, []loginCase{
		{name: "RSA", role: "payments-api", token: claimsWith(rsaKey, k8s, nil)},
		{name: "RSA with a kid", role: "payments-api", token: claimsWith(withKid, k8s, nil)},
		{name: "ECDSA", role: "payments-api", token: claimsWith(ecKey, k8s, nil)},
		{name: "Ed25519", role: "payments-api", token: claimsWith(edKey, k8s, nil)},
		{name: "unknown key", role: "payments-api", want: ErrSignature, token: claimsWith(newECKey(t, ""), k8s, nil)},
		{name: "HS256 keyed with the PEM public key", role: "payments-api", want: ErrAlgorithm, token: func(tb testing.TB) string {
			return signHMAC(tb, []byte(rsaKey.publicPEM(tb)), k8s())
		}},
		{name: "alg none", role: "payments-api", want: ErrAlgorithm, token: func(tb testing.TB) string {
			return unsigned(tb, k8s())
		}},
		{name: "wrong issuer", role: "payments-api", want: ErrIssuer, token: claimsWith(rsaKey, k8s, func(c map[string]any) {
			c["iss"] = "https://iam.example.org"
		})},
	})
}

func TestLoginKeySourceFailures(t *testing.T) {
	key := newECKey(t, "k1")
	iss := newTestIssuer(t, key)
	clk := newTestClock(testEpoch())
	tok := sign(t, key, k8sClaims(iss.URL(), clk.Now()))

	tests := []struct {
		name  string
		setup func(tb testing.TB, s *Service)
		want  error
	}{
		{name: "not configured", setup: func(testing.TB, *Service) {}, want: ErrNotConfigured},
		{name: "discovery names another issuer", want: ErrKeysUnavailable, setup: func(tb testing.TB, s *Service) {
			iss.setClaimIssuer("https://other.example")
			tb.Cleanup(func() { iss.setClaimIssuer("") })
			mustConfigure(tb, s, Config{OIDCDiscoveryURL: iss.URL()})
		}},
		{name: "no discovery document", want: ErrKeysUnavailable, setup: func(tb testing.TB, s *Service) {
			mustConfigure(tb, s, Config{OIDCDiscoveryURL: iss.URL() + "/nowhere"})
		}},
		{name: "JWKS URL not found", want: ErrKeysUnavailable, setup: func(tb testing.TB, s *Service) {
			mustConfigure(tb, s, Config{JWKSURL: iss.URL() + "/missing", BoundIssuer: iss.URL()})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestService(t, clk, iss.srv.Client())
			mustPutRole(t, s, kubernetesRole())
			tc.setup(t, s)
			_, err := s.Login(t.Context(), "payments-api", tok)
			if !errors.Is(err, tc.want) || !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("Login = %v, want %v wrapping auth.ErrUnauthenticated", err, tc.want)
			}
		})
	}
}

func TestConfigureReplacesCachedKeys(t *testing.T) {
	a, b := newECKey(t, "a"), newECKey(t, "b")
	clk := newTestClock(testEpoch())
	s := newTestService(t, clk, nil)
	const issuer = "https://issuer.example"
	mustPutRole(t, s, kubernetesRole())
	tokA := sign(t, a, k8sClaims(issuer, clk.Now()))
	tokB := sign(t, b, k8sClaims(issuer, clk.Now()))

	mustConfigure(t, s, Config{JWKS: jwksJSON(t, a), BoundIssuer: issuer})
	if _, err := s.Login(t.Context(), "payments-api", tokA); err != nil {
		t.Fatalf("Login(a) = %v", err)
	}
	mustConfigure(t, s, Config{JWKS: jwksJSON(t, b), BoundIssuer: issuer})
	if _, err := s.Login(t.Context(), "payments-api", tokA); !errors.Is(err, ErrSignature) {
		t.Errorf("Login(a) after reconfigure = %v, want %v", err, ErrSignature)
	}
	if _, err := s.Login(t.Context(), "payments-api", tokB); err != nil {
		t.Errorf("Login(b) after reconfigure = %v", err)
	}
}

func BenchmarkLogin(b *testing.B) {
	key := newECKey(b, "k1")
	clk := newTestClock(testEpoch())
	s := newTestService(b, clk, nil)
	const issuer = "https://issuer.example"
	mustConfigure(b, s, Config{JWKS: jwksJSON(b, key), BoundIssuer: issuer})
	mustPutRole(b, s, kubernetesRole())
	tok := sign(b, key, k8sClaims(issuer, clk.Now()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Login(b.Context(), "payments-api", tok); err != nil {
			b.Fatal(err)
		}
	}
}
