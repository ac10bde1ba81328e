package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// TestRoleWritersCannotGrantWhatTheyLack: a role or user hands its token
// policies to whoever logs in with it, so, like a child token, it may name
// only policies its writer holds.
func TestRoleWritersCannotGrantWhatTheyLack(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.ApplyPolicies(ctx, map[string]string{
		"ci-admin": `path "auth/+/role/ci*" { capabilities = ["read", "update"] }
path "auth/userpass/users/*" { capabilities = ["update"] }`,
		"admin": `path "*" { capabilities = ["admin"] }`,
	}, false)
	var tk loginAnswer
	if s := h.do(t, h.root, "POST", "/v1/auth/token/create", map[string]any{"policies": []string{"ci-admin"}}, &tk); s != http.StatusCreated {
		t.Fatalf("create token = %d", s)
	}
	for _, c := range []struct{ path, policiesField string }{
		{"/v1/auth/approle/role/ci", "token_policies"},
		{"/v1/auth/userpass/users/mallory", "token_policies"},
		{"/v1/auth/jwt/role/ci", "token_policies"},
		{"/v1/auth/cert/role/ci", "token_policies"},
	} {
		body := map[string]any{c.policiesField: []string{"admin"}}
		if c.path == "/v1/auth/userpass/users/mallory" {
			body["password"] = "mallory-pass-1"
		}
		if s := h.do(t, tk.Token, "PUT", c.path, body, nil); s != http.StatusForbidden {
			t.Errorf("PUT %s granting admin by a ci-admin token = %d, want 403", c.path, s)
		}
	}
	// Its own policies it may hand on.
	if s := h.do(t, tk.Token, "PUT", "/v1/auth/approle/role/ci", map[string]any{"token_policies": []string{"ci-admin"}}, nil); s != http.StatusOK {
		t.Errorf("PUT approle role granting the writer's own policy = %d, want 200", s)
	}
}

// TestTOTPReplacementNeedsTheEnrolledFactor: with only the password, a
// thief cannot swap in their own authenticator.
func TestTOTPReplacementNeedsTheEnrolledFactor(t *testing.T) {
	h := newHarness(t)
	const pw = "correct horse battery"
	if s := h.do(t, h.root, "PUT", "/v1/auth/userpass/users/alice", map[string]any{"password": pw, "token_policies": []string{"default"}}, nil); s != 200 {
		t.Fatalf("put user = %d", s)
	}
	login := func(code string) loginAnswer {
		t.Helper()
		var l loginAnswer
		if s := h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": pw, "totp": code}, &l); s != 200 {
			t.Fatalf("login = %d", s)
		}
		return l
	}
	// First enrolment: the password is all there is.
	first := login("")
	var enrol struct {
		Secret string `json:"secret"`
	}
	if s := h.do(t, first.Token, "POST", "/v1/auth/userpass/users/alice/totp", map[string]any{}, &enrol); s != 200 {
		t.Fatalf("first enrolment = %d", s)
	}
	code, _ := totp.GenerateCode(enrol.Secret, time.Now())
	if s := h.do(t, first.Token, "POST", "/v1/auth/userpass/users/alice/totp/confirm", map[string]string{"code": code}, nil); s != 200 {
		t.Fatalf("confirm = %d", s)
	}
	// A password-only token (the user did not require MFA at login) may
	// not replace the enrolled authenticator, nor confirm one.
	thief := login("")
	if thief.Info.MFA {
		t.Fatal("a password-only login reports MFA")
	}
	if s := h.do(t, thief.Token, "POST", "/v1/auth/userpass/users/alice/totp", map[string]any{}, nil); s != http.StatusForbidden {
		t.Fatalf("re-enrolment with the password only = %d, want 403", s)
	}
	if s := h.do(t, thief.Token, "POST", "/v1/auth/userpass/users/alice/totp/confirm", map[string]string{"code": "000000"}, nil); s != http.StatusForbidden {
		t.Fatalf("confirm with the password only = %d, want 403", s)
	}
	// With the enrolled factor, the owner can replace it.
	next, _ := totp.GenerateCode(enrol.Secret, time.Now().Add(30*time.Second))
	owner := login(next)
	if !owner.Info.MFA {
		t.Fatal("login with password and TOTP does not report MFA")
	}
	if s := h.do(t, owner.Token, "POST", "/v1/auth/userpass/users/alice/totp", map[string]any{}, nil); s != 200 {
		t.Fatalf("re-enrolment with MFA = %d, want 200", s)
	}
}

// TestChildTokenCannotPoseAsAnotherIdentity: a child token's display name
// and meta are its creator's free choice; in policy templates it stands
// for its creator.
func TestChildTokenCannotPoseAsAnotherIdentity(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.ApplyPolicies(ctx, map[string]string{"apps": `
path "apps/{{identity.name}}/*" { capabilities = ["read"] }
path "ci/{{identity.meta.repository}}/*" { capabilities = ["read"] }
`}, false)
	for _, n := range []string{"apps/alice/db", "apps/bob/db", "ci/payments/key"} {
		h.c.PutText(ctx, n, "v")
	}
	if s := h.do(t, h.root, "PUT", "/v1/auth/userpass/users/alice", map[string]any{"password": "alice-password-1", "token_policies": []string{"apps"}}, nil); s != 200 {
		t.Fatalf("put user = %d", s)
	}
	var alice loginAnswer
	if s := h.do(t, "", "POST", "/v1/auth/userpass/login", map[string]string{"username": "alice", "password": "alice-password-1"}, &alice); s != 200 {
		t.Fatalf("login = %d", s)
	}
	var child loginAnswer
	if s := h.do(t, alice.Token, "POST", "/v1/auth/token/create", map[string]any{"display_name": "bob", "meta": map[string]string{"repository": "payments"}}, &child); s != http.StatusCreated {
		t.Fatalf("child create = %d", s)
	}
	for path, want := range map[string]int{"apps/bob/db": 403, "ci/payments/key": 403, "apps/alice/db": 200} {
		if s, _ := h.raw(t, "GET", "/v1/secrets/"+path, child.Token, ""); s != want {
			t.Errorf("child of alice named bob reads %s = %d, want %d", path, s, want)
		}
	}
	var grandchild loginAnswer
	h.do(t, child.Token, "POST", "/v1/auth/token/create", map[string]any{"display_name": "bob"}, &grandchild)
	if s, _ := h.raw(t, "GET", "/v1/secrets/apps/alice/db", grandchild.Token, ""); s != 200 {
		t.Errorf("grandchild of alice reads apps/alice/db = %d, want 200", s)
	}
}
