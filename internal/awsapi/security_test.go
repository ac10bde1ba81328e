package awsapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/awsapi"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/testaudit"
)

// newAuditedHarness is a harness whose API writes to the core's audit log
// in dir, as the server builds it (Config.Audit nil), so that intent
// records are written too.
func newAuditedHarness(t testing.TB, dir string) *harness {
	t.Helper()
	h := newHarnessConfig(t, core.Config{Audit: core.AuditConfig{Dir: dir}})
	h.api = awsapi.New(awsapi.Config{Core: h.core, Keys: h.keys, Now: func() time.Time { return h.now }})
	h.srv.Config.Handler = h.api.Mount(http.NotFoundHandler())
	return h
}

// A change's intent record names the secret it is about, with the default
// configuration (no rate limits), and claims no decision: the outcome
// record carries the real one.
func TestIntentRecordsNameTheSecret(t *testing.T) {
	dir := t.TempDir()
	h := newAuditedHarness(t, dir)
	a := h.admin
	arn := h.ok(t, a, "CreateSecret", obj{"Name": "prod/db", "SecretString": "v"}).str("ARN")
	h.ok(t, a, "PutSecretValue", obj{"SecretId": arn, "SecretString": "v2"})
	h.ok(t, a, "DeleteSecret", obj{"SecretId": "prod/db"})
	h.ok(t, a, "RestoreSecret", obj{"SecretId": "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db"})
	h.policy(t, "reader", `path "prod/*" { capabilities = ["read"] }`)
	h.fails(t, h.key(t, "reader", "reader"), "PutSecretValue", obj{"SecretId": "prod/db", "SecretString": "x"}, "AccessDeniedException")

	recs := testaudit.Records(t, dir)
	outcome := map[string]*audit.Record{}
	for _, r := range recs {
		if r.Type != core.TypeIntent {
			outcome[r.RequestID] = r
		}
	}
	want := []struct{ op, decision string }{
		{"aws.CreateSecret", "allow"}, {"aws.PutSecretValue", "allow"}, {"aws.DeleteSecret", "allow"},
		{"aws.RestoreSecret", "allow"}, {"aws.PutSecretValue", "deny"},
	}
	var intents []*audit.Record
	for _, r := range recs {
		if r.Type == core.TypeIntent {
			intents = append(intents, r)
		}
	}
	if len(intents) != len(want) {
		t.Fatalf("%d intent records, want %d", len(intents), len(want))
	}
	for i, in := range intents {
		if in.Op != want[i].op || in.Path != "prod/db" || in.Decision != "" {
			t.Errorf("intent %d = op %s path %q decision %q, want %s prod/db and no decision", i, in.Op, in.Path, in.Decision, want[i].op)
		}
		out := outcome[in.RequestID]
		if out == nil || out.Path != "prod/db" || out.Decision != want[i].decision {
			t.Errorf("outcome of intent %d = %+v, want path prod/db decision %s", i, out, want[i].decision)
		}
	}
}

