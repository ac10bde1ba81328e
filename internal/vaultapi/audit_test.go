package vaultapi_test

import (
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/testaudit"
)

const msgAuditUnavailable = "audit log unavailable; request refused"

// newAuditHarness is newHarness with the audit log in dir.
func newAuditHarness(t testing.TB, dir string) *harness {
	t.Helper()
	h := newHarnessWith(t, core.Config{Backend: mem.New(), Audit: core.AuditConfig{Dir: dir}})
	t.Cleanup(h.core.Seal)
	return h
}

// recordsOf returns the records of one operation, in order.
func recordsOf(recs []*audit.Record, op string) []*audit.Record {
	var out []*audit.Record
	for _, r := range recs {
		if r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// serveRaw calls the handler directly, keeping the path as sent (an outer
// ServeMux would clean it and redirect), and returns the status and body.
func (h *harness) serveRaw(method, path, tok string) (int, string) {
	req := httptest.NewRequest(method, "http://x/", nil)
	req.URL.Path = path
	if tok != "" {
		req.Header.Set("X-Vault-Token", tok)
	}
	w := httptest.NewRecorder()
	h.api.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

// TestAuditRecordsUnroutedRequests: the 405, 404 and bad-path answers are
// given outside any route, and each still has its record, as a refusal
// with its status.
func TestAuditRecordsUnroutedRequests(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	h := newAuditHarness(t, dir)
	if status, body := h.do(t, "DELETE", "/v1/auth/token/lookup-self", h.root, ""); status != 405 ||
		!slices.Equal(errorsOf(t, body), []string{"unsupported operation"}) {
		t.Errorf("DELETE lookup-self = %d %v, want 405", status, body)
	}
	if status, _ := h.do(t, "GET", "/v1/sys/mounts", h.root, ""); status != 404 {
		t.Errorf("GET sys/mounts = %d, want 404", status)
	}
	// A subtree's root without its slash is answered by noRoute too.
	if status, _ := h.do(t, "GET", "/v1/secret/data", "", ""); status != 404 {
		t.Errorf("GET secret/data = %d, want 404", status)
	}
	if status, body := h.serveRaw("GET", "/v1/secret/data/a//b", h.root); status != 400 || !strings.Contains(body, "segments") {
		t.Errorf("GET secret/data/a//b = %d %s, want 400", status, body)
	}
	recs := testaudit.Records(t, dir)
	for _, tc := range []struct {
		op     string
		status []int
	}{
		{"vault.method-not-allowed", []int{405}},
		{"vault.no-route", []int{404, 404}},
		{"vault.bad-path", []int{400}},
	} {
		got := recordsOf(recs, tc.op)
		var statuses []int
		for _, r := range got {
			statuses = append(statuses, r.Status)
			if r.Type != audit.TypeRequest || r.Error == "" || r.Identity != nil || r.Decision != "" || r.RequestID == "" {
				t.Errorf("%s record = %+v, want a refused request with no identity", tc.op, r)
			}
		}
		if !slices.Equal(statuses, tc.status) {
			t.Errorf("%s records have statuses %v, want %v", tc.op, statuses, tc.status)
		}
	}
	for _, r := range recs {
		if b, _ := json.Marshal(r); strings.Contains(string(b), h.root) {
			t.Errorf("record holds the token: %s", b)
		}
	}
}

// TestAuditApproleLogin: a login writes its intent before it acts, and its
// outcome names who logged in and holds the role_id only as an HMAC.
func TestAuditApproleLogin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	h := newAuditHarness(t, dir)
	roleID, sid, login := approleLogin(t, h, "web", 0)
	status, body := h.do(t, "POST", "/v1/auth/approle/login", "", login)
	if status != 200 {
		t.Fatalf("login = %d %v", status, body)
	}
	a := body["auth"].(map[string]any)
	if status, _ := h.do(t, "POST", "/v1/auth/approle/login", "", `{"role_id":"`+roleID+`","secret_id":"wrong"}`); status != 400 {
		t.Fatalf("login with a wrong secret_id = %d, want 400", status)
	}
	wantHMAC, err := h.core.AuditHMAC(roleID)
	if err != nil {
		t.Fatal(err)
	}
	recs := testaudit.Records(t, dir)
	got := recordsOf(recs, "vault.approle.login")
	if len(got) != 4 {
		t.Fatalf("login records = %d, want an intent and an outcome for each of 2 logins", len(got))
	}
	for i := 0; i < 4; i += 2 {
		intent, out := got[i], got[i+1]
		if intent.Type != core.TypeIntent || intent.RequestID == "" || intent.RequestID != out.RequestID || intent.Identity != nil {
			t.Errorf("login %d: intent = %+v, outcome %+v; want an intent with the outcome's request id first", i/2, intent, out)
		}
		if out.HMACs["role_id"] != wantHMAC {
			t.Errorf("login %d: role_id HMAC = %q, want %q", i/2, out.HMACs["role_id"], wantHMAC)
		}
	}
	ok, bad := got[1], got[3]
	if ok.Status != 200 || ok.Decision != "allow" || ok.Identity == nil || ok.Identity.Accessor != a["accessor"] ||
		ok.Identity.Method != "approle" || !slices.Equal(ok.Identity.Policies, []string{"reader"}) {
		t.Errorf("successful login record = %+v identity %+v; want status 200, allow, the new token's identity", ok, ok.Identity)
	}
	if bad.Status != 400 || bad.Identity != nil || bad.Error == "" {
		t.Errorf("failed login record = %+v, want a 400 with no identity", bad)
	}
	for _, r := range recs {
		b, _ := json.Marshal(r)
		for _, v := range []string{roleID, sid, a["client_token"].(string)} {
			if strings.Contains(string(b), v) {
				t.Errorf("record holds %q in plaintext: %s", v, b)
			}
		}
	}
}

// TestAuditOutageOnFullDisk fills the audit disk: a login is refused before
// it spends its secret_id, unrouted requests are refused, and only a
// token-less sys/health keeps answering its body.
func TestAuditOutageOnFullDisk(t *testing.T) {
	base := testaudit.TinyTmpfs(t)
	h := newAuditHarness(t, filepath.Join(base, "audit"))
	_, _, login := approleLogin(t, h, "web", 1)

	free := testaudit.FillDisk(t, base)
	status := 0
	for i := 0; i < 300 && status != 503; i++ { // until the log's own buffer space is used up
		status, _ = h.do(t, "GET", "/v1/auth/token/lookup-self", h.root, "")
	}
	if status != 503 {
		t.Fatalf("lookup-self on a full audit disk = %d, want 503", status)
	}
	refused := func(what string, status int, body map[string]any) {
		t.Helper()
		if status != 503 || !slices.Equal(errorsOf(t, body), []string{msgAuditUnavailable}) {
			t.Errorf("%s on a full audit disk = %d %v, want 503 %q", what, status, body, msgAuditUnavailable)
		}
	}

	// Health without a token reports the server's state though its own
	// record cannot be kept; with a token it is refused like anything else.
	status, body := h.do(t, "GET", "/v1/sys/health", "", "")
	if status != 200 || body["initialized"] != true || body["sealed"] != false || body["cluster_name"] != "coffer" {
		t.Errorf("health without a token on a full audit disk = %d %v, want 200 and its body", status, body)
	}
	status, body = h.do(t, "GET", "/v1/sys/health", h.root, "")
	refused("health with a token", status, body)
	status, body = h.do(t, "GET", "/v1/sys/seal-status", "", "")
	refused("seal-status", status, body)

	status, body = h.do(t, "POST", "/v1/auth/approle/login", "", login)
	refused("approle login", status, body)
	status, body = h.do(t, "DELETE", "/v1/auth/token/lookup-self", h.root, "")
	refused("a 405", status, body)
	status, body = h.do(t, "GET", "/v1/sys/mounts", "", "")
	refused("a 404", status, body)
	if status, raw := h.serveRaw("GET", "/v1/secret/data/a//b", h.root); status != 503 || !strings.Contains(raw, msgAuditUnavailable) {
		t.Errorf("a bad path on a full audit disk = %d %s, want 503", status, raw)
	}

	free()
	// The refused login changed nothing: its single-use secret_id still works.
	if status, body := h.do(t, "POST", "/v1/auth/approle/login", "", login); status != 200 {
		t.Fatalf("login after recovery with the secret_id refused during the outage = %d %v, want 200", status, body)
	}
}

// TestRequestsCounted: Vault requests are counted like native ones, by
// operation and status class.
func TestRequestsCounted(t *testing.T) {
	h := newHarness(t)
	h.do(t, "GET", "/v1/auth/token/lookup-self", h.root, "")
	h.do(t, "GET", "/v1/auth/token/lookup-self", "", "")
	h.do(t, "GET", "/v1/no/such/route", "", "")
	var ok2, refused4, total float64
	mfs, err := h.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "coffer_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetCounter().GetValue()
			total += v
			if strings.HasPrefix(labels["op"], "vault.") && labels["code"] == "2xx" {
				ok2 += v
			}
			if strings.HasPrefix(labels["op"], "vault.") && labels["code"] == "4xx" {
				refused4 += v
			}
		}
	}
	if ok2 != 1 || refused4 != 2 || total != 3 {
		t.Fatalf("coffer_requests_total: vault 2xx %v, vault 4xx %v, all %v; want 1, 2, 3", ok2, refused4, total)
	}
}
