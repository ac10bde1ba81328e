package vaultapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth/approle"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/vaultapi"
)

// dataOf returns body.data as a map.
func dataOf(t testing.TB, body map[string]any) map[string]any {
	t.Helper()
	d, ok := body["data"].(map[string]any)
	if !ok {
		t.Fatalf("body %v has no data object", body)
	}
	return d
}

func TestReadShapes(t *testing.T) {
	h := newHarness(t)
	h.put(t, "app/json", secret.TypeJSON, `{"user":"u","n":1}`)
	h.put(t, "app/text", secret.TypeText, "hunter2")
	h.put(t, "app/bytes", secret.TypeBinary, "\x00\xff")
	h.put(t, "app/list", secret.TypeJSON, `[1,2]`)
	for _, tc := range []struct {
		name string
		want map[string]any
	}{
		{"app/json", map[string]any{"user": "u", "n": float64(1)}},
		{"app/text", map[string]any{"value": "hunter2"}},
		{"app/bytes", map[string]any{"value_base64": "AP8="}},
		{"app/list", map[string]any{"value": []any{float64(1), float64(2)}}},
	} {
		status, body := h.do(t, "GET", "/v1/secret/data/"+tc.name, h.root, "")
		if status != 200 {
			t.Fatalf("read %s = %d %v", tc.name, status, body)
		}
		d := dataOf(t, body)
		if !reflect.DeepEqual(d["data"], tc.want) {
			t.Errorf("read %s data = %v, want %v", tc.name, d["data"], tc.want)
		}
		md := d["metadata"].(map[string]any)
		if md["version"] != float64(1) || md["destroyed"] != false || md["deletion_time"] != "" || md["created_time"] == "" {
			t.Errorf("read %s metadata = %v", tc.name, md)
		}
		// Vault's envelope.
		for _, k := range []string{"request_id", "lease_id", "renewable", "lease_duration", "wrap_info", "warnings", "auth"} {
			if _, ok := body[k]; !ok {
				t.Errorf("read %s: envelope lacks %q: %v", tc.name, k, body)
			}
		}
	}
}

func TestWriteVersionsAndCAS(t *testing.T) {
	h := newHarness(t)
	status, body := h.do(t, "POST", "/v1/secret/data/app/db", h.root, `{"data":{"password":"p1"},"options":{"cas":0}}`)
	if status != 200 || dataOf(t, body)["version"] != float64(1) {
		t.Fatalf("create = %d %v", status, body)
	}
	// cas 0 on an existing secret fails; cas as a string is read like Vault.
	if status, body := h.do(t, "PUT", "/v1/secret/data/app/db", h.root, `{"data":{"password":"p2"},"options":{"cas":0}}`); status != 400 {
		t.Fatalf("cas 0 on existing = %d %v", status, body)
	}
	if status, body := h.do(t, "PUT", "/v1/secret/data/app/db", h.root, `{"data":{"password":"p2"},"options":{"cas":"1"}}`); status != 200 || dataOf(t, body)["version"] != float64(2) {
		t.Fatalf("cas 1 = %d %v", status, body)
	}
	v, err := h.core.Secrets.Get(context.Background(), "app/db", secret.Selector{})
	if err != nil || v.Type != secret.TypeJSON || string(v.Data) != `{"password":"p2"}` {
		t.Fatalf("stored = %+v %s, %v", v, v.Data, err)
	}
	status, body = h.do(t, "GET", "/v1/secret/data/app/db?version=1", h.root, "")
	if status != 200 || dataOf(t, body)["data"].(map[string]any)["password"] != "p1" {
		t.Fatalf("read version 1 = %d %v", status, body)
	}
}

