package compat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// vaultClient returns the official Vault client pointed at Coffer's Vault
// API, configured the way an application would: VAULT_ADDR is the server
// address plus /vault.
func vaultClient(t testing.TB, tok string) *vault.Client {
	t.Helper()
	dumpLogOnFailure(t)
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		t.Fatal(cfg.Error)
	}
	cfg.Address = server.url + "/vault"
	cfg.Timeout = 30 * time.Second
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok)
	return c
}

// responseError unwraps the client's typed error.
func responseError(t testing.TB, err error) *vault.ResponseError {
	t.Helper()
	var re *vault.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *vault.ResponseError", err, err)
	}
	return re
}

// applyPolicy stores a policy through the native API.
func applyPolicy(t testing.TB, name, src string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"source": src})
	req, _ := http.NewRequest("PUT", server.url+"/v1/sys/policy/"+name, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+server.root)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("put policy %s: %s", name, resp.Status)
	}
}

func TestKVv2PutGet(t *testing.T) {
	ctx := context.Background()
	kv := vaultClient(t, server.root).KVv2("secret")
	s, err := kv.Put(ctx, "compat/putget", map[string]any{"user": "app", "password": "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.VersionMetadata.Version != 1 || s.VersionMetadata.CreatedTime.IsZero() || s.VersionMetadata.Destroyed {
		t.Errorf("put metadata = %+v", s.VersionMetadata)
	}
	if _, err := kv.Put(ctx, "compat/putget", map[string]any{"user": "app", "password": "p2", "port": 5432}); err != nil {
		t.Fatal(err)
	}
	s, err = kv.Get(ctx, "compat/putget")
	if err != nil {
		t.Fatal(err)
	}
	if s.VersionMetadata.Version != 2 || s.Data["password"] != "p2" || s.Data["port"] != json.Number("5432") && s.Data["port"] != float64(5432) {
		t.Errorf("get = %+v %+v", s.Data, s.VersionMetadata)
	}
	s, err = kv.GetVersion(ctx, "compat/putget", 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.VersionMetadata.Version != 1 || s.Data["password"] != "p1" {
		t.Errorf("get version 1 = %+v %+v", s.Data, s.VersionMetadata)
	}
	if _, err := kv.Get(ctx, "compat/none"); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Errorf("get missing = %v, want ErrSecretNotFound", err)
	}
	if _, err := kv.GetVersion(ctx, "compat/putget", 9); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Errorf("get missing version = %v, want ErrSecretNotFound", err)
	}
	// Rollback is Get + GetVersion + Put with cas: all of it works.
	s, err = kv.Rollback(ctx, "compat/putget", 1)
	if err != nil || s.VersionMetadata.Version != 3 {
		t.Fatalf("rollback = %+v, %v", s, err)
	}
	if s, _ := kv.Get(ctx, "compat/putget"); s.Data["password"] != "p1" {
		t.Errorf("after rollback = %v", s.Data)
	}
}

func TestKVv2CheckAndSet(t *testing.T) {
	ctx := context.Background()
	kv := vaultClient(t, server.root).KVv2("secret")
	if _, err := kv.Put(ctx, "compat/cas", map[string]any{"v": "1"}, vault.WithCheckAndSet(0)); err != nil {
		t.Fatalf("create with cas 0: %v", err)
	}
	if _, err := kv.Put(ctx, "compat/cas", map[string]any{"v": "2"}, vault.WithCheckAndSet(1)); err != nil {
		t.Fatalf("cas 1: %v", err)
	}
	start := time.Now()
	_, err := kv.Put(ctx, "compat/cas", map[string]any{"v": "lost"}, vault.WithCheckAndSet(1))
	re := responseError(t, err)
	// Vault answers a cas mismatch with 400 and this message; a 412 would
	// make the client retry it (its retry policy treats 412 as "replica behind").
	if re.StatusCode != http.StatusBadRequest || !slices.Contains(re.Errors, "check-and-set parameter did not match the current version") {
		t.Errorf("stale cas = %d %q", re.StatusCode, re.Errors)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("stale cas took %v: the client retried it", d)
	}
	if s, _ := kv.Get(ctx, "compat/cas"); s.Data["v"] != "2" || s.VersionMetadata.Version != 2 {
		t.Errorf("after refused cas = %v", s.Data)
	}
}

