package httpapi_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/testaudit"
)

// newAuditHarness starts an unsealed server whose audit log lives in dir.
func newAuditHarness(t *testing.T, dir string) *harness { return newAuditHarnessTB(t, dir) }

func newAuditHarnessTB(t testing.TB, dir string) *harness {
	t.Helper()
	ctx := context.Background()
	c := core.New(core.Config{Backend: mem.New(), Audit: core.AuditConfig{Dir: dir}})
	api := httpapi.New(httpapi.Config{Core: c})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	res, err := c.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Seal)
	cl, _ := client.New(client.Config{Address: srv.URL, Token: res.RootToken, MaxRetries: -1})
	return &harness{core: c, api: api, srv: srv, root: res.RootToken, keys: res.Keys, c: cl}
}

func TestAuditRecordsEveryRequest(t *testing.T) {
	dir := t.TempDir()
	h := newAuditHarness(t, dir)
	ctx := context.Background()
	const value = "VALUE-that-must-never-be-logged"
	h.c.PutText(ctx, "prod/payments/db", value)
	h.c.Get(ctx, "prod/payments/db", client.Current())
	h.c.WithToken("").Get(ctx, "prod/payments/db", client.Current())
	h.c.ApplyPolicies(ctx, map[string]string{"ro": `path "prod/payments/*" { capabilities = ["read"] }`}, false)
	weak, _ := h.c.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"ro"}})
	h.c.WithToken(weak.Token).PutText(ctx, "prod/payments/db", "x")

	var hash struct {
		HMAC string `json:"hmac"`
	}
	if err := h.c.Do(ctx, "POST", "/v1/sys/audit/hash", map[string]string{"input": value}, &hash); err != nil {
		t.Fatal(err)
	}
	recs := testaudit.Records(t, dir)
	find := func(op, decision string) *audit.Record {
		for _, r := range recs {
			if r.Type == audit.TypeRequest && r.Op == op && r.Decision == decision {
				return r
			}
		}
		t.Fatalf("no %s record with decision %q among %d records", op, decision, len(recs))
		return nil
	}
	w := find("secret.write", "allow")
	if w.Identity == nil || w.Identity.Name != "root" || w.Path != "prod/payments/db" || w.Version != 1 || w.Status != 201 {
		t.Errorf("write record = %+v", w)
	}
	intent := false
	for _, r := range recs {
		intent = intent || (r.Type == core.TypeIntent && r.RequestID == w.RequestID && r.Seq < w.Seq)
	}
	if !intent {
		t.Error("the write has no intent record before its outcome")
	}
	if w.HMACs["value"] != hash.HMAC {
		t.Errorf("value HMAC %q, coffer audit hash says %q", w.HMACs["value"], hash.HMAC)
	}
	if r := find("secret.read", "unauthenticated"); r.Status != 401 {
		t.Errorf("unauthenticated record = %+v", r)
	}
	d := find("secret.write", "deny")
	if d.Status != 403 || d.Reason == "" || d.Identity.Accessor != weak.Info.Accessor {
		t.Errorf("deny record = %+v", d)
	}
	if r := find("secret.read", "allow"); r.Policy != "root" || r.Source == "" || r.RequestID == "" || r.LatencyUS <= 0 {
		t.Errorf("read record = %+v", r)
	}
	// Nothing secret is in the files.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range []string{value, h.root, weak.Token} {
			if strings.Contains(string(b), s) {
				t.Fatalf("%s holds a secret", f)
			}
		}
	}
	// The chain verifies with the exported public key.
	var pk struct {
		PEM string `json:"public_key_pem"`
	}
	h.c.Do(ctx, "GET", "/v1/sys/audit/public-key", nil, &pk)
	block, _ := pem.Decode([]byte(pk.PEM))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h.core.Seal() // writes a final checkpoint
	paths, _ := audit.Files(dir)
	rep, err := audit.Verify(paths, pub.(ed25519.PublicKey))
	if err != nil || rep.Problem != nil || rep.Checkpoints == 0 {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
}