// A caller with list but not read sees names and ARNs only, and filters on
// metadata it cannot read never match.
func TestListSecretsListOnlyShowsNames(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "prod/db", "SecretString": "hunter2",
		"Description": "primary postgres, pw rotated by bob", "Tags": []obj{{"Key": "owner", "Value": "team-payments"}}})
	h.ok(t, a, "CreateSecret", obj{"Name": "prod/open", "SecretString": "s",
		"Description": "public thing", "Tags": []obj{{"Key": "owner", "Value": "team-web"}}})
	ctx := context.Background()
	if _, err := h.core.Rotation.SetPolicy(ctx, "prod/db", rotation.Policy{Rotator: "password", Options: json.RawMessage(`{"length":16}`)}, "t"); err != nil {
		t.Fatal(err)
	}
	h.ok(t, a, "RotateSecret", obj{"SecretId": "prod/db", "RotationRules": obj{"AutomaticallyAfterDays": 30}})
	h.policy(t, "lister", `path "prod/*" { capabilities = ["list"] }
path "prod/open" { capabilities = ["list", "read"] }`)
	k := h.key(t, "lister", "lister")

	entries := func(r *response) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, e := range r.body["SecretList"].([]any) {
			m := e.(map[string]any)
			out[m["Name"].(string)] = m
		}
		return out
	}
	l := h.ok(t, k, "ListSecrets", obj{})
	es := entries(l)
	if len(es) != 2 {
		t.Fatalf("ListSecrets = %s", l.raw)
	}
	db := es["prod/db"]
	if db["ARN"] == nil || !strings.HasPrefix(db["ARN"].(string), "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-") {
		t.Fatalf("list-only entry = %v", db)
	}
	for k := range db {
		if k != "ARN" && k != "Name" {
			t.Errorf("list-only entry has %s: %v", k, db)
		}
	}
	for _, s := range []string{"primary", "team-payments"} {
		if strings.Contains(string(l.raw), s) {
			t.Errorf("ListSecrets shows %q to a list-only caller: %s", s, l.raw)
		}
	}
	open := es["prod/open"]
	if open["Description"] != "public thing" || open["Tags"] == nil || open["SecretVersionsToStages"] == nil || open["RotationEnabled"] != false {
		t.Fatalf("readable entry = %v", open)
	}
	// The admin still sees everything.
	if adm := entries(h.ok(t, a, "ListSecrets", obj{}))["prod/db"]; adm["Description"] == nil || adm["RotationEnabled"] != true || adm["RotationRules"] == nil || adm["Tags"] == nil {
		t.Fatalf("admin entry = %v", adm)
	}

	names := func(r *response) string {
		var out []string
		for _, e := range r.body["SecretList"].([]any) {
			out = append(out, e.(map[string]any)["Name"].(string))
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		key, value, want string
	}{
		{"tag-value", "team-pay", ""},
		{"tag-value", "team-", "prod/open"},
		{"tag-key", "owner", "prod/open"},
		{"description", "primary", ""},
		{"description", "!primary", "prod/open"},
		{"description", "!zzz", "prod/open"},
		{"all", "bob", ""},
		{"all", "payments", ""},
		{"all", "prod", "prod/db,prod/open"},
		{"name", "prod/d", "prod/db"},
	} {
		r := h.ok(t, k, "ListSecrets", obj{"Filters": []obj{{"Key": tt.key, "Values": []string{tt.value}}}})
		if got := names(r); got != tt.want {
			t.Errorf("list-only ListSecrets(%s=%s) = %q, want %q", tt.key, tt.value, got, tt.want)
		}
	}

	// BatchGetSecretValue's filters are no oracle either, and it returns
	// only values the caller may read.
	r := h.ok(t, k, "BatchGetSecretValue", obj{"Filters": []obj{{"Key": "tag-value", "Values": []string{"team-"}}}})
	vals, _ := r.body["SecretValues"].([]any)
	errs, _ := r.body["Errors"].([]any)
	if len(vals) != 1 || vals[0].(map[string]any)["Name"] != "prod/open" || len(errs) != 0 {
		t.Fatalf("filtered batch = %s", r.raw)
	}
	r = h.ok(t, k, "BatchGetSecretValue", obj{"Filters": []obj{{"Key": "description", "Values": []string{"primary"}}}})
	if vals, _ := r.body["SecretValues"].([]any); len(vals) != 0 || r.body["Errors"] != nil {
		t.Fatalf("batch with a description filter over an unreadable secret = %s", r.raw)
	}
	r = h.ok(t, k, "BatchGetSecretValue", obj{"Filters": []obj{{"Key": "name", "Values": []string{"prod/"}}}})
	if strings.Contains(string(r.raw), "hunter2") || len(r.body["SecretValues"].([]any)) != 1 {
		t.Fatalf("batch by name = %s", r.raw)
	}
}