func TestCreateOnlyPolicy(t *testing.T) {
	h := newHarness(t)
	creator := h.tokenWith(t, "creator", `path "inbox/*" { capabilities = ["create"] }`)
	if status, body := h.do(t, "POST", "/v1/secret/data/inbox/a", creator, `{"data":{"k":"v"}}`); status != 200 {
		t.Fatalf("create = %d %v", status, body)
	}
	status, body := h.do(t, "POST", "/v1/secret/data/inbox/a", creator, `{"data":{"k":"v2"}}`)
	if status != 403 || !strings.HasPrefix(errorsOf(t, body)[0], "permission denied") {
		t.Fatalf("overwrite with create only = %d %v, want 403", status, body)
	}
	if status, body := h.do(t, "POST", "/v1/secret/data/inbox/b", creator, `{"data":{"k":"v"},"options":{"cas":3}}`); status != 403 {
		t.Fatalf("create only with cas 3 = %d %v, want 403", status, body)
	}
	if status, body := h.do(t, "GET", "/v1/secret/data/inbox/a", creator, ""); status != 403 {
		t.Fatalf("read with create only = %d %v, want 403", status, body)
	}
}

func TestPatch(t *testing.T) {
	h := newHarness(t)
	h.put(t, "app/cfg", secret.TypeJSON, `{"a":1,"b":{"c":2,"d":3},"e":"x"}`)
	h.put(t, "app/text", secret.TypeText, "t")
	mp := []string{"Content-Type", "application/merge-patch+json"}
	status, body := h.do(t, "PATCH", "/v1/secret/data/app/cfg", h.root, `{"data":{"b":{"c":null,"f":4},"e":null,"g":[1]}}`, mp...)
	if status != 200 || dataOf(t, body)["version"] != float64(2) {
		t.Fatalf("patch = %d %v", status, body)
	}
	v, _ := h.core.Secrets.Get(context.Background(), "app/cfg", secret.Selector{})
	var got any
	json.Unmarshal(v.Data, &got)
	want := map[string]any{"a": float64(1), "b": map[string]any{"d": float64(3), "f": float64(4)}, "g": []any{float64(1)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("patched = %s, want %v", v.Data, want)
	}
	if status, body := h.do(t, "PATCH", "/v1/secret/data/app/cfg", h.root, `{"data":{"a":2},"options":{"cas":1}}`, mp...); status != 400 || errorsOf(t, body)[0] != "check-and-set parameter did not match the current version" {
		t.Errorf("patch with stale cas = %d %v", status, body)
	}
	if status, body := h.do(t, "PATCH", "/v1/secret/data/app/text", h.root, `{"data":{"a":2}}`, mp...); status != 400 || !strings.Contains(errorsOf(t, body)[0], "text") {
		t.Errorf("patch of text = %d %v", status, body)
	}
	if status, body := h.do(t, "PATCH", "/v1/secret/data/app/none", h.root, `{"data":{"a":2}}`, mp...); status != 404 {
		t.Errorf("patch of missing = %d %v", status, body)
	}
}

func TestMergePatchRFC7386(t *testing.T) {
	// The examples of RFC 7386, appendix A, each applied to an object.
	h := newHarness(t)
	mp := []string{"Content-Type", "application/merge-patch+json"}
	for i, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"n":12345678901234567890}`, `{"m":1}`, `{"m":1,"n":12345678901234567890}`},
	} {
		name := "mp/" + string(rune('a'+i))
		h.put(t, name, secret.TypeJSON, tc.target)
		if status, body := h.do(t, "PATCH", "/v1/secret/data/"+name, h.root, `{"data":`+tc.patch+`}`, mp...); status != 200 {
			t.Fatalf("patch %s with %s = %d %v", tc.target, tc.patch, status, body)
		}
		v, _ := h.core.Secrets.Get(context.Background(), name, secret.Selector{})
		if string(v.Data) != tc.want {
			t.Errorf("patch %s with %s = %s, want %s", tc.target, tc.patch, v.Data, tc.want)
		}
	}
}

func TestDeleteUndeleteDestroy(t *testing.T) {
	h := newHarness(t)
	for _, v := range []string{`{"v":1}`, `{"v":2}`, `{"v":3}`} {
		h.put(t, "app/db", secret.TypeJSON, v)
	}
	// Older versions alone cannot be deleted.
	status, body := h.do(t, "POST", "/v1/secret/delete/app/db", h.root, `{"versions":[1,2]}`)
	if status != 400 || !strings.Contains(errorsOf(t, body)[0], "whole secrets") {
		t.Fatalf("delete old versions = %d %v", status, body)
	}
	// Including the current one soft-deletes the secret ("versions" as Vault's client sends them: strings).
	if status, body := h.do(t, "POST", "/v1/secret/delete/app/db", h.root, `{"versions":["3"]}`); status != 204 {
		t.Fatalf("delete current = %d %v", status, body)
	}
	for _, q := range []string{"", "?version=1"} {
		status, body := h.do(t, "GET", "/v1/secret/data/app/db"+q, h.root, "")
		if status != 404 {
			t.Fatalf("read deleted%s = %d %v", q, status, body)
		}
		d := dataOf(t, body)
		if d["data"] != nil || d["metadata"].(map[string]any)["deletion_time"] == "" {
			t.Errorf("read deleted%s = %v, want null data and a deletion_time", q, d)
		}
	}
	// Listing still shows it, as Vault lists keys whose versions are deleted.
	if status, _ := h.do(t, "LIST", "/v1/secret/metadata/app", h.root, ""); status != 200 {
		t.Errorf("list with a deleted secret = %d", status)
	}
	// Writing to it is refused until undeleted.
	if status, body := h.do(t, "POST", "/v1/secret/data/app/db", h.root, `{"data":{"v":4}}`); status != 400 || !strings.Contains(errorsOf(t, body)[0], "undelete") {
		t.Errorf("write to deleted = %d %v", status, body)
	}
	// Deleting again is fine.
	if status, _ := h.do(t, "DELETE", "/v1/secret/data/app/db", h.root, ""); status != 204 {
		t.Errorf("delete deleted = %d", status)
	}
	if status, body := h.do(t, "POST", "/v1/secret/undelete/app/db", h.root, `{"versions":[3]}`); status != 204 {
		t.Fatalf("undelete = %d %v", status, body)
	}
	if status, body := h.do(t, "POST", "/v1/secret/undelete/app/db", h.root, `{"versions":"1,2"}`); status != 204 {
		t.Fatalf("undelete not deleted = %d %v", status, body)
	}
	if status, _ := h.do(t, "GET", "/v1/secret/data/app/db", h.root, ""); status != 200 {
		t.Fatalf("read after undelete = %d", status)
	}
	// Destroy ignores versions that do not exist.
	if status, body := h.do(t, "PUT", "/v1/secret/destroy/app/db", h.root, `{"versions":[1,99]}`); status != 204 {
		t.Fatalf("destroy = %d %v", status, body)
	}
	status, body = h.do(t, "GET", "/v1/secret/data/app/db?version=1", h.root, "")
	if status != 404 || dataOf(t, body)["metadata"].(map[string]any)["destroyed"] != true {
		t.Errorf("read destroyed = %d %v", status, body)
	}
	status, body = h.do(t, "GET", "/v1/secret/metadata/app/db", h.root, "")
	if status != 200 {
		t.Fatalf("metadata = %d %v", status, body)
	}
	versions := dataOf(t, body)["versions"].(map[string]any)
	if versions["1"].(map[string]any)["destroyed"] != true || versions["3"].(map[string]any)["destroyed"] != false {
		t.Errorf("versions = %v", versions)
	}
	if status, _ := h.do(t, "DELETE", "/v1/secret/metadata/app/db", h.root, ""); status != 204 {
		t.Fatalf("metadata delete = %d", status)
	}
	if _, err := h.core.Secrets.Describe(context.Background(), "app/db"); err != secret.ErrNotFound {
		t.Errorf("after metadata delete: %v, want not found", err)
	}
	if status, _ := h.do(t, "DELETE", "/v1/secret/metadata/app/db", h.root, ""); status != 204 {
		t.Errorf("metadata delete of missing = %d", status)
	}
}

func TestExpiredReadsLikeDeleted(t *testing.T) {
	h := newHarness(t)
	past := time.Now().Add(-time.Minute)
	if _, err := h.core.Secrets.Put(context.Background(), secret.PutInput{Name: "old", Type: secret.TypeJSON, Value: []byte(`{}`), ExpiresAt: &past}); err != nil {
		t.Fatal(err)
	}
	status, body := h.do(t, "GET", "/v1/secret/data/old", h.root, "")
	if status != 404 || dataOf(t, body)["metadata"].(map[string]any)["deletion_time"] == "" {
		t.Errorf("read expired = %d %v", status, body)
	}
}

func TestMetadata(t *testing.T) {
	h := newHarness(t)
	h.put(t, "app/db", secret.TypeJSON, `{"v":1}`)
	// What the official client's PutMetadata sends.
	status, body := h.do(t, "POST", "/v1/secret/metadata/app/db", h.root, `{"max_versions":5,"delete_version_after":"0s","cas_required":false,"custom_metadata":{"owner":"ops","tier":1}}`)
	if status != 204 {
		t.Fatalf("metadata write = %d %v", status, body)
	}
	status, body = h.do(t, "GET", "/v1/secret/metadata/app/db", h.root, "")
	d := dataOf(t, body)
	if status != 200 || d["max_versions"] != float64(5) || d["current_version"] != float64(1) || d["cas_required"] != false ||
		d["delete_version_after"] != "0s" || d["oldest_version"] != float64(0) ||
		!reflect.DeepEqual(d["custom_metadata"], map[string]any{"owner": "ops", "tier": "1"}) {
		t.Fatalf("metadata = %d %v", status, body)
	}
	mp := []string{"Content-Type", "application/merge-patch+json"}
	if status, body := h.do(t, "PATCH", "/v1/secret/metadata/app/db", h.root, `{"custom_metadata":{"tier":null,"team":"a"}}`, mp...); status != 204 {
		t.Fatalf("metadata patch = %d %v", status, body)
	}
	m, _ := h.core.Secrets.Describe(context.Background(), "app/db")
	if !reflect.DeepEqual(m.Tags, map[string]string{"owner": "ops", "team": "a"}) || m.MaxVersions != 5 {
		t.Errorf("after patch: tags %v, max %d", m.Tags, m.MaxVersions)
	}
	// null custom_metadata clears it; max_versions 0 is the default.
	if status, body := h.do(t, "PUT", "/v1/secret/metadata/app/db", h.root, `{"max_versions":0,"custom_metadata":null}`); status != 204 {
		t.Fatalf("metadata reset = %d %v", status, body)
	}
	m, _ = h.core.Secrets.Describe(context.Background(), "app/db")
	if len(m.Tags) != 0 || m.MaxVersions != secret.DefaultMaxVersions {
		t.Errorf("after reset: tags %v, max %d", m.Tags, m.MaxVersions)
	}
	// Tags written natively show as custom_metadata in data reads.
	h.core.Secrets.UpdateMetadata(context.Background(), "app/db", secret.Patch{Tags: map[string]string{"k": "v"}})
	_, body = h.do(t, "GET", "/v1/secret/data/app/db", h.root, "")
	if cm := dataOf(t, body)["metadata"].(map[string]any)["custom_metadata"]; !reflect.DeepEqual(cm, map[string]any{"k": "v"}) {
		t.Errorf("custom_metadata in read = %v", cm)
	}
	// Pruning shows in oldest_version.
	h.do(t, "POST", "/v1/secret/metadata/app/db", h.root, `{"max_versions":2}`)
	for range 3 {
		h.do(t, "POST", "/v1/secret/data/app/db", h.root, `{"data":{"v":2}}`)
	}
	_, body = h.do(t, "GET", "/v1/secret/metadata/app/db", h.root, "")
	d = dataOf(t, body)
	if d["oldest_version"] != float64(3) || len(d["versions"].(map[string]any)) != 2 || d["current_version"] != float64(4) {
		t.Errorf("after pruning: %v", d)
	}
}

func TestTokens(t *testing.T) {
	h := newHarness(t)
	if err := h.core.Policies.Put(context.Background(), "reader", `path "app/*" { capabilities = ["read"] }`, "t"); err != nil {
		t.Fatal(err)
	}
	status, body := h.do(t, "POST", "/v1/auth/token/create", h.root, `{"policies":["reader"],"ttl":"1h","display_name":"","num_uses":0,"type":"","entity_alias":"","meta":{"team":"a"}}`)
	if status != 200 {
		t.Fatalf("create = %d %v", status, body)
	}
	a := body["auth"].(map[string]any)
	child := a["client_token"].(string)
	if !reflect.DeepEqual(a["policies"], []any{"reader"}) || a["lease_duration"].(float64) < 3590 || a["renewable"] != true ||
		a["orphan"] != false || a["token_type"] != "service" || !strings.HasPrefix(a["accessor"].(string), "acc_") {
		t.Errorf("auth = %v", a)
	}
	status, body = h.do(t, "GET", "/v1/auth/token/lookup-self", child, "")
	d := dataOf(t, body)
	if status != 200 || d["id"] != child || d["accessor"] != a["accessor"] || d["ttl"].(float64) < 3590 || d["type"] != "service" ||
		d["path"] != "auth/token/create" || d["orphan"] != false || !reflect.DeepEqual(d["meta"], map[string]any{"team": "a"}) {
		t.Errorf("lookup-self = %d %v", status, body)
	}
	status, body = h.do(t, "PUT", "/v1/auth/token/renew-self", child, `{"increment":1800}`)
	if status != 200 || body["auth"].(map[string]any)["lease_duration"].(float64) > 1800 {
		t.Errorf("renew-self = %d %v", status, body)
	}
	// No escalation: a child may only hold its creator's policies.
	status, body = h.do(t, "POST", "/v1/auth/token/create", child, `{"policies":["root"]}`)
	if status != 403 || !strings.HasPrefix(errorsOf(t, body)[0], "permission denied") {
		t.Errorf("escalation = %d %v", status, body)
	}
	// Orphans need update on auth/token/create-orphan.
	if status, body := h.do(t, "POST", "/v1/auth/token/create-orphan", child, `{}`); status != 403 {
		t.Errorf("create-orphan by child = %d %v", status, body)
	}
	if status, body := h.do(t, "POST", "/v1/auth/token/create", child, `{"no_parent":true}`); status != 403 {
		t.Errorf("no_parent by child = %d %v", status, body)
	}
	status, body = h.do(t, "POST", "/v1/auth/token/create-orphan", h.root, `{"policies":"reader","renewable":false}`)
	if status != 200 || body["auth"].(map[string]any)["orphan"] != true || body["auth"].(map[string]any)["renewable"] != false {
		t.Errorf("create-orphan by root = %d %v", status, body)
	}
	// Not renewable: a 400.
	orphan := body["auth"].(map[string]any)["client_token"].(string)
	if status, body := h.do(t, "POST", "/v1/auth/token/renew-self", orphan, ``); status != 400 {
		t.Errorf("renew of non-renewable = %d %v", status, body)
	}
	// Bearer works as well as X-Vault-Token.
	if status, _ := h.do(t, "GET", "/v1/auth/token/lookup-self", "", "", "Authorization", "Bearer "+child); status != 200 {
		t.Errorf("lookup-self with Bearer = %d", status)
	}
}

// approleLogin makes role (with the reader policy; a secret_id serves uses
// logins, 0: any number) and returns its role_id, a new secret_id and the
// body of a login with both.
func approleLogin(t *testing.T, h *harness, role string, uses int) (roleID, secretID, login string) {
	t.Helper()
	r := approleRole(role, "reader")
	r.SecretIDNumUses = uses
	got, err := h.core.AppRole.PutRole(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	sid, _, _, err := h.core.AppRole.GenerateSecretID(context.Background(), role, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got.RoleID, sid, `{"role_id":"` + got.RoleID + `","secret_id":"` + sid + `"}`
}

func TestApproleLogin(t *testing.T) {
	h := newHarness(t)
	_, _, login := approleLogin(t, h, "web", 0)
	status, body := h.do(t, "POST", "/v1/auth/approle/login", "", login)
	if status != 200 {
		t.Fatalf("login = %d %v", status, body)
	}
	a := body["auth"].(map[string]any)
	if !reflect.DeepEqual(a["policies"], []any{"reader"}) || a["orphan"] != true || a["client_token"] == "" {
		t.Errorf("auth = %v", a)
	}
	status, body = h.do(t, "GET", "/v1/auth/token/lookup-self", a["client_token"].(string), "")
	if status != 200 || dataOf(t, body)["path"] != "auth/approle/login" {
		t.Errorf("lookup-self of approle token = %d %v", status, body)
	}
}

func TestSysEndpoints(t *testing.T) {
	h := newHarness(t)
	status, body := h.do(t, "GET", "/v1/sys/health", "", "")
	if status != 200 || body["initialized"] != true || body["sealed"] != false || body["standby"] != false ||
		body["cluster_name"] != "coffer" || body["version"] == "" || body["server_time_utc"].(float64) < 1e9 {
		t.Errorf("health = %d %v", status, body)
	}
	status, body = h.do(t, "GET", "/v1/sys/seal-status", "", "")
	if status != 200 || body["type"] != "shamir" || body["t"] != float64(1) || body["n"] != float64(1) || body["sealed"] != false {
		t.Errorf("seal-status = %d %v", status, body)
	}
	h.core.Seal()
	if status, body := h.do(t, "GET", "/v1/sys/health", "", ""); status != 503 || body["sealed"] != true {
		t.Errorf("sealed health = %d %v", status, body)
	}
	if status, _ := h.do(t, "GET", "/v1/sys/health?sealedcode=299&standbycode=299", "", ""); status != 299 {
		t.Errorf("sealed health with sealedcode = %d", status)
	}
	if status, body := h.do(t, "GET", "/v1/sys/seal-status", "", ""); status != 200 || body["sealed"] != true {
		t.Errorf("sealed seal-status = %d %v", status, body)
	}
}

func TestHealthUninitialized(t *testing.T) {
	api := vaultapi.New(vaultapi.Config{Core: core.New(core.Config{Backend: mem.New()})})
	for _, tc := range []struct {
		query  string
		status int
	}{{"", 501}, {"?uninitcode=299", 299}} {
		w := httptest.NewRecorder()
		api.ServeHTTP(w, httptest.NewRequest("GET", "/v1/sys/health"+tc.query, nil))
		var body map[string]any
		json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tc.status || body["initialized"] != false {
			t.Errorf("health%s uninitialized = %d %v, want %d", tc.query, w.Code, body, tc.status)
		}
	}
}

func TestMountInfo(t *testing.T) {
	h := newHarness(t)
	status, body := h.do(t, "GET", "/v1/sys/internal/ui/mounts/secret/app/db", h.root, "")
	d := dataOf(t, body)
	if status != 200 || d["path"] != "secret/" || d["options"].(map[string]any)["version"] != "2" {
		t.Errorf("mount info = %d %v", status, body)
	}
	if status, _ := h.do(t, "GET", "/v1/sys/internal/ui/mounts/other", h.root, ""); status != 404 {
		t.Errorf("mount info of another mount = %d", status)
	}
	if status, _ := h.do(t, "GET", "/v1/sys/internal/ui/mounts/secret", "", ""); status != 403 {
		t.Errorf("mount info without a token = %d", status)
	}
}

func TestRoutesNamed(t *testing.T) {
	h := newHarness(t)
	var ops []string
	for _, rt := range h.api.Routes() {
		if !strings.HasPrefix(rt.Op, "vault.") {
			t.Errorf("route %s %s has op %q", rt.Method, rt.Pattern, rt.Op)
		}
		ops = append(ops, rt.Op)
	}
	for _, want := range []string{"vault.kv.read", "vault.kv.write", "vault.kv.list", "vault.token.create", "vault.approle.login", "vault.sys.health"} {
		if !slices.Contains(ops, want) {
			t.Errorf("no route with op %s", want)
		}
	}
}

func approleRole(name string, policies ...string) approle.Role {
	r := approle.Role{Name: name}
	r.Policies = policies
	return r
}
