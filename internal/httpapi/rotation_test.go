package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/auth/token"
)

func TestRotationAPI(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.c.PutText(ctx, "prod/api-key", "first-value"); err != nil {
		t.Fatal(err)
	}
	st, err := h.c.SetRotation(ctx, "prod/api-key", client.RotationPolicy{Schedule: "every 30d", Grace: "1h", Rotator: "password",
		Options: json.RawMessage(`{"length":40,"exclude_punctuation":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	if st.Policy.Schedule != "every 30d" || st.Policy.Grace != "1h" || st.State == nil || st.State.NextDue == nil || st.Source != "secret" {
		t.Fatalf("SetRotation = %+v", st)
	}
	res, err := h.c.Rotate(ctx, "prod/api-key", client.RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rotated || res.Version != 2 || res.State.Status != "scheduled" {
		t.Fatalf("Rotate = %+v", res)
	}
	s, err := h.c.Get(ctx, "prod/api-key", client.Current())
	if err != nil || len(s.Text()) != 40 || s.Version != 2 {
		t.Fatalf("current after rotation = %v %v", s, err)
	}
	if p, err := h.c.Get(ctx, "prod/api-key", client.Stage("previous")); err != nil || p.Text() != "first-value" {
		t.Fatalf("previous inside the grace window = %v, %v", p, err)
	}
	got, err := h.c.Rotation(ctx, "prod/api-key")
	if err != nil || got.State.Rotations != 1 || got.State.RevokeAt == nil {
		t.Fatalf("Rotation = %+v, %v", got, err)
	}

	var ce *client.Error
	if _, err := h.c.CancelRotation(ctx, "prod/api-key"); !errors.As(err, &ce) || ce.Code != "not_rotating" || ce.StatusCode != 409 {
		t.Fatalf("cancel with nothing in flight = %v", err)
	}
	if _, err := h.c.Rotate(ctx, "prod/none", client.RotateOptions{}); !errors.As(err, &ce) || ce.StatusCode != 404 {
		t.Fatalf("rotate a missing secret = %v", err)
	}
	h.c.PutText(ctx, "prod/unmanaged", "x")
	if _, err := h.c.Rotate(ctx, "prod/unmanaged", client.RotateOptions{}); !errors.As(err, &ce) || ce.Code != "no_rotation_policy" {
		t.Fatalf("rotate without a policy = %v", err)
	}
	if _, err := h.c.SetRotation(ctx, "prod/api-key", client.RotationPolicy{Schedule: "every 1d", Grace: "2d", Rotator: "password"}); !errors.As(err, &ce) || ce.StatusCode != 400 || !strings.Contains(ce.Message, "grace") {
		t.Fatalf("grace longer than the interval = %v", err)
	}
	if status, body := h.raw(t, "PUT", "/v1/rotation/secrets/prod/api-key", h.root, `{"rotator":"password","bogus":1}`); status != 400 || !strings.Contains(errCode(body), "invalid") {
		t.Fatalf("unknown field = %d %v", status, body)
	}

	// Prefix policy and emergency rotation.
	h.c.PutText(ctx, "payments/db", "p1")
	h.c.PutText(ctx, "payments/stripe", "p2")
	if _, err := h.c.SetPrefixRotation(ctx, "payments/", client.RotationPolicy{Schedule: "every 7d", Rotator: "password"}); err != nil {
		t.Fatal(err)
	}
	if pr, err := h.c.RotationPrefixes(ctx); err != nil || len(pr) != 1 || pr[0] != "payments/" {
		t.Fatalf("RotationPrefixes = %v, %v", pr, err)
	}
	rep, err := h.c.EmergencyRotate(ctx, "payments/", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rotated) != 2 || len(rep.Failed) != 0 {
		t.Fatalf("emergency report = %+v", rep)
	}
	if st, _ := h.c.Rotation(ctx, "payments/db"); st.Source != "prefix:payments/" {
		t.Fatalf("payments/db source = %q", st.Source)
	}

	if err := h.c.DeleteRotation(ctx, "prod/api-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Rotation(ctx, "prod/api-key"); !errors.As(err, &ce) || ce.StatusCode != 404 {
		t.Fatalf("status after delete = %v", err)
	}
}

// TestRotationAuthorization: trigger needs rotate, policies need update,
// status needs read; emergency names only what the caller may list.
func TestRotationAuthorization(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, n := range []string{"team/a", "team/b", "team/secret-c"} {
		h.c.PutText(ctx, n, "v-"+n)
	}
	if _, err := h.c.SetPrefixRotation(ctx, "team/", client.RotationPolicy{Rotator: "password"}); err != nil {
		t.Fatal(err)
	}
	pol := `
path "team/a" { capabilities = ["rotate", "read"] }
path "team/b" { capabilities = ["list"] }
path "sys/rotation/emergency" { capabilities = ["rotate"] }
`
	if err := h.core.Policies.Put(ctx, "responder", pol, "test"); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	tok, _, err := h.core.Tokens.Create(ctx, token.CreateInput{DisplayName: "responder", Policies: []string{"responder"}})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := client.New(client.Config{Address: h.srv.URL, Token: tok})
	if _, err := rc.Rotate(ctx, "team/a", client.RotateOptions{}); err != nil {
		t.Fatalf("rotate with the rotate capability: %v", err)
	}
	var ce *client.Error
	if _, err := rc.Rotate(ctx, "team/b", client.RotateOptions{}); !errors.As(err, &ce) || ce.StatusCode != 403 {
		t.Fatalf("rotate without it = %v", err)
	}
	if _, err := rc.SetRotation(ctx, "team/a", client.RotationPolicy{Rotator: "password"}); !errors.As(err, &ce) || ce.StatusCode != 403 {
		t.Fatalf("set policy without update = %v", err)
	}
	rep, err := rc.EmergencyRotate(ctx, "team/", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rotated) != 1 || rep.Rotated[0].Name != "team/a" || rep.Denied != 1 || len(rep.Failed) != 0 {
		t.Fatalf("emergency report = %+v", rep)
	}
}

// TestEmergencyReadableBy: "rotate everything the payments service can
// read" picks the secrets the payments policy grants read on, wherever they
// are, including grants that hold only from some addresses, and nothing else.
func TestEmergencyReadableBy(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, n := range []string{"pay/db", "pay/stripe", "shared/smtp", "orders/db"} {
		h.c.PutText(ctx, n, "v")
		if _, err := h.c.SetRotation(ctx, n, client.RotationPolicy{Rotator: "password"}); err != nil {
			t.Fatal(err)
		}
	}
	pol := `
path "pay/*" { capabilities = ["read"] }
path "shared/smtp" {
  capabilities = ["read"]
  condition {
    source_cidrs = ["10.0.0.0/8"]
  }
}
path "pay/stripe" { capabilities = ["deny"] }
`
	if err := h.core.Policies.Put(ctx, "payments", pol, "test"); err != nil {
		t.Fatal(err)
	}
	rep, err := h.c.EmergencyRotation(ctx, client.EmergencyInput{ReadableBy: []string{"payments"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Rotated {
		got = append(got, r.Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"pay/db", "shared/smtp"}) || len(rep.Failed) != 0 || rep.Denied != 0 {
		t.Fatalf("rotated %v (report %+v), want pay/db and shared/smtp", got, rep)
	}
	if _, err := h.c.EmergencyRotation(ctx, client.EmergencyInput{ReadableBy: []string{"no-such-policy"}}); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("unknown policy = %v", err)
	}
	if _, err := h.c.EmergencyRotation(ctx, client.EmergencyInput{}); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("neither prefix nor policies = %v", err)
	}
}

// tokenWith returns a client whose token has only the policy text pol.
func (h *harness) tokenWith(t *testing.T, name, pol string) *client.Client {
	t.Helper()
	ctx := context.Background()
	if err := h.core.Policies.Put(ctx, name, pol, "test"); err != nil {
		t.Fatalf("put policy: %v", err)
	}
	tok, _, err := h.core.Tokens.Create(ctx, token.CreateInput{DisplayName: name, Policies: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(client.Config{Address: h.srv.URL, Token: tok})
	return c
}

// TestWebhookPolicyNeedsRead: a webhook receives the secret's values, so
// update alone must not let a caller point one at their own endpoint.
func TestWebhookPolicyNeedsRead(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.PutText(ctx, "app/token", "the-value")
	h.c.PutText(ctx, "app/other", "other-value")
	writer := h.tokenWith(t, "writer", `path "app/token" { capabilities = ["update"] }`)
	hook := client.RotationPolicy{Rotator: "webhook", Options: json.RawMessage(`{"url":"https://hooks.example.com/rotate"}`)}
	var ce *client.Error
	if _, err := writer.SetRotation(ctx, "app/token", hook); !errors.As(err, &ce) || ce.StatusCode != 403 {
		t.Fatalf("webhook policy with update only = %v, want 403", err)
	}
	if _, err := writer.SetRotation(ctx, "app/token", client.RotationPolicy{Rotator: "password"}); err != nil {
		t.Fatalf("password policy with update: %v", err)
	}
	reader := h.tokenWith(t, "reader-writer", `path "app/token" { capabilities = ["update", "read"] }`)
	if _, err := reader.SetRotation(ctx, "app/token", hook); err != nil {
		t.Fatalf("webhook policy with read and update: %v", err)
	}
	// Reading another secret through the rotator needs read on it and on the rotated secret.
	h.c.Put(ctx, "app/admin", client.PutInput{JSON: json.RawMessage(`{"engine":"postgresql","host":"db","username":"admin","password":"pw"}`)})
	refs := h.tokenWith(t, "refs", `
path "app/other" { capabilities = ["update"] }
path "app/admin" { capabilities = ["read"] }
`)
	db := client.RotationPolicy{Rotator: "postgresql", Options: json.RawMessage(`{"strategy":"alternating","master_secret":"app/admin","users":["a","b"]}`)}
	if _, err := refs.SetRotation(ctx, "app/other", db); !errors.As(err, &ce) || ce.StatusCode != 403 {
		t.Fatalf("alternating policy without read on the secret = %v, want 403", err)
	}
	// Private webhook addresses are refused unless the server allows them.
	hook.Options = json.RawMessage(`{"url":"https://169.254.169.254/latest/meta-data"}`)
	if _, err := h.c.SetRotation(ctx, "app/token", hook); !errors.As(err, &ce) || ce.StatusCode != 400 {
		t.Fatalf("webhook to the metadata address = %v, want 400", err)
	}
}

// TestPrefixPolicyNeedsAdmin: a prefix policy governs every secret under
// the prefix, so it is authorized on sys/rotation/prefixes/PREFIX with
// admin, not with update on the prefix string (which a deny on a secret
// under it would not stop).
func TestPrefixPolicyNeedsAdmin(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.PutText(ctx, "team/a", "a")
	h.c.PutText(ctx, "team/locked", "l")
	updater := h.tokenWith(t, "updater", `
path "team/*" { capabilities = ["update", "read", "list"] }
path "team/locked" { capabilities = ["deny"] }
`)
	var ce *client.Error
	if _, err := updater.SetPrefixRotation(ctx, "team/", client.RotationPolicy{Rotator: "password"}); !errors.As(err, &ce) || ce.StatusCode != 403 {
		t.Fatalf("prefix policy with update on the prefix = %v, want 403", err)
	}
	admin := h.tokenWith(t, "rotation-admin", `
path "sys/rotation/prefixes/team" { capabilities = ["admin"] }
path "sys/rotation/prefixes" { capabilities = ["list"] }
`)
	if _, err := admin.SetPrefixRotation(ctx, "team/", client.RotationPolicy{Rotator: "password"}); err != nil {
		t.Fatalf("prefix policy with admin on sys/rotation/prefixes/team: %v", err)
	}
	if pr, err := admin.RotationPrefixes(ctx); err != nil || len(pr) != 1 {
		t.Fatalf("RotationPrefixes = %v, %v", pr, err)
	}
	if err := updater.DeletePrefixRotation(ctx, "team/"); !errors.As(err, &ce) || ce.StatusCode != 403 {
		t.Fatalf("delete prefix policy with update = %v, want 403", err)
	}
	if _, err := h.c.SetPrefixRotation(ctx, "tea", client.RotationPolicy{Rotator: "password"}); !errors.As(err, &ce) || ce.StatusCode != 400 {
		t.Fatalf("prefix without a trailing slash = %v, want 400", err)
	}
	if err := admin.DeletePrefixRotation(ctx, "team/"); err != nil {
		t.Fatal(err)
	}
}

func TestRandomPassword(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	pw, err := h.c.RandomPassword(ctx, client.RandomOptions{Length: 20, ExcludePunctuation: true, ExcludeCharacters: "0Ol1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pw) != 20 || strings.ContainsAny(pw, "0Ol1!#$%") {
		t.Fatalf("RandomPassword = %q", pw)
	}
	status, body := h.raw(t, "POST", "/v1/sys/tools/random", h.root, `{"length":8,"exclude_numbers":true,"require_each_included_type":false}`)
	if p, _ := body["password"].(string); status != 200 || len(p) != 8 || strings.ContainsAny(p, "0123456789") {
		t.Fatalf("POST random = %d %v", status, body)
	}
	if status, body := h.raw(t, "GET", "/v1/sys/tools/random?length=5000", h.root, ""); status != 400 || !strings.Contains(body["error"].(map[string]any)["message"].(string), "length") {
		t.Fatalf("too long = %d %v", status, body)
	}
	if status, _ := h.raw(t, "GET", "/v1/sys/tools/random?lenght=5", h.root, ""); status != 400 {
		t.Fatalf("unknown parameter = %d", status)
	}
}

// TestRotationPolicyEchoHidesKeptKey: setting a webhook policy shows the
// signing key it generates once; whoever sets the policy again (to the
// same endpoint) sees it redacted, and pointing the policy at another
// host generates a new key instead of carrying the old one there.
func TestRotationPolicyEchoHidesKeptKey(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.PutText(ctx, "app/hooked", "v")
	keyOf := func(p *client.RotationPolicy) string {
		var o struct {
			SigningKey string `json:"signing_key"`
		}
		json.Unmarshal(p.Options, &o)
		return o.SigningKey
	}
	hook := client.RotationPolicy{Rotator: "webhook", Options: json.RawMessage(`{"url":"https://hooks.example.com/rotate"}`)}
	st, err := h.c.SetRotation(ctx, "app/hooked", hook)
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(st.Policy)
	if len(key) != 64 {
		t.Fatalf("generated key not shown on the first PUT: %s", st.Policy.Options)
	}
	other := h.tokenWith(t, "co-owner", `path "app/hooked" { capabilities = ["update", "read"] }`)
	again, err := other.SetRotation(ctx, "app/hooked", hook)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(again.Policy.Options), key) || !strings.Contains(keyOf(again.Policy), "hidden") {
		t.Fatalf("a second PUT echoes the kept key: %s", again.Policy.Options)
	}
	moved, err := other.SetRotation(ctx, "app/hooked", client.RotationPolicy{Rotator: "webhook", Options: json.RawMessage(`{"url":"https://hooks.attacker.example/rotate"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if k := keyOf(moved.Policy); len(k) != 64 || k == key {
		t.Fatalf("moving the URL to another host: key %q", k)
	}

	// The same for prefix policies.
	pr, err := h.c.SetPrefixRotation(ctx, "hooks/", hook)
	if err != nil {
		t.Fatal(err)
	}
	pkey := keyOf(pr.Policy)
	if len(pkey) != 64 {
		t.Fatalf("generated prefix key not shown: %s", pr.Policy.Options)
	}
	pr, err = h.c.SetPrefixRotation(ctx, "hooks/", client.RotationPolicy{Schedule: "every 7d", Rotator: "webhook", Options: hook.Options})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(pr.Policy.Options), pkey) {
		t.Fatalf("a second prefix PUT echoes the kept key: %s", pr.Policy.Options)
	}
}
