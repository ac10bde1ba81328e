package httpapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
)

const paymentsPolicy = `
path "prod/payments/*" {
  capabilities = ["read", "list"]
}
path "prod/payments/admin/*" {
  capabilities = ["deny"]
}
path "apps/{{identity.name}}/*" {
  capabilities = ["create", "read"]
}
`

const opsPolicy = `
path "prod/*" {
  capabilities = ["admin"]
}
path "sys/policies" {
  capabilities = ["read", "list"]
}
`

func TestPoliciesGovernAccess(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	root := h.c
	for _, n := range []string{"prod/payments/db", "prod/payments/api-key", "prod/payments/admin/master", "prod/orders/db"} {
		if _, err := root.PutText(ctx, n, "v-"+n); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := root.PlanPolicies(ctx, map[string]string{"payments": paymentsPolicy, "ops": opsPolicy}, false)
	if err != nil || !slices.Equal(plan.Create, []string{"ops", "payments"}) {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
	if _, err := root.ApplyPolicies(ctx, map[string]string{"payments": paymentsPolicy, "ops": opsPolicy}, false); err != nil {
		t.Fatal(err)
	}
	// The payments service logs in with its AppRole: in templates it is
	// "payments" (the role's name), whatever its tokens' display names.
	if err := root.Do(ctx, "PUT", "/v1/auth/approle/role/payments", map[string]any{"token_policies": []string{"payments"}}, nil); err != nil {
		t.Fatal(err)
	}
	var rid struct {
		RoleID string `json:"role_id"`
	}
	var sid struct {
		SecretID string `json:"secret_id"`
	}
	root.Do(ctx, "GET", "/v1/auth/approle/role/payments/role-id", nil, &rid)
	root.Do(ctx, "POST", "/v1/auth/approle/role/payments/secret-id", map[string]any{}, &sid)
	var l loginAnswer
	if s := h.do(t, "", "POST", "/v1/auth/approle/login", map[string]string{"role_id": rid.RoleID, "secret_id": sid.SecretID}, &l); s != 200 {
		t.Fatalf("approle login = %d", s)
	}
	app := root.WithToken(l.Token)

	if s, err := app.Get(ctx, "prod/payments/db", client.Current()); err != nil || s.Text() != "v-prod/payments/db" {
		t.Fatalf("app read own secret = %v, %v", s, err)
	}
	for _, name := range []string{"prod/orders/db", "prod/payments/admin/master"} {
		_, err := app.Get(ctx, name, client.Current())
		if client.ErrorCode(err) != "forbidden" {
			t.Errorf("app read %s = %v, want forbidden", name, err)
		}
	}
	// The refusal names the deciding rule.
	_, err = app.Get(ctx, "prod/payments/admin/master", client.Current())
	if err == nil || !strings.Contains(err.Error(), "deny") || !strings.Contains(err.Error(), "payments") {
		t.Errorf("deny message = %v", err)
	}
	if _, err := app.PutText(ctx, "prod/payments/db", "x"); client.ErrorCode(err) != "forbidden" {
		t.Errorf("app write = %v, want forbidden", err)
	}
	// List is filtered: names the token may not list never appear.
	page, err := app.List(ctx, client.ListOptions{Prefix: "prod/"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range page.Items {
		names = append(names, it.Name)
	}
	if !slices.Equal(names, []string{"prod/payments/api-key", "prod/payments/db"}) {
		t.Errorf("filtered list = %v", names)
	}
	// Templated path with create-only: the first write works, overwrites do not.
	if _, err := app.PutText(ctx, "apps/payments/cfg", "1"); err != nil {
		t.Fatalf("create under own template path = %v", err)
	}
	if _, err := app.PutText(ctx, "apps/payments/cfg", "2"); client.ErrorCode(err) != "forbidden" {
		t.Errorf("overwrite with create-only = %v, want forbidden", err)
	}
	if _, err := app.PutText(ctx, "apps/orders/cfg", "1"); client.ErrorCode(err) != "forbidden" {
		t.Errorf("create under another identity's path = %v, want forbidden", err)
	}
	// No escalation: a child cannot get policies its parent lacks.
	if _, err := app.CreateToken(ctx, client.TokenCreateInput{Policies: []string{"ops"}}); client.ErrorCode(err) != "forbidden" {
		t.Errorf("escalating child token = %v, want forbidden", err)
	}
	// Sys operations need sys policies.
	if err := app.Seal(ctx); client.ErrorCode(err) != "forbidden" {
		t.Errorf("app seal = %v, want forbidden", err)
	}
	// Explain names the rules.
	ex, err := root.ExplainPolicy(ctx, client.ExplainInput{Token: l.Token, Path: "prod/payments/admin/master", Capability: "read"})
	if err != nil || ex.Allowed || !strings.Contains(string(ex.Decision), "prod/payments/admin/*") {
		t.Errorf("explain = %+v %s, %v", ex, ex.Decision, err)
	}
	// Revoking the token takes effect at once.
	if err := root.RevokeAccessor(ctx, l.Info.Accessor); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Get(ctx, "prod/payments/db", client.Current()); client.ErrorCode(err) != "unauthenticated" {
		t.Errorf("read after revoke = %v", err)
	}
}

func TestPolicyHistoryAndRestore(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.c
	if _, err := c.WritePolicy(ctx, "p", `path "a/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WritePolicy(ctx, "p", `path "b/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePolicy(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	hist, err := c.PolicyHistory(ctx, "p")
	if err != nil || len(hist) != 3 || !hist[2].Deleted {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	p, err := c.RestorePolicy(ctx, "p", 1)
	if err != nil || p.Revision != 4 || !strings.Contains(p.Source, "a/*") {
		t.Fatalf("restore = %+v, %v", p, err)
	}
	if _, err := c.WritePolicy(ctx, "bad", `path "a/*" { capabilities = ["fly"] }`); client.ErrorCode(err) != "invalid_policy" {
		t.Fatalf("invalid policy = %v", err)
	}
	if _, err := c.WritePolicy(ctx, "root", `path "*" { capabilities = ["read"] }`); err == nil {
		t.Fatal("overwrote the root policy")
	}
	// Prune deletes policies missing from the desired set.
	plan, err := c.ApplyPolicies(ctx, map[string]string{"q": `path "q/*" { capabilities = ["read"] }`}, true)
	if err != nil || !slices.Equal(plan.Delete, []string{"p"}) || !slices.Equal(plan.Create, []string{"q"}) {
		t.Fatalf("apply --prune = %+v, %v", plan, err)
	}
}