// TestAuditFailsClosedOnFullDisk puts the audit log on a real 256 KiB tmpfs,
// fills it, and expects requests to be refused with 503 and health to turn
// unhealthy; freeing space recovers without a restart.
func TestAuditFailsClosedOnFullDisk(t *testing.T) {
	dir := testaudit.TinyTmpfs(t)
	h := newAuditHarness(t, filepath.Join(dir, "audit"))
	ctx := context.Background()
	if _, err := h.c.PutText(ctx, "a", "v"); err != nil {
		t.Fatal(err)
	}
	free := testaudit.FillDisk(t, dir)
	var err error
	for i := 0; i < 200 && err == nil; i++ { // until the log's own buffer space is used up
		_, err = h.c.Get(ctx, "a", client.Current())
	}
	if client.ErrorCode(err) != "audit_unavailable" {
		t.Fatalf("read on a full audit disk = %v, want audit_unavailable", err)
	}
	if hl, _ := h.c.Health(ctx); hl.StatusCode != 503 || hl.AuditOK || !hl.StorageOK || hl.Sealed {
		t.Fatalf("health on a full audit disk = %+v, want 503 with audit_ok false", hl)
	}
	// Monitoring without a token still answers, though its own record
	// cannot be kept: the outage is what it has to report.
	if res, err := http.Get(h.srv.URL + "/v1/sys/health/live"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("live on a full audit disk = %v, %v; want 200", res, err)
	}
	// A token is never used without its record, not even to scrape metrics.
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/sys/metrics", nil)
	req.Header.Set("X-Coffer-Token", h.root)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("metrics with a token on a full audit disk = %v, %v; want 503", res, err)
	}
	if res, err := http.Get(h.srv.URL + "/v1/sys/health/ready"); err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready on a full audit disk = %v, %v; want 503", res, err)
	}
	if h.core.AuditFailures() == 0 {
		t.Fatal("audit failures not counted")
	}
	if _, err := h.c.PutText(ctx, "b", "v"); client.ErrorCode(err) != "audit_unavailable" {
		t.Fatalf("write on a full audit disk = %v", err)
	}
	free()
	// Freeing space recovers without a restart: the next request, health
	// included, probes the log.
	if hl, _ := h.c.Health(ctx); hl.StatusCode != 200 || !hl.AuditOK {
		t.Fatalf("health after recovery = %+v", hl)
	}
	if s, err := h.c.Get(ctx, "a", client.Current()); err != nil || s.Text() != "v" {
		t.Fatalf("read after recovery = %v, %v", s, err)
	}
}

// TestLoginFailsClosedOnFullDisk: a login uses up a secret_id and mints a
// token, so while the audit log cannot be written it is refused before it
// acts; the single-use secret_id still works once the log recovers. Probes
// of unknown paths are on record too.
func TestLoginFailsClosedOnFullDisk(t *testing.T) {
	dir := testaudit.TinyTmpfs(t)
	auditDir := filepath.Join(dir, "audit")
	h := newAuditHarness(t, auditDir)
	if s := h.do(t, h.root, "PUT", "/v1/auth/approle/role/app", map[string]any{"token_policies": []string{"default"}, "secret_id_num_uses": 1}, nil); s != 200 {
		t.Fatalf("put role = %d", s)
	}
	var rid struct {
		RoleID string `json:"role_id"`
	}
	h.do(t, h.root, "GET", "/v1/auth/approle/role/app/role-id", nil, &rid)
	var sid struct {
		SecretID string `json:"secret_id"`
	}
	h.do(t, h.root, "POST", "/v1/auth/approle/role/app/secret-id", map[string]any{}, &sid)
	login := map[string]string{"role_id": rid.RoleID, "secret_id": sid.SecretID}

	free := testaudit.FillDisk(t, dir)
	var s int
	for i := 0; i < 200 && s != http.StatusServiceUnavailable; i++ { // until the log's own buffer space is used up
		s = h.do(t, "", "POST", "/v1/auth/approle/login", login, nil)
	}
	if s != http.StatusServiceUnavailable {
		t.Fatalf("login on a full audit disk = %d, want 503", s)
	}
	free()
	var l loginAnswer
	if s := h.do(t, "", "POST", "/v1/auth/approle/login", login, &l); s != 200 || l.Token == "" {
		t.Fatalf("login after recovery = %d: the refused attempts must not have used the secret_id", s)
	}
	h.do(t, "", "GET", "/v1/no/such/route", nil, nil)
	h.do(t, "", "GET", "/v1/secrets/a/../b", nil, nil)

	var intent, outcome, probes bool
	for _, rec := range testaudit.Records(t, auditDir) {
		switch {
		case rec.Op == "approle.login" && rec.Type == "intent":
			intent = true
		case rec.Op == "approle.login" && rec.Status == 200:
			outcome = rec.Identity != nil && rec.HMACs["role_id"] != "" && !strings.Contains(fmt.Sprint(rec), rid.RoleID)
		case rec.Op == "unknown.route" && rec.Path == "/v1/no/such/route" && rec.Status == 404,
			rec.Op == "bad.path" && rec.Status == 400:
			probes = true
		}
	}
	if !intent || !outcome || !probes {
		t.Fatalf("records: login intent %v, login outcome with identity and role_id HMAC only %v, probes %v", intent, outcome, probes)
	}
}
