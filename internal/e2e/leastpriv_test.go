package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// TestLeastPrivilegeTour follows docs/least-privilege.md through the CLI:
// policies from files, an AppRole service and a JWT-authenticated CI job,
// each reading only its own secrets, then the root token revoked.
func TestLeastPrivilegeTour(t *testing.T) {
	dir := t.TempDir()
	n := newNode(t, dir, fmt.Sprintf(`seal "keyfile" { path = %q }`, filepath.Join(dir, "unseal.key")), "")
	n.start()
	out := n.ok("", "operator", "init")
	root := strings.TrimSpace(strings.SplitN(strings.SplitN(out, "Root token: ", 2)[1], "\n", 2)[0])
	n.setToken(root)

	pol := filepath.Join(dir, "policies")
	os.MkdirAll(pol, 0o755)
	os.WriteFile(filepath.Join(pol, "payments.hcl"), []byte("path \"prod/payments/*\" {\ncapabilities = [\"read\", \"list\"]\n}\n"), 0o644)
	os.WriteFile(filepath.Join(pol, "ci-deploy.hcl"), []byte(`path "ci/{{identity.meta.repository}}/*" { capabilities = ["read"] }`+"\n"), 0o644)
	if got := n.ok("", "policy", "fmt", "-f", pol); !strings.Contains(got, "payments.hcl") {
		t.Fatalf("fmt changed nothing: %q", got)
	}
	if _, _, code := n.run("", "policy", "fmt", "--check", "-f", pol); code != 0 {
		t.Fatal("fmt --check fails right after fmt")
	}
	n.ok("", "policy", "validate", "-f", pol)
	if got := n.ok("", "policy", "plan", "-f", pol); !strings.Contains(got, "+ payments (create)") {
		t.Fatalf("plan = %q", got)
	}
	n.ok("", "policy", "apply", "-f", pol)
	os.WriteFile(filepath.Join(pol, "broken.hcl"), []byte(`path "x/*" { capabilities = ["fly"] }`), 0o644)
	if _, errOut, code := n.run("", "policy", "validate", "-f", pol); code != 1 || !strings.Contains(errOut, "fly") {
		t.Fatalf("validate broken policy: exit %d %q", code, errOut)
	}
	os.Remove(filepath.Join(pol, "broken.hcl"))

	for name, v := range map[string]string{"prod/payments/db-password": "s3cr3t", "prod/orders/db-password": "other",
		"ci/shop/deploy-key": "shop-key", "ci/bank/deploy-key": "bank-key"} {
		n.ok("", "secret", "put", name, v)
	}

	// AppRole for the payments service.
	n.ok("", "auth", "approle", "put-role", "payments", "--policy", "payments", "--token-ttl", "1h",
		"--secret-id-ttl", "720h", "--secret-id-cidr", "127.0.0.0/8")
	roleID := strings.TrimSpace(n.ok("", "auth", "approle", "role-id", "payments"))
	secretID := n.ok("", "auth", "approle", "secret-id", "payments")
	sidFile := filepath.Join(dir, "secret-id")
	os.WriteFile(sidFile, []byte(secretID), 0o600)
	app := strings.TrimSpace(n.ok("", "login", "--method", "approle", "--role-id", roleID, "--secret-id-file", sidFile, "--no-store"))
	as := func(tok string, args ...string) (string, string, int) {
		saved := n.env
		n.env = append(append([]string(nil), saved...), "COFFER_TOKEN="+tok)
		defer func() { n.env = saved }()
		return n.run("", args...)
	}
	if got, _, _ := as(app, "secret", "get", "prod/payments/db-password"); got != "s3cr3t" {
		t.Fatalf("app reads own secret: %q", got)
	}
	if _, errOut, code := as(app, "secret", "get", "prod/orders/db-password"); code != 1 || !strings.Contains(errOut, "permission denied") {
		t.Fatalf("app reads other secret: exit %d %q", code, errOut)
	}
	if got, _, _ := as(app, "secret", "list", "prod/"); got != "prod/payments/db-password\n" {
		t.Fatalf("app list = %q", got)
	}
	if _, _, code := n.run("", "policy", "explain", "--token", app, "--path", "prod/orders/db-password", "--op", "read"); code != 3 {
		t.Fatalf("explain denied: exit %d, want 3", code)
	}

	// JWT for a CI job, with a static public key standing in for the CI's issuer.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keyFile := filepath.Join(dir, "ci.pub")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	n.ok("", "auth", "jwt", "config", "--public-key-file", keyFile, "--bound-issuer", "https://ci.example.com")
	n.ok("", "auth", "jwt", "put-role", "deploy", "--policy", "ci-deploy", "--token-ttl", "10m", "--audience", "coffer",
		"--claim", "repository_owner=acme", "--claim", "ref=refs/heads/main",
		"--claim-mapping", "repository_name=repository", "--user-claim", "repository")
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	jwtFor := func(owner, repo, ref string) string {
		s, err := josejwt.Signed(signer).Claims(map[string]any{"iss": "https://ci.example.com", "sub": "repo:" + owner + "/" + repo,
			"aud": "coffer", "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
			"repository": owner + "/" + repo, "repository_name": repo, "repository_owner": owner, "ref": ref}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ci := strings.TrimSpace(n.ok(jwtFor("acme", "shop", "refs/heads/main")+"\n", "login", "--method", "jwt", "--role", "deploy", "--jwt-file", "-", "--no-store"))
	if got, _, _ := as(ci, "secret", "get", "ci/shop/deploy-key"); got != "shop-key" {
		t.Fatalf("ci reads own repo's key: %q", got)
	}
	if _, _, code := as(ci, "secret", "get", "ci/bank/deploy-key"); code != 1 {
		t.Fatal("ci read another repo's key")
	}
	for _, bad := range []string{jwtFor("evil", "shop", "refs/heads/main"), jwtFor("acme", "shop", "refs/heads/dev")} {
		if _, errOut, code := n.run(bad+"\n", "login", "--method", "jwt", "--role", "deploy", "--jwt-file", "-", "--no-store"); code != 1 || !strings.Contains(errOut, "not authenticated") && !strings.Contains(errOut, "jwt") {
			t.Fatalf("bad jwt login: exit %d %q", code, errOut)
		}
	}

	// Retire the root token.
	n.ok("", "token", "revoke", "--self")
	if _, errOut, code := n.run("", "secret", "list"); code != 1 || !strings.Contains(errOut, "not authenticated") {
		t.Fatalf("root after revoke: exit %d %q", code, errOut)
	}
}
