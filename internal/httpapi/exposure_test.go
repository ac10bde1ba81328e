package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/client"
)

// TestExposureReports: a scanner identity that may only report exposures
// reports one; it cannot read the secret; owners list the reports; the
// metric counts them by source.
func TestExposureReports(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.PutText(ctx, "prod/payments/db", "hunter2")
	h.c.ApplyPolicies(ctx, map[string]string{"scanner": `path "sys/exposures/*" { capabilities = ["create"] }`}, false)
	sc, err := h.c.CreateToken(ctx, client.TokenCreateInput{DisplayName: "gitleaks", Policies: []string{"scanner"}})
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		ID, Secret, Source, Location string
		ReportedBy                   string `json:"reported_by"`
	}
	if s := h.do(t, sc.Token, "POST", "/v1/exposures/prod/payments/db", map[string]any{
		"source": "repository", "location": "https://git.example/acme/app/commit/abc123", "version": 1,
	}, &rep); s != 201 || rep.ID == "" || rep.Source != "repository" || !strings.Contains(rep.ReportedBy, "gitleaks") {
		t.Fatalf("report = %d %+v", s, rep)
	}
	if s, _ := h.raw(t, "GET", "/v1/secrets/prod/payments/db", sc.Token, ""); s != 403 {
		t.Fatalf("scanner read the secret: %d", s)
	}
	if s, _ := h.raw(t, "GET", "/v1/exposures/prod/payments/db", sc.Token, ""); s != 403 {
		t.Fatalf("scanner listed reports: %d", s)
	}
	for body, want := range map[string]string{
		`{"source":"twitter"}`: "source",
		`{"note":"a\nb"}`:      "note",
		`{"location":"` + strings.Repeat("x", 600) + `"}`: "location",
		`{"value":"hunter2"}`:                             "value",
		`{"version":99}`:                                  "no such secret or version",
	} {
		s, m := h.raw(t, "POST", "/v1/exposures/prod/payments/db", sc.Token, body)
		e, _ := m["error"].(map[string]any)
		if msg, _ := e["message"].(string); s != 400 || !strings.Contains(msg, want) {
			t.Errorf("%s = %d %v, want 400 naming %s", body, s, m, want)
		}
	}
	if s, _ := h.raw(t, "POST", "/v1/exposures/prod/none", h.root, `{}`); s != 404 {
		t.Fatalf("report on a missing secret = %d", s)
	}
	// A scanner that may not read the secret cannot tell a missing secret
	// from a missing version, nor learn the latest version.
	_, missing := h.raw(t, "POST", "/v1/exposures/prod/none", sc.Token, `{}`)
	_, badVersion := h.raw(t, "POST", "/v1/exposures/prod/payments/db", sc.Token, `{"version":99}`)
	if fmt.Sprint(missing["error"].(map[string]any)["message"]) != fmt.Sprint(badVersion["error"].(map[string]any)["message"]) {
		t.Errorf("a scanner tells a missing secret (%v) from a missing version (%v)", missing, badVersion)
	}
	var list struct {
		Reports []struct{ Secret, Location string }
	}
	if s := h.do(t, h.root, "GET", "/v1/exposures/prod/payments/db", nil, &list); s != 200 || len(list.Reports) != 1 {
		t.Fatalf("list = %d %+v", s, list)
	}
	if s := h.do(t, h.root, "GET", "/v1/exposures?prefix=prod/", nil, &list); s != 200 || len(list.Reports) != 1 || list.Reports[0].Secret != "prod/payments/db" {
		t.Fatalf("list all = %d %+v", s, list)
	}
	out := scrape(t, h)
	if !strings.Contains(out, `coffer_secret_exposures_reported_total{source="repository"} 1`) ||
		!strings.Contains(out, `coffer_secret_exposures_reported_total{source="scanner"} 0`) {
		t.Errorf("exposure metric did not move:\n%s", out)
	}
	if !strings.Contains(out, "coffer_log_redactions_total") {
		t.Error("no log redaction metric")
	}
}