func TestKVv2Patch(t *testing.T) {
	ctx := context.Background()
	kv := vaultClient(t, server.root).KVv2("secret")
	if _, err := kv.Put(ctx, "compat/patch", map[string]any{"a": "1", "b": "2", "nested": map[string]any{"x": "1", "y": "2"}}); err != nil {
		t.Fatal(err)
	}
	// The default method is an HTTP PATCH with a JSON merge patch.
	s, err := kv.Patch(ctx, "compat/patch", map[string]any{"b": nil, "c": "3", "nested": map[string]any{"y": nil}})
	if err != nil {
		t.Fatal(err)
	}
	if s.VersionMetadata.Version != 2 {
		t.Errorf("patch version = %d", s.VersionMetadata.Version)
	}
	got, _ := kv.Get(ctx, "compat/patch")
	want := map[string]any{"a": "1", "c": "3", "nested": map[string]any{"x": "1"}}
	if !reflect.DeepEqual(got.Data, want) {
		t.Errorf("after patch = %v, want %v", got.Data, want)
	}
	// The read-then-write method (GET, then PUT with cas).
	if _, err := kv.Patch(ctx, "compat/patch", map[string]any{"d": "4"}, vault.WithMergeMethod(vault.KVMergeMethodReadWrite)); err != nil {
		t.Fatal(err)
	}
	if got, _ := kv.Get(ctx, "compat/patch"); got.Data["d"] != "4" || got.Data["a"] != "1" || got.VersionMetadata.Version != 3 {
		t.Errorf("after rw patch = %v", got.Data)
	}
	// Patching a missing secret is the client's ErrSecretNotFound.
	if _, err := kv.Patch(ctx, "compat/nopatch", map[string]any{"a": "1"}); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Errorf("patch missing = %v", err)
	}
}