// Batch calls are charged per secret against that secret's rate limit
// rule, as single-secret calls are.
func TestBatchCallsRateLimitedPerSecret(t *testing.T) {
	h := newHarnessConfig(t, core.Config{RateLimits: []ratelimit.Rule{
		{Prefix: "limited/", IdentityRate: 0.001, IdentityBurst: 2},
	}})
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "limited/x", "SecretString": "v"})
	h.ok(t, a, "CreateSecret", obj{"Name": "free/x", "SecretString": "v"})
	h.ok(t, a, "GetSecretValue", obj{"SecretId": "limited/x"})
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "limited/x"}, "ThrottlingException")

	r := h.ok(t, a, "BatchGetSecretValue", obj{"SecretIdList": []string{"limited/x", "free/x"}})
	vals, _ := r.body["SecretValues"].([]any)
	errs, _ := r.body["Errors"].([]any)
	if len(vals) != 1 || vals[0].(map[string]any)["Name"] != "free/x" || len(errs) != 1 ||
		errs[0].(map[string]any)["SecretId"] != "limited/x" || errs[0].(map[string]any)["ErrorCode"] != "ThrottlingException" {
		t.Fatalf("batch over a throttled secret = %s", r.raw)
	}
	r = h.ok(t, a, "BatchGetSecretValue", obj{"Filters": []obj{{"Key": "name", "Values": []string{"limited/"}}}})
	if vals, _ := r.body["SecretValues"].([]any); len(vals) != 0 || len(r.body["Errors"].([]any)) != 1 {
		t.Fatalf("filtered batch over a throttled secret = %s", r.raw)
	}
	// The throttled secret's audit record says so.
	last := h.audit[len(h.audit)-1]
	if last.Path != "limited/x" || last.ErrCode != "ThrottlingException" {
		t.Fatalf("record = %+v", last)
	}

	// ListSecrets returns limited/x's metadata: it is charged too. A page
	// stops before a throttled secret (NextToken resumes there); a page
	// that would start with one is throttled.
	l := h.ok(t, a, "ListSecrets", obj{})
	if list := l.body["SecretList"].([]any); len(list) != 1 || list[0].(map[string]any)["Name"] != "free/x" || l.str("NextToken") == "" {
		t.Fatalf("ListSecrets = %s", l.raw)
	}
	h.fails(t, a, "ListSecrets", obj{"NextToken": l.str("NextToken")}, "ThrottlingException")
	h.fails(t, a, "ListSecrets", obj{"Filters": []obj{{"Key": "name", "Values": []string{"limited/"}}}}, "ThrottlingException")

	// Names alone (list without read) are not charged per secret.
	h.policy(t, "lister", `path "limited/*" { capabilities = ["list"] }`)
	k := h.key(t, "lister", "lister")
	h.fails(t, k, "GetSecretValue", obj{"SecretId": "limited/x"}, "AccessDeniedException")
	h.fails(t, k, "GetSecretValue", obj{"SecretId": "limited/x"}, "AccessDeniedException")
	h.fails(t, k, "GetSecretValue", obj{"SecretId": "limited/x"}, "ThrottlingException")
	if l := h.ok(t, k, "ListSecrets", obj{}); len(l.body["SecretList"].([]any)) != 1 {
		t.Fatalf("list-only ListSecrets = %s", l.raw)
	}
	// Other identities have their own buckets.
	r = h.ok(t, h.key(t, "other", "aws-admin"), "BatchGetSecretValue", obj{"SecretIdList": []string{"limited/x"}})
	if vals, _ := r.body["SecretValues"].([]any); len(vals) != 1 {
		t.Fatalf("another identity's batch = %s", r.raw)
	}
}

