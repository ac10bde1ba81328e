package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
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
	if st.Policy.Schedule != "every 30d" || st.Policy.Grace != "1h0m0s" || st.State == nil || st.State.NextDue == nil || st.Source != "secret" {
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
