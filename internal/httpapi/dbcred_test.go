package httpapi_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func pgLogin(dbURL, user, password string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	u.User = url.UserPassword(user, password)
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDynamicDBCredsAPI drives the database and lease endpoints against the
// real PostgreSQL with a policy-limited application token.
func TestDynamicDBCredsAPI(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	h := newHarness(t)
	t.Cleanup(func() {
		if res, err := h.core.Leases.RevokePrefix(context.Background(), "db/"); err != nil || res.Pending > 0 {
			t.Errorf("cleanup: %+v %v", res, err)
		}
		h.core.DB.Reset()
	})

	status, out := h.raw(t, "PUT", "/v1/db/config/pg", h.root, jsonBody(t, map[string]any{
		"plugin": "postgresql", "connection_url": dbURL, "allowed_roles": []string{"ro"}}))
	if status != 200 || out["password_set"] != false || out["plugin"] != "postgresql" {
		t.Fatalf("config write = %d %v", status, out)
	}
	// A password in the URL is refused, and never echoed.
	status, out = h.raw(t, "PUT", "/v1/db/config/bad", h.root, jsonBody(t, map[string]any{
		"plugin": "postgresql", "connection_url": "postgres://u:hunter2@127.0.0.1:5432/x"}))
	if status != 400 || strings.Contains(jsonBody(t, out), "hunter2") {
		t.Errorf("inline password = %d %v", status, out)
	}
	// The database refusing: 502 with the driver's reason.
	status, out = h.raw(t, "PUT", "/v1/db/config/dead", h.root, jsonBody(t, map[string]any{
		"plugin": "postgresql", "connection_url": "postgres://u@127.0.0.1:1/x"}))
	if status != http.StatusBadGateway || errCode(out) != "database_error" {
		t.Errorf("unreachable database = %d %v", status, out)
	}
	status, out = h.raw(t, "PUT", "/v1/db/roles/ro", h.root, jsonBody(t, map[string]any{
		"db_name":             "pg",
		"creation_statements": []string{"CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}"},
		"default_ttl":         "10m", "max_ttl": "1h"}))
	if status != 200 || out["default_ttl"] != "10m0s" {
		t.Fatalf("role write = %d %v", status, out)
	}
	status, out = h.raw(t, "PUT", "/v1/db/roles/bad", h.root, jsonBody(t, map[string]any{
		"db_name": "pg", "creation_statements": []string{"CREATE ROLE {{name}} PASSWORD 'p{{password}}'"}}))
	if status != 400 {
		t.Errorf("quoted placeholder = %d %v", status, out)
	}

	if err := h.core.Policies.Put(ctx, "app", `path "sys/db/creds/ro" { capabilities = ["read"] }`, "test"); err != nil {
		t.Fatal(err)
	}
	app, appEntry, err := h.core.Tokens.Create(ctx, token.CreateInput{DisplayName: "approle/payments", Method: "approle", Policies: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := h.core.Tokens.Create(ctx, token.CreateInput{DisplayName: "other", Policies: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}

	status, out = h.raw(t, "POST", "/v1/db/creds/ro", app, `{"ttl":"5m"}`)
	if status != 200 || out["lease_duration"] != float64(300) || out["renewable"] != true {
		t.Fatalf("creds = %d %v", status, out)
	}
	user, _ := out["username"].(string)
	pw, _ := out["password"].(string)
	leaseID, _ := out["lease_id"].(string)
	if !strings.HasPrefix(user, "v_payments_ro_") || !strings.HasPrefix(leaseID, "db/creds/ro/") {
		t.Fatalf("creds = %v", out)
	}
	if err := pgLogin(dbURL, user, pw); err != nil {
		t.Fatalf("login with issued creds: %v", err)
	}
	// GET works too (Vault-style clients).
	status, out = h.raw(t, "GET", "/v1/db/creds/ro", other, "")
	if status != 200 {
		t.Fatalf("GET creds = %d %v", status, out)
	}
	otherLease, _ := out["lease_id"].(string)

	for _, tc := range []struct {
		method, path, tok string
		status            int
	}{
		{"GET", "/v1/db/config/pg", app, 403},
		{"PUT", "/v1/db/roles/ro", app, 403},
		{"POST", "/v1/db/creds/admin", app, 403},
		{"POST", "/v1/db/creds/ro", app, 200},
		{"GET", "/v1/sys/leases/lookup/" + leaseID, app, 200},   // its own lease
		{"GET", "/v1/sys/leases/lookup/" + leaseID, other, 403}, // not its lease, no policy
		{"GET", "/v1/sys/leases/lookup/db/creds/ro/nosuch", other, 403},
		{"GET", "/v1/sys/leases/lookup/db/creds/ro/nosuch", h.root, 404},
		{"POST", "/v1/sys/leases/revoke/" + leaseID, other, 403},
		{"POST", "/v1/sys/leases/revoke-prefix/db/creds/", app, 403},
		{"GET", "/v1/sys/leases/list/db/creds/ro/", app, 403},
		{"POST", "/v1/db/creds/x';DROP%20TABLE%20t;--", h.root, 404},
		{"GET", "/v1/db/config/pg", h.root, 200},
	} {
		status, out := h.raw(t, tc.method, tc.path, tc.tok, "")
		if status != tc.status {
			t.Errorf("%s %s = %d %v, want %d", tc.method, tc.path, status, out, tc.status)
		}
		if _, ok := out["password"]; ok && strings.Contains(tc.path, "config") {
			t.Errorf("%s %s returned a password field", tc.method, tc.path)
		}
	}

	status, out = h.raw(t, "POST", "/v1/sys/leases/renew/"+leaseID, app, `{"increment":"30m"}`)
	if status != 200 || out["ttl"].(float64) < 1700 || out["capped"] != nil {
		t.Errorf("renew = %d %v", status, out)
	}
	// Past max_ttl (1h): renewed to the maximum, and the answer says so.
	status, out = h.raw(t, "POST", "/v1/sys/leases/renew/"+leaseID, app, `{"increment":"48h"}`)
	if ws, _ := out["warnings"].([]any); status != 200 || out["capped"] != true || len(ws) != 1 || out["expires_at"] != out["max_expires_at"] {
		t.Errorf("renew past max_ttl = %d %v", status, out)
	}
	// An increment beyond a year is the caller's mistake: 400, not 500.
	status, out = h.raw(t, "POST", "/v1/sys/leases/renew/"+leaseID, app, `{"increment":"9000h"}`)
	if status != 400 || !strings.Contains(jsonBody(t, out), "increment") {
		t.Errorf("renew by 9000h = %d %v", status, out)
	}
	// Prefixes cover whole segments: "db/creds/r" would also reach role "ro".
	for _, path := range []string{"/v1/sys/leases/revoke-prefix/db/creds/r", "/v1/sys/leases/list/db/creds/r"} {
		method := "POST"
		if strings.Contains(path, "/list/") {
			method = "GET"
		}
		if status, out := h.raw(t, method, path, h.root, ""); status != 400 {
			t.Errorf("%s %s = %d %v, want 400", method, path, status, out)
		}
	}
	// Pointing the connection elsewhere needs the admin password again.
	status, out = h.raw(t, "PUT", "/v1/db/config/pg", h.root, jsonBody(t, map[string]any{
		"plugin": "postgresql", "connection_url": strings.Replace(dbURL, "127.0.0.1", "localhost", 1),
		"allowed_roles": []string{"ro"}, "verify_connection": false}))
	if status != 400 || !strings.Contains(jsonBody(t, out), "password") {
		t.Errorf("config moved without password = %d %v", status, out)
	}
	status, out = h.raw(t, "GET", "/v1/sys/leases/list/db/creds/ro/", h.root, "")
	if ids, _ := out["lease_ids"].([]any); status != 200 || len(ids) != 3 {
		t.Errorf("list = %d %v", status, out)
	}

	// Revoking the app's token revokes its leases: its users can no longer log in.
	status, out = h.raw(t, "DELETE", "/v1/auth/token/accessors/"+appEntry.Accessor, h.root, "")
	if status >= 300 {
		t.Fatalf("token revoke = %d %v", status, out)
	}
	if err := pgLogin(dbURL, user, pw); err == nil {
		t.Error("login after the token was revoked succeeded")
	}
	if status, _ := h.raw(t, "GET", "/v1/sys/leases/lookup/"+leaseID, h.root, ""); status != 404 {
		t.Errorf("lease of revoked token lookup = %d, want 404", status)
	}

	// The owner revokes its own lease.
	status, out = h.raw(t, "POST", "/v1/sys/leases/revoke/"+otherLease, other, "")
	if status != 200 || out["status"] != "revoked" {
		t.Errorf("revoke own lease = %d %v", status, out)
	}
	// A role with live leases cannot be deleted... none left now, so it can.
	status, out = h.raw(t, "DELETE", "/v1/db/config/pg", h.root, "")
	if status != 409 || errCode(out) != "in_use" {
		t.Errorf("delete connection in use = %d %v", status, out)
	}
	if status, out := h.raw(t, "DELETE", "/v1/db/roles/ro", h.root, ""); status != 204 {
		t.Errorf("delete role = %d %v", status, out)
	}
	if status, out := h.raw(t, "DELETE", "/v1/db/config/pg", h.root, ""); status != 204 {
		t.Errorf("delete connection = %d %v", status, out)
	}
}