// Names and SecretIds are bounded before anything records them: too long
// is a 400 naming the parameter, not an audit failure.
func TestLongNamesRefused(t *testing.T) {
	dir := t.TempDir()
	h := newAuditedHarness(t, dir)
	h.policy(t, "p", `path "x/*" { capabilities = ["read"] }`)
	k := h.key(t, "k", "p")
	huge := strings.Repeat("n", 200_000)
	n0 := len(testaudit.Records(t, dir))
	r := h.fails(t, k, "CreateSecret", obj{"Name": huge, "SecretString": "v"}, "InvalidParameterException")
	if r.status != http.StatusBadRequest || !strings.Contains(r.str("message"), "Name") {
		t.Fatalf("huge Name = %d %s", r.status, r.raw)
	}
	recs := testaudit.Records(t, dir)[n0:]
	if len(recs) != 1 || recs[0].Error != "InvalidParameterException" || recs[0].Status != http.StatusBadRequest || len(recs[0].Path) > secret.MaxNameLen {
		t.Fatalf("records of the refused call = %+v", recs)
	}
	if err := h.core.AuditHealthy(); err != nil {
		t.Fatalf("a long name made the audit log unhealthy: %v", err)
	}

	a := h.admin
	long := strings.Repeat("a", secret.MaxNameLen)
	arn := h.ok(t, a, "CreateSecret", obj{"Name": "x/" + long[2:], "SecretString": "v"}).str("ARN")
	h.ok(t, a, "GetSecretValue", obj{"SecretId": arn})
	h.ok(t, a, "GetSecretValue", obj{"SecretId": "x/" + long[2:]})
	for _, tt := range []struct {
		op    string
		in    obj
		field string
	}{
		{"CreateSecret", obj{"Name": long + "a", "SecretString": "v"}, "Name"},
		{"GetSecretValue", obj{"SecretId": long + "a"}, "SecretId"},
		{"DeleteSecret", obj{"SecretId": huge}, "SecretId"},
		{"PutSecretValue", obj{"SecretId": "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + long + "a-AbCdEf", "SecretString": "v"}, "SecretId"},
		{"GetSecretValue", obj{"SecretId": "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + huge}, "SecretId"},
		{"BatchGetSecretValue", obj{"SecretIdList": []string{"x/a", huge}}, "SecretIdList"},
	} {
		r := h.fails(t, a, tt.op, tt.in, "InvalidParameterException")
		if !strings.Contains(r.str("message"), tt.field) {
			t.Errorf("%s: message %q does not name %s", tt.op, r.str("message"), tt.field)
		}
	}
	for _, rec := range testaudit.Records(t, dir) {
		if len(rec.Path) > secret.MaxNameLen {
			t.Fatalf("a record holds a %d-byte path (%s %s)", len(rec.Path), rec.Type, rec.Op)
		}
	}
}

// TestNextTokenHidesNames: a NextToken marks where a scan stopped, often
// at a secret the caller may not see; it must not name it.
func TestNextTokenHidesNames(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	for _, n := range []string{"app/a", "hr/salary-1", "hr/salary-2", "zz/b"} {
		h.ok(t, a, "CreateSecret", obj{"Name": n, "SecretString": "v"})
	}
	h.policy(t, "apps", `path "app/*" { capabilities = ["list", "read"] }
path "zz/*" { capabilities = ["list", "read"] }`)
	k := h.key(t, "apps", "apps")
	var names []string
	tok := ""
	for i := 0; i < 20; i++ {
		req := obj{"MaxResults": 1}
		if tok != "" {
			req["NextToken"] = tok
		}
		r := h.ok(t, k, "ListSecrets", req)
		for _, e := range r.body["SecretList"].([]any) {
			names = append(names, e.(map[string]any)["Name"].(string))
		}
		next, _ := r.body["NextToken"].(string)
		raw, _ := base64.RawURLEncoding.DecodeString(next)
		if strings.Contains(next, "hr") || strings.Contains(string(raw), "hr/") {
			t.Fatalf("NextToken %q (%q) names a hidden secret", next, raw)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if strings.Join(names, ",") != "app/a,zz/b" {
		t.Errorf("listed %v, want app/a and zz/b", names)
	}
}