func TestKVv2DeleteUndeleteDestroy(t *testing.T) {
	ctx := context.Background()
	kv := vaultClient(t, server.root).KVv2("secret")
	for _, v := range []string{"1", "2", "3"} {
		if _, err := kv.Put(ctx, "compat/del", map[string]any{"v": v}); err != nil {
			t.Fatal(err)
		}
	}
	// Coffer deletes whole secrets: deleting older versions alone is refused clearly.
	err := kv.DeleteVersions(ctx, "compat/del", []int{1})
	if re := responseError(t, err); re.StatusCode != 400 || !strings.Contains(strings.Join(re.Errors, " "), "whole secrets") {
		t.Errorf("delete old version = %d %q", re.StatusCode, re.Errors)
	}
	if err := kv.Delete(ctx, "compat/del"); err != nil {
		t.Fatal(err)
	}
	// Like Vault for a deleted version: no data, but metadata with a deletion time.
	s, err := kv.Get(ctx, "compat/del")
	if err != nil {
		t.Fatalf("get deleted: %v", err)
	}
	if s.Data != nil || s.VersionMetadata == nil || s.VersionMetadata.DeletionTime.IsZero() || s.VersionMetadata.Version != 3 {
		t.Errorf("get deleted = %+v %+v", s.Data, s.VersionMetadata)
	}
	if err := kv.Undelete(ctx, "compat/del", []int{3}); err != nil {
		t.Fatal(err)
	}
	if s, err := kv.Get(ctx, "compat/del"); err != nil || s.Data["v"] != "3" {
		t.Fatalf("get after undelete = %+v, %v", s, err)
	}
	// DeleteVersions including the current version deletes the secret.
	if err := kv.DeleteVersions(ctx, "compat/del", []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	if s, _ := kv.Get(ctx, "compat/del"); s.Data != nil {
		t.Errorf("after DeleteVersions(2,3) = %v", s.Data)
	}
	if err := kv.Undelete(ctx, "compat/del", []int{2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := kv.Destroy(ctx, "compat/del", []int{1}); err != nil {
		t.Fatal(err)
	}
	s, err = kv.GetVersion(ctx, "compat/del", 1)
	if err != nil {
		t.Fatalf("get destroyed: %v", err)
	}
	if s.Data != nil || !s.VersionMetadata.Destroyed {
		t.Errorf("get destroyed = %+v %+v", s.Data, s.VersionMetadata)
	}
	versions, err := kv.GetVersionsAsList(ctx, "compat/del")
	if err != nil || len(versions) != 3 || !versions[0].Destroyed || versions[2].Destroyed {
		t.Errorf("versions = %+v, %v", versions, err)
	}
}

func TestKVv2Metadata(t *testing.T) {
	ctx := context.Background()
	kv := vaultClient(t, server.root).KVv2("secret")
	if _, err := kv.Put(ctx, "compat/meta", map[string]any{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := kv.PutMetadata(ctx, "compat/meta", vault.KVMetadataPutInput{MaxVersions: 5, CustomMetadata: map[string]any{"owner": "payments"}}); err != nil {
		t.Fatal(err)
	}
	md, err := kv.GetMetadata(ctx, "compat/meta")
	if err != nil {
		t.Fatal(err)
	}
	if md.MaxVersions != 5 || md.CurrentVersion != 1 || md.CASRequired || md.DeleteVersionAfter != 0 ||
		!reflect.DeepEqual(md.CustomMetadata, map[string]any{"owner": "payments"}) || len(md.Versions) != 1 || md.CreatedTime.IsZero() {
		t.Errorf("metadata = %+v", md)
	}
	// custom_metadata shows in data reads too.
	if s, _ := kv.Get(ctx, "compat/meta"); !reflect.DeepEqual(s.CustomMetadata, map[string]any{"owner": "payments"}) {
		t.Errorf("custom metadata in read = %v", s.CustomMetadata)
	}
	three := 3
	if err := kv.PatchMetadata(ctx, "compat/meta", vault.KVMetadataPatchInput{MaxVersions: &three, CustomMetadata: map[string]any{"team": "core"}}); err != nil {
		t.Fatal(err)
	}
	md, _ = kv.GetMetadata(ctx, "compat/meta")
	if md.MaxVersions != 3 || !reflect.DeepEqual(md.CustomMetadata, map[string]any{"owner": "payments", "team": "core"}) {
		t.Errorf("after patch = %+v", md)
	}
	err = kv.PutMetadata(ctx, "compat/meta", vault.KVMetadataPutInput{CASRequired: true})
	if re := responseError(t, err); re.StatusCode != 400 || !strings.Contains(strings.Join(re.Errors, " "), "cas_required") {
		t.Errorf("cas_required = %d %q", re.StatusCode, re.Errors)
	}
	if err := kv.DeleteMetadata(ctx, "compat/meta"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "compat/meta"); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Errorf("get after metadata delete = %v", err)
	}
	if _, err := kv.GetMetadata(ctx, "compat/meta"); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Errorf("metadata after delete = %v", err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	c := vaultClient(t, server.root)
	kv := c.KVv2("secret")
	for _, p := range []string{"list/a", "list/b", "list/dir/c", "list/dir/deeper/d"} {
		if _, err := kv.Put(ctx, p, map[string]any{"v": "1"}); err != nil {
			t.Fatal(err)
		}
	}
	keysOf := func(path string) []string {
		t.Helper()
		s, err := c.Logical().ListWithContext(ctx, path)
		if err != nil {
			t.Fatalf("list %s: %v", path, err)
		}
		if s == nil {
			return nil
		}
		var out []string
		for _, k := range s.Data["keys"].([]any) {
			out = append(out, k.(string))
		}
		return out
	}
	if got := keysOf("secret/metadata/list"); !slices.Equal(got, []string{"a", "b", "dir/"}) {
		t.Errorf("list = %q", got)
	}
	if got := keysOf("secret/metadata/list/dir/"); !slices.Equal(got, []string{"c", "deeper/"}) {
		t.Errorf("list dir = %q", got)
	}
	if got := keysOf("secret/metadata/"); !slices.Contains(got, "list/") {
		t.Errorf("list root = %q", got)
	}
	if got := keysOf("secret/metadata/list/nothing"); got != nil {
		t.Errorf("list of nothing = %q, want nil (404)", got)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	c := vaultClient(t, server.root)
	applyPolicy(t, "compat-reader", `path "compat/*" { capabilities = ["read", "list"] }`)
	s, err := c.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{Policies: []string{"compat-reader"}, TTL: "1h", DisplayName: "compat"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Auth == nil || s.Auth.ClientToken == "" || !slices.Equal(s.Auth.Policies, []string{"compat-reader"}) ||
		!s.Auth.Renewable || s.Auth.LeaseDuration < 3590 || s.Auth.Orphan {
		t.Fatalf("create = %+v", s.Auth)
	}
	child := vaultClient(t, s.Auth.ClientToken)
	self, err := child.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := self.TokenID(); id != s.Auth.ClientToken {
		t.Errorf("lookup-self id differs")
	}
	if acc, _ := self.TokenAccessor(); acc != s.Auth.Accessor {
		t.Errorf("lookup-self accessor = %q, want %q", acc, s.Auth.Accessor)
	}
	if pols, _ := self.TokenPolicies(); !slices.Equal(pols, []string{"compat-reader"}) {
		t.Errorf("lookup-self policies = %q", pols)
	}
	if ttl, err := self.TokenTTL(); err != nil || ttl < 59*time.Minute {
		t.Errorf("lookup-self ttl = %v, %v", ttl, err)
	}
	if ok, err := self.TokenIsRenewable(); err != nil || !ok {
		t.Errorf("lookup-self renewable = %v, %v", ok, err)
	}
	r, err := child.Auth().Token().RenewSelfWithContext(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if r.Auth == nil || r.Auth.LeaseDuration > 600 || r.Auth.LeaseDuration < 590 {
		t.Errorf("renew-self = %+v", r.Auth)
	}
	// A child cannot grant itself more.
	_, err = child.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{Policies: []string{"root"}})
	if re := responseError(t, err); re.StatusCode != 403 {
		t.Errorf("escalation = %d %q", re.StatusCode, re.Errors)
	}
}

func TestAppRoleLogin(t *testing.T) {
	ctx := context.Background()
	applyPolicy(t, "compat-app", `path "compat/app/*" { capabilities = ["read"] }`)
	// Set the role up with the coffer CLI, as an operator would.
	cli(t, server.root, "auth", "approle", "put-role", "compat-web", "--policy", "compat-app")
	roleID := strings.TrimSpace(cli(t, server.root, "auth", "approle", "role-id", "compat-web"))
	secretID := strings.TrimSpace(cli(t, server.root, "auth", "approle", "secret-id", "compat-web"))
	if _, err := vaultClient(t, server.root).KVv2("secret").Put(ctx, "compat/app/config", map[string]any{"dsn": "postgres://x"}); err != nil {
		t.Fatal(err)
	}
	// The way applications log in with AppRole through the official client.
	c := vaultClient(t, "")
	s, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		t.Fatal(err)
	}
	if s.Auth == nil || s.Auth.ClientToken == "" || !slices.Equal(s.Auth.Policies, []string{"compat-app"}) || !s.Auth.Orphan {
		t.Fatalf("login auth = %+v", s.Auth)
	}
	c.SetToken(s.Auth.ClientToken)
	if got, err := c.KVv2("secret").Get(ctx, "compat/app/config"); err != nil || got.Data["dsn"] != "postgres://x" {
		t.Fatalf("read with the approle token = %+v, %v", got, err)
	}
	_, err = vaultClient(t, "").Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": "wrong"})
	if re := responseError(t, err); re.StatusCode != 400 {
		t.Errorf("bad login = %d %q", re.StatusCode, re.Errors)
	}
}

func TestSys(t *testing.T) {
	c := vaultClient(t, "")
	h, err := c.Sys().Health()
	if err != nil {
		t.Fatal(err)
	}
	if !h.Initialized || h.Sealed || h.Standby || h.Version == "" || h.ClusterName != "coffer" || h.ServerTimeUTC < time.Now().Add(-time.Hour).Unix() {
		t.Errorf("health = %+v", h)
	}
	st, err := c.Sys().SealStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.Type != "shamir" || !st.Initialized || st.Sealed || st.T != 1 || st.N != 1 || st.Version == "" {
		t.Errorf("seal-status = %+v", st)
	}
}

func TestRefused(t *testing.T) {
	ctx := context.Background()
	root := vaultClient(t, server.root)
	if _, err := root.KVv2("secret").Put(ctx, "compat/private/key", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	applyPolicy(t, "compat-deny", `
path "compat/*" { capabilities = ["read", "list"] }
path "compat/private/*" { capabilities = ["deny"] }
`)
	s, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"compat-deny"}})
	if err != nil {
		t.Fatal(err)
	}
	c := vaultClient(t, s.Auth.ClientToken)
	_, err = c.KVv2("secret").Get(ctx, "compat/private/key")
	re := responseError(t, err)
	if re.StatusCode != 403 || len(re.Errors) != 1 || !strings.HasPrefix(re.Errors[0], "permission denied") {
		t.Errorf("denied read = %d %q", re.StatusCode, re.Errors)
	}
	if _, err := c.KVv2("secret").Put(ctx, "compat/public", map[string]any{"k": "v"}); responseError(t, err).StatusCode != 403 {
		t.Errorf("write without create/update = %v", err)
	}
	// The denied folder never shows in a list.
	if _, err := root.KVv2("secret").Put(ctx, "compat/visible", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	l, err := c.Logical().List("secret/metadata/compat")
	if err != nil {
		t.Fatal(err)
	}
	if keys := l.Data["keys"].([]any); slices.Contains(keys, any("private/")) || !slices.Contains(keys, any("visible")) {
		t.Errorf("list with deny = %v", keys)
	}
	// No token and a bad token: 403 "permission denied", as Vault answers.
	for _, tok := range []string{"", "not-a-token"} {
		_, err := vaultClient(t, tok).KVv2("secret").Get(ctx, "compat/visible")
		if re := responseError(t, err); re.StatusCode != 403 || !slices.Equal(re.Errors, []string{"permission denied"}) {
			t.Errorf("token %q: %d %q", tok, re.StatusCode, re.Errors)
		}
	}
}

// TestNativeInterop: what the coffer CLI writes the Vault client reads, and
// the other way round.
func TestNativeInterop(t *testing.T) {
	ctx := context.Background()
	kv := vaultClient(t, server.root).KVv2("secret")
	cli(t, server.root, "secret", "put", "interop/native", `{"host":"db","port":5432}`, "--type", "json")
	s, err := kv.Get(ctx, "interop/native")
	if err != nil {
		t.Fatal(err)
	}
	if s.Data["host"] != "db" || s.VersionMetadata.Version != 1 {
		t.Errorf("native JSON through Vault = %v", s.Data)
	}
	cli(t, server.root, "secret", "put", "interop/text", "hunter2")
	if s, err := kv.Get(ctx, "interop/text"); err != nil || !maps.Equal(s.Data, map[string]any{"value": "hunter2"}) {
		t.Errorf("native text through Vault = %v, %v", s, err)
	}
	bin := filepath.Join(t.TempDir(), "key.bin")
	os.WriteFile(bin, []byte{0, 1, 0xfe, 0xff}, 0o600)
	cli(t, server.root, "secret", "put", "interop/bytes", "@"+bin, "--type", "binary")
	if s, err := kv.Get(ctx, "interop/bytes"); err != nil || !maps.Equal(s.Data, map[string]any{"value_base64": "AAH+/w=="}) {
		t.Errorf("native bytes through Vault = %v, %v", s, err)
	}

	if _, err := kv.Put(ctx, "interop/vault", map[string]any{"token": "abc", "n": 1}); err != nil {
		t.Fatal(err)
	}
	if got := cli(t, server.root, "secret", "get", "interop/vault", "--field", "token"); strings.TrimSpace(got) != "abc" {
		t.Errorf("coffer secret get --field token = %q", got)
	}
	var out struct {
		Type    string          `json:"type"`
		Version int             `json:"version"`
		Value   json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal([]byte(cli(t, server.root, "secret", "get", "interop/vault", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	json.Compact(&compact, out.Value)
	if out.Type != "json" || out.Version != 1 || compact.String() != `{"n":1,"token":"abc"}` {
		t.Errorf("coffer secret get --json = %+v %s", out, out.Value)
	}
	// Tags set natively are Vault custom_metadata.
	cli(t, server.root, "secret", "update", "interop/vault", "--tag", "team=core")
	if md, err := kv.GetMetadata(ctx, "interop/vault"); err != nil || md.CustomMetadata["team"] != "core" {
		t.Errorf("native tag as custom_metadata = %+v, %v", md, err)
	}
}
