package httpapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/otp"
)

func TestBreakGlass(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.c.ApplyPolicies(ctx, map[string]string{
		"oncall":  `path "sys/break-glass" { capabilities = ["update", "read"] }`,
		"payroll": `path "prod/payroll/*" { capabilities = ["read"] }`,
	}, false); err != nil {
		t.Fatal(err)
	}
	h.c.PutText(ctx, "prod/payroll/db", "pw")
	oc, err := h.c.CreateToken(ctx, client.TokenCreateInput{DisplayName: "alice", Policies: []string{"oncall"}})
	if err != nil {
		t.Fatal(err)
	}
	alice := h.c.WithToken(oc.Token)
	if _, _, err := alice.BreakGlass(ctx, "too short", []string{"payroll"}, ""); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("short justification = %v", err)
	}
	if _, _, err := alice.BreakGlass(ctx, "INC-4711: payroll DB down, owner unreachable", []string{"payroll"}, "2h"); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("ttl over 1h = %v", err)
	}
	if _, _, err := alice.BreakGlass(ctx, "INC-4711: payroll DB down, owner unreachable", []string{"root"}, ""); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("root break-glass = %v", err)
	}
	tok, rec, err := alice.BreakGlass(ctx, "INC-4711: payroll DB down, owner unreachable", []string{"payroll"}, "10m")
	if err != nil {
		t.Fatal(err)
	}
	bg := h.c.WithToken(tok)
	if s, err := bg.Get(ctx, "prod/payroll/db", client.Current()); err != nil || s.Text() != "pw" {
		t.Fatalf("break-glass read = %v, %v", s, err)
	}
	info, err := bg.TokenSelf(ctx)
	if err != nil || info.Method != "break-glass" || info.Renewable || !strings.Contains(info.BreakGlass, "INC-4711") || !info.Orphan {
		t.Fatalf("break-glass token = %+v, %v", info, err)
	}
	if _, err := bg.RenewSelf(ctx, "1h"); err == nil {
		t.Fatal("break-glass token renewed")
	}
	recs, err := alice.BreakGlassRecords(ctx)
	if err != nil || len(recs) != 1 || recs[0].Accessor != rec.Accessor || recs[0].IssuedBy != "alice" {
		t.Fatalf("records = %+v, %v", recs, err)
	}
	if h.core.BreakGlassIssued() != 1 {
		t.Fatalf("break-glass counter = %d", h.core.BreakGlassIssued())
	}
	// Without the on-call policy nobody can break the glass.
	if _, _, err := bg.BreakGlass(ctx, "INC-4711: payroll DB down, owner unreachable", []string{"payroll"}, ""); client.ErrorCode(err) != "forbidden" {
		t.Fatalf("break-glass without capability = %v", err)
	}
}

func TestGenerateRoot(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	anon := h.c.WithToken("")
	if _, err := anon.GenerateRoot(ctx, "nonce", h.keys[0]); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("a key with no attempt started = %v", err)
	}
	att, err := anon.GenerateRootInit(ctx)
	if err != nil || att.Nonce == "" || att.OTP == "" {
		t.Fatalf("init = %+v, %v", att, err)
	}
	if _, err := anon.GenerateRootInit(ctx); client.ErrorCode(err) != "in_progress" {
		t.Fatalf("a second init = %v, want in_progress", err)
	}
	if _, err := anon.GenerateRoot(ctx, "another-nonce", h.keys[0]); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("a key for another attempt = %v", err)
	}
	for i, k := range []string{h.keys[0], h.keys[0], h.keys[3]} {
		st, err := anon.GenerateRoot(ctx, att.Nonce, k)
		if err != nil || st.Complete || st.EncodedRootToken != "" {
			t.Fatalf("key %d: %+v, %v", i, st, err)
		}
	}
	if st, err := anon.GenerateRootProgress(ctx); err != nil || !st.Started || st.Progress != 2 || st.OTP != "" {
		t.Fatalf("status = %+v, %v (a repeated key counts once; the pad is never shown again)", st, err)
	}
	st, err := anon.GenerateRoot(ctx, att.Nonce, h.keys[4])
	if err != nil || !st.Complete || st.EncodedRootToken == "" || strings.Contains(st.EncodedRootToken, "cof_") {
		t.Fatalf("quorum: %+v, %v", st, err)
	}
	tok, err := otp.Decode(st.EncodedRootToken, att.OTP)
	if err != nil || !strings.HasPrefix(tok, "cof_") {
		t.Fatalf("decode = %q, %v", tok, err)
	}
	info, err := h.c.WithToken(tok).TokenSelf(ctx)
	if err != nil || info.Policies[0] != "root" {
		t.Fatalf("new root = %+v, %v", info, err)
	}
	// Revoking the initial root token (as the docs advise) leaves the new one working.
	if err := h.c.RevokeSelf(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.TokenSelf(ctx); client.ErrorCode(err) != "unauthenticated" {
		t.Fatalf("old root after revoke = %v", err)
	}
	if _, err := anon.GenerateRoot(ctx, att.Nonce, h.keys[0]); client.ErrorCode(err) != "invalid_request" {
		t.Fatalf("a key after the attempt completed = %v", err)
	}
	att, _ = anon.GenerateRootInit(ctx)
	if _, err := anon.GenerateRoot(ctx, att.Nonce, "bm90IGEga2V5"); client.ErrorCode(err) != "invalid_unseal_key" {
		t.Fatalf("bad key = %v", err)
	}
	if err := anon.GenerateRootReset(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := anon.GenerateRootProgress(ctx); st.Started {
		t.Fatal("attempt still in progress after reset")
	}
}
