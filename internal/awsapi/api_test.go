package awsapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/awskey"
	"github.com/coffer-dev/coffer/internal/awsapi"
	"github.com/coffer-dev/coffer/internal/awsapi/sigv4"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

// harness is an unsealed core with the AWS API mounted under /aws the way
// the server mounts it, and a root-policy-free admin key.
type harness struct {
	core  *core.Core
	keys  *awskey.Service
	api   *awsapi.API
	srv   *httptest.Server
	now   time.Time
	audit []core.RequestRecord
	admin cred
}

type cred struct{ id, secret string }

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessConfig(t, core.Config{})
}

func newHarnessConfig(t testing.TB, cfg core.Config) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{now: time.Now().UTC()}
	cfg.Backend = mem.New()
	cfg.Now = func() time.Time { return h.now }
	h.core = core.New(cfg)
	res, err := h.core.Init(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.core.Unseal(ctx, res.Keys[0]); err != nil {
		t.Fatal(err)
	}
	// The server keeps access keys under its barrier; the tests keep them in
	// a store of their own.
	h.keys = awskey.New(mem.New(), func() time.Time { return h.now })
	h.api = awsapi.New(awsapi.Config{Core: h.core, Keys: h.keys, Now: func() time.Time { return h.now },
		Audit: func(_ context.Context, r core.RequestRecord) error { h.audit = append(h.audit, r); return nil }})
	h.srv = httptest.NewServer(h.api.Mount(http.NotFoundHandler()))
	t.Cleanup(h.srv.Close)
	h.policy(t, "aws-admin", `path "*" { capabilities = ["admin"] }`)
	h.admin = h.key(t, "admin", "aws-admin")
	return h
}

func (h *harness) policy(t testing.TB, name, src string) {
	t.Helper()
	if err := h.core.Policies.Put(context.Background(), name, src, "test"); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) key(t testing.TB, name string, policies ...string) cred {
	t.Helper()
	id, secret, _, err := h.keys.Create(context.Background(), awskey.Input{Name: name, Policies: policies})
	if err != nil {
		t.Fatal(err)
	}
	return cred{id, secret}
}

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r *response) errType() string { s, _ := r.body["__type"].(string); return s }

func (r *response) str(k string) string { s, _ := r.body[k].(string); return s }

// send signs and sends one operation with k's credentials.
func (h *harness) send(t testing.TB, k cred, op string, in any) *response {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", h.srv.URL+"/aws", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager."+op)
	if err := sigv4.Sign(req, "/aws", body, k.id, k.secret, "us-east-1", "secretsmanager", h.now); err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) *response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := &response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("answer is not JSON: %q", raw)
		}
	}
	return out
}

// ok sends an operation that must succeed.
func (h *harness) ok(t testing.TB, k cred, op string, in any) *response {
	t.Helper()
	r := h.send(t, k, op, in)
	if r.status != http.StatusOK {
		t.Fatalf("%s = %d %s", op, r.status, r.raw)
	}
	if r.header.Get("Content-Type") != "application/x-amz-json-1.1" || r.header.Get("X-Amzn-Requestid") == "" {
		t.Fatalf("%s answered headers %v", op, r.header)
	}
	return r
}

// fails sends an operation that must fail with errType.
func (h *harness) fails(t testing.TB, k cred, op string, in any, errType string) *response {
	t.Helper()
	r := h.send(t, k, op, in)
	if r.status == http.StatusOK || r.errType() != errType {
		t.Fatalf("%s = %d %s, want %s", op, r.status, r.raw, errType)
	}
	if r.header.Get("X-Amzn-Errortype") != errType || r.str("message") == "" || r.str("Message") != r.str("message") {
		t.Fatalf("%s error shape: headers %v body %s", op, r.header, r.raw)
	}
	return r
}

type obj = map[string]any

const token1 = "11111111-2222-4333-8444-555555555555"

func TestCreateGetPutLifecycle(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	c := h.ok(t, a, "CreateSecret", obj{"Name": "prod/db", "SecretString": "v1", "Description": "db password",
		"ClientRequestToken": token1, "Tags": []obj{{"Key": "team", "Value": "payments"}}})
	arn := c.str("ARN")
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-") || len(arn) != len("arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-")+6 {
		t.Fatalf("ARN = %q", arn)
	}
	if c.str("Name") != "prod/db" || c.str("VersionId") != token1 {
		t.Fatalf("CreateSecret = %s", c.raw)
	}

	// Idempotent retry: same token, same value.
	again := h.ok(t, a, "CreateSecret", obj{"Name": "prod/db", "SecretString": "v1", "ClientRequestToken": token1})
	if again.str("VersionId") != token1 || again.str("ARN") != arn {
		t.Fatalf("retry = %s", again.raw)
	}
	h.fails(t, a, "CreateSecret", obj{"Name": "prod/db", "SecretString": "v1"}, "ResourceExistsException")
	h.fails(t, a, "CreateSecret", obj{"Name": "prod/db", "SecretString": "other", "ClientRequestToken": token1}, "ResourceExistsException")

	for _, id := range []string{"prod/db", arn, "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db"} {
		g := h.ok(t, a, "GetSecretValue", obj{"SecretId": id})
		if g.str("SecretString") != "v1" || g.str("VersionId") != token1 || g.str("ARN") != arn || g.body["SecretBinary"] != nil {
			t.Fatalf("GetSecretValue(%s) = %s", id, g.raw)
		}
		if st := g.body["VersionStages"].([]any); len(st) != 1 || st[0] != "AWSCURRENT" {
			t.Fatalf("stages = %v", st)
		}
		if _, ok := g.body["CreatedDate"].(float64); !ok {
			t.Fatalf("CreatedDate = %v", g.body["CreatedDate"])
		}
	}
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-XXXXXX"}, "ResourceNotFoundException")
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:prod/db"}, "ResourceNotFoundException")
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "nope"}, "ResourceNotFoundException")
	h.fails(t, a, "GetSecretValue", obj{}, "InvalidParameterException")

	bin := []byte{0, 1, 2, 255}
	p := h.ok(t, a, "PutSecretValue", obj{"SecretId": "prod/db", "SecretBinary": base64.StdEncoding.EncodeToString(bin)})
	v2 := p.str("VersionId")
	if len(v2) != 36 || v2 == token1 {
		t.Fatalf("derived VersionId = %q", v2)
	}
	g := h.ok(t, a, "GetSecretValue", obj{"SecretId": "prod/db"})
	if g.str("SecretBinary") != base64.StdEncoding.EncodeToString(bin) || g.body["SecretString"] != nil || g.str("VersionId") != v2 {
		t.Fatalf("binary read = %s", g.raw)
	}
	prev := h.ok(t, a, "GetSecretValue", obj{"SecretId": "prod/db", "VersionStage": "AWSPREVIOUS"})
	if prev.str("SecretString") != "v1" || prev.str("VersionId") != token1 {
		t.Fatalf("previous = %s", prev.raw)
	}
	byID := h.ok(t, a, "GetSecretValue", obj{"SecretId": "prod/db", "VersionId": token1})
	if byID.str("SecretString") != "v1" {
		t.Fatalf("by id = %s", byID.raw)
	}
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "prod/db", "VersionId": token1, "VersionStage": "AWSCURRENT"}, "ResourceNotFoundException")
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "prod/db", "VersionStage": "AWSPENDING"}, "ResourceNotFoundException")
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "prod/db", "VersionStage": "current"}, "InvalidParameterException")
	h.fails(t, a, "PutSecretValue", obj{"SecretId": "missing", "SecretString": "x"}, "ResourceNotFoundException")
	h.fails(t, a, "PutSecretValue", obj{"SecretId": "prod/db"}, "InvalidParameterException")
	h.fails(t, a, "PutSecretValue", obj{"SecretId": "prod/db", "SecretString": "x", "SecretBinary": "AA=="}, "InvalidParameterException")
	h.fails(t, a, "PutSecretValue", obj{"SecretId": "prod/db", "SecretString": "x", "ClientRequestToken": "short"}, "InvalidParameterException")

	// A pending version does not become current.
	pend := h.ok(t, a, "PutSecretValue", obj{"SecretId": "prod/db", "SecretString": "v3", "VersionStages": []string{"AWSPENDING"}})
	if st := pend.body["VersionStages"].([]any); len(st) != 1 || st[0] != "AWSPENDING" {
		t.Fatalf("pending stages = %s", pend.raw)
	}
	if g := h.ok(t, a, "GetSecretValue", obj{"SecretId": "prod/db"}); g.str("VersionId") != v2 {
		t.Fatal("a pending put moved AWSCURRENT")
	}

	d := h.ok(t, a, "DescribeSecret", obj{"SecretId": "prod/db"})
	if d.str("ARN") != arn || d.str("Description") != "db password" || d.body["RotationEnabled"] != false {
		t.Fatalf("DescribeSecret = %s", d.raw)
	}
	vs := d.body["VersionIdsToStages"].(map[string]any)
	if len(vs) != 3 || vs[v2].([]any)[0] != "AWSCURRENT" || vs[token1].([]any)[0] != "AWSPREVIOUS" {
		t.Fatalf("VersionIdsToStages = %v", vs)
	}
	if tags := d.body["Tags"].([]any); len(tags) != 1 || tags[0].(map[string]any)["Key"] != "team" {
		t.Fatalf("Tags = %v", tags)
	}

	u := h.ok(t, a, "UpdateSecret", obj{"SecretId": arn, "Description": "new", "SecretString": "v4"})
	if u.str("VersionId") == "" || u.body["VersionStages"] != nil {
		t.Fatalf("UpdateSecret = %s", u.raw)
	}
	if g := h.ok(t, a, "GetSecretValue", obj{"SecretId": "prod/db"}); g.str("SecretString") != "v4" {
		t.Fatalf("after UpdateSecret = %s", g.raw)
	}
	if d := h.ok(t, a, "DescribeSecret", obj{"SecretId": "prod/db"}); d.str("Description") != "new" {
		t.Fatalf("description = %s", d.raw)
	}
}

func TestStagesAndVersions(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "app/key", "SecretString": "one"})
	v1 := h.ok(t, a, "GetSecretValue", obj{"SecretId": "app/key"}).str("VersionId")
	v2 := h.ok(t, a, "PutSecretValue", obj{"SecretId": "app/key", "SecretString": "two"}).str("VersionId")
	v3 := h.ok(t, a, "PutSecretValue", obj{"SecretId": "app/key", "SecretString": "three", "VersionStages": []string{"blue"}}).str("VersionId")

	// The derived VersionId is stable across calls and agrees everywhere.
	l := h.ok(t, a, "ListSecretVersionIds", obj{"SecretId": "app/key"})
	vers := l.body["Versions"].([]any)
	if len(vers) != 3 || vers[0].(map[string]any)["VersionId"] != v3 || vers[2].(map[string]any)["VersionId"] != v1 {
		t.Fatalf("ListSecretVersionIds = %s", l.raw)
	}

	// Rollback: AWSCURRENT back to v1 must name where it is now.
	h.fails(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "AWSCURRENT", "MoveToVersionId": v1}, "InvalidParameterException")
	h.fails(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "AWSCURRENT", "MoveToVersionId": v1, "RemoveFromVersionId": v3}, "InvalidParameterException")
	h.ok(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "AWSCURRENT", "MoveToVersionId": v1, "RemoveFromVersionId": v2})
	if g := h.ok(t, a, "GetSecretValue", obj{"SecretId": "app/key"}); g.str("SecretString") != "one" {
		t.Fatalf("after rollback = %s", g.raw)
	}
	if g := h.ok(t, a, "GetSecretValue", obj{"SecretId": "app/key", "VersionStage": "AWSPREVIOUS"}); g.str("VersionId") != v2 {
		t.Fatalf("AWSPREVIOUS after rollback = %s", g.raw)
	}
	// Custom labels move and are removed.
	h.ok(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "blue", "MoveToVersionId": v2, "RemoveFromVersionId": v3})
	if g := h.ok(t, a, "GetSecretValue", obj{"SecretId": "app/key", "VersionStage": "blue"}); g.str("SecretString") != "two" {
		t.Fatalf("blue = %s", g.raw)
	}
	h.ok(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "blue", "RemoveFromVersionId": v2})
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "app/key", "VersionStage": "blue"}, "ResourceNotFoundException")
	h.fails(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "AWSCURRENT", "RemoveFromVersionId": v1}, "InvalidParameterException")
	h.fails(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "bad label!", "MoveToVersionId": v1}, "InvalidParameterException")
	h.fails(t, a, "UpdateSecretVersionStage", obj{"SecretId": "app/key", "VersionStage": "x", "MoveToVersionId": "nope-nope-nope-nope-nope-nope-nope"}, "ResourceNotFoundException")

	// v3 holds no label now: deprecated, listed only on request.
	l = h.ok(t, a, "ListSecretVersionIds", obj{"SecretId": "app/key"})
	if n := len(l.body["Versions"].([]any)); n != 2 {
		t.Fatalf("without deprecated: %d versions, want 2", n)
	}
	l = h.ok(t, a, "ListSecretVersionIds", obj{"SecretId": "app/key", "IncludeDeprecated": true, "MaxResults": 2})
	if n := len(l.body["Versions"].([]any)); n != 2 || l.str("NextToken") == "" {
		t.Fatalf("page 1 = %s", l.raw)
	}
	l2 := h.ok(t, a, "ListSecretVersionIds", obj{"SecretId": "app/key", "IncludeDeprecated": true, "MaxResults": 2, "NextToken": l.str("NextToken")})
	if vers := l2.body["Versions"].([]any); len(vers) != 1 || vers[0].(map[string]any)["VersionId"] != v1 || l2.str("NextToken") != "" {
		t.Fatalf("page 2 = %s", l2.raw)
	}
	h.fails(t, a, "ListSecretVersionIds", obj{"SecretId": "app/key", "NextToken": "garbage"}, "InvalidNextTokenException")
}

func TestDeleteRestore(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "tmp/x", "SecretString": "v"})
	h.fails(t, a, "DeleteSecret", obj{"SecretId": "tmp/x", "RecoveryWindowInDays": 6}, "InvalidParameterException")
	h.fails(t, a, "DeleteSecret", obj{"SecretId": "tmp/x", "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true}, "InvalidParameterException")
	d := h.ok(t, a, "DeleteSecret", obj{"SecretId": "tmp/x", "RecoveryWindowInDays": 7})
	when := time.Unix(int64(d.body["DeletionDate"].(float64)), 0)
	if want := h.now.Add(7 * 24 * time.Hour); when.Sub(want) > time.Second || want.Sub(when) > time.Second {
		t.Fatalf("DeletionDate = %v, want %v", when, want)
	}
	r := h.fails(t, a, "GetSecretValue", obj{"SecretId": "tmp/x"}, "InvalidRequestException")
	if r.str("message") != "You can't perform this operation on the secret because it was marked for deletion." {
		t.Fatalf("message = %q", r.str("message"))
	}
	h.fails(t, a, "PutSecretValue", obj{"SecretId": "tmp/x", "SecretString": "y"}, "InvalidRequestException")
	h.fails(t, a, "CreateSecret", obj{"Name": "tmp/x", "SecretString": "y"}, "InvalidRequestException")
	if d := h.ok(t, a, "DescribeSecret", obj{"SecretId": "tmp/x"}); d.body["DeletedDate"] == nil {
		t.Fatalf("DescribeSecret of a deleted secret = %s", d.raw)
	}
	// Deleted secrets are listed only on request.
	if l := h.ok(t, a, "ListSecrets", obj{}); len(l.body["SecretList"].([]any)) != 0 {
		t.Fatalf("ListSecrets shows a deleted secret: %s", l.raw)
	}
	if l := h.ok(t, a, "ListSecrets", obj{"IncludePlannedDeletion": true}); len(l.body["SecretList"].([]any)) != 1 {
		t.Fatalf("IncludePlannedDeletion: %s", l.raw)
	}
	h.ok(t, a, "RestoreSecret", obj{"SecretId": "tmp/x"})
	h.ok(t, a, "RestoreSecret", obj{"SecretId": "tmp/x"}) // not deleted: a no-op
	if g := h.ok(t, a, "GetSecretValue", obj{"SecretId": "tmp/x"}); g.str("SecretString") != "v" {
		t.Fatalf("after restore = %s", g.raw)
	}
	f := h.ok(t, a, "DeleteSecret", obj{"SecretId": "tmp/x", "ForceDeleteWithoutRecovery": true})
	if f.str("ARN") == "" {
		t.Fatalf("forced delete = %s", f.raw)
	}
	h.fails(t, a, "DescribeSecret", obj{"SecretId": "tmp/x"}, "ResourceNotFoundException")
	// A new secret under the same name has another ARN.
	n := h.ok(t, a, "CreateSecret", obj{"Name": "tmp/x", "SecretString": "v"})
	if n.str("ARN") == f.str("ARN") {
		t.Fatal("re-created secret kept the old ARN")
	}
}

func TestTagsAndListFilters(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	for _, s := range []struct{ name, desc, team string }{
		{"prod/payments/db", "Payments DB password", "payments"},
		{"prod/payments/api", "Stripe key", "payments"},
		{"prod/orders/db", "Orders database", "orders"},
		{"dev/orders/db", "dev copy", "orders"},
	} {
		h.ok(t, a, "CreateSecret", obj{"Name": s.name, "SecretString": "x", "Description": s.desc,
			"Tags": []obj{{"Key": "team", "Value": s.team}}})
	}
	h.ok(t, a, "TagResource", obj{"SecretId": "prod/orders/db", "Tags": []obj{{"Key": "tier", "Value": "gold"}}})
	h.ok(t, a, "UntagResource", obj{"SecretId": "dev/orders/db", "TagKeys": []string{"team"}})
	h.fails(t, a, "TagResource", obj{"SecretId": "prod/orders/db", "Tags": []obj{{"Key": "a"}, {"Key": "a"}}}, "InvalidParameterException")
	h.fails(t, a, "TagResource", obj{"SecretId": "prod/orders/db"}, "InvalidParameterException")

	names := func(r *response) string {
		var out []string
		for _, e := range r.body["SecretList"].([]any) {
			out = append(out, e.(map[string]any)["Name"].(string))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name    string
		filters []obj
		want    string
	}{
		{"none", nil, "dev/orders/db,prod/orders/db,prod/payments/api,prod/payments/db"},
		{"name prefix", []obj{{"Key": "name", "Values": []string{"prod/payments/"}}}, "prod/payments/api,prod/payments/db"},
		{"name alternatives", []obj{{"Key": "name", "Values": []string{"dev/", "prod/orders"}}}, "dev/orders/db,prod/orders/db"},
		{"name negated", []obj{{"Key": "name", "Values": []string{"!prod/"}}}, "dev/orders/db"},
		{"description case-insensitive", []obj{{"Key": "description", "Values": []string{"payments"}}}, "prod/payments/db"},
		{"tag-key", []obj{{"Key": "tag-key", "Values": []string{"tier"}}}, "prod/orders/db"},
		{"tag-value", []obj{{"Key": "tag-value", "Values": []string{"pay"}}}, "prod/payments/api,prod/payments/db"},
		{"all words", []obj{{"Key": "all", "Values": []string{"ORDERS gold"}}}, "prod/orders/db"},
		{"and across filters", []obj{{"Key": "name", "Values": []string{"prod/"}}, {"Key": "tag-value", "Values": []string{"orders"}}}, "prod/orders/db"},
		{"primary-region", []obj{{"Key": "primary-region", "Values": []string{"us"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.ok(t, a, "ListSecrets", obj{"Filters": tt.filters})
			if got := names(r); got != tt.want {
				t.Fatalf("ListSecrets(%v) = %q, want %q", tt.filters, got, tt.want)
			}
		})
	}
	h.fails(t, a, "ListSecrets", obj{"Filters": []obj{{"Key": "colour", "Values": []string{"x"}}}}, "InvalidParameterException")
	h.fails(t, a, "ListSecrets", obj{"SortOrder": "desc"}, "InvalidParameterException")
	h.fails(t, a, "ListSecrets", obj{"MaxResults": 101}, "InvalidParameterException")

	// Paging visits every secret once.
	var seen []string
	next := ""
	for range 10 {
		in := obj{"MaxResults": 3}
		if next != "" {
			in["NextToken"] = next
		}
		r := h.ok(t, a, "ListSecrets", in)
		if n := names(r); n != "" {
			seen = append(seen, n)
		}
		if next = r.str("NextToken"); next == "" {
			break
		}
	}
	if got := strings.Join(seen, ","); got != "dev/orders/db,prod/orders/db,prod/payments/api,prod/payments/db" {
		t.Fatalf("pages = %q", got)
	}
	entry := h.ok(t, a, "ListSecrets", obj{"MaxResults": 1}).body["SecretList"].([]any)[0].(map[string]any)
	if entry["ARN"] == nil || entry["SecretVersionsToStages"] == nil || entry["LastChangedDate"] == nil {
		t.Fatalf("entry = %v", entry)
	}
}

func TestBatchGetSecretValue(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	for _, n := range []string{"b/one", "b/two", "c/three"} {
		h.ok(t, a, "CreateSecret", obj{"Name": n, "SecretString": "v-" + n})
	}
	h.policy(t, "b-only", `path "b/one" { capabilities = ["read", "list"] }
path "b/two" { capabilities = ["list"] }`)
	k := h.key(t, "batch", "b-only")

	r := h.ok(t, a, "BatchGetSecretValue", obj{"SecretIdList": []string{"b/one", "b/two", "missing"}})
	if vals := r.body["SecretValues"].([]any); len(vals) != 2 {
		t.Fatalf("admin batch = %s", r.raw)
	}
	if errs := r.body["Errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["ErrorCode"] != "ResourceNotFoundException" || errs[0].(map[string]any)["SecretId"] != "missing" {
		t.Fatalf("errors = %v", errs)
	}
	r = h.ok(t, k, "BatchGetSecretValue", obj{"SecretIdList": []string{"b/one", "b/two", "c/three"}})
	vals, errs := r.body["SecretValues"].([]any), r.body["Errors"].([]any)
	if len(vals) != 1 || vals[0].(map[string]any)["SecretString"] != "v-b/one" || len(errs) != 2 ||
		errs[0].(map[string]any)["ErrorCode"] != "AccessDeniedException" {
		t.Fatalf("limited batch = %s", r.raw)
	}
	// With filters, names the key may not list are not even reported.
	r = h.ok(t, k, "BatchGetSecretValue", obj{"Filters": []obj{{"Key": "name", "Values": []string{"b/", "c/"}}}})
	vals, _ = r.body["SecretValues"].([]any)
	errs, _ = r.body["Errors"].([]any)
	if len(vals) != 1 || len(errs) != 1 || errs[0].(map[string]any)["SecretId"] != "b/two" {
		t.Fatalf("filtered batch = %s", r.raw)
	}
	h.fails(t, a, "BatchGetSecretValue", obj{}, "InvalidParameterException")
	h.fails(t, a, "BatchGetSecretValue", obj{"SecretIdList": []string{"a"}, "Filters": []obj{{"Key": "name", "Values": []string{"b"}}}}, "InvalidParameterException")
	many := make([]string, 21)
	for i := range many {
		many[i] = "x"
	}
	h.fails(t, a, "BatchGetSecretValue", obj{"SecretIdList": many}, "InvalidParameterException")
}

func TestAuthorizationMirrorsNativePolicies(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "prod/payments/db", "SecretString": "s"})
	h.ok(t, a, "CreateSecret", obj{"Name": "prod/orders/db", "SecretString": "s"})
	h.policy(t, "payments-ro", `path "prod/payments/*" { capabilities = ["read", "list"] }`)
	h.policy(t, "creator", `path "new/*" { capabilities = ["create"] }`)
	ro := h.key(t, "ro", "payments-ro")
	cr := h.key(t, "creator", "creator")
	none := h.key(t, "nothing")

	h.ok(t, ro, "GetSecretValue", obj{"SecretId": "prod/payments/db"})
	r := h.fails(t, ro, "GetSecretValue", obj{"SecretId": "prod/orders/db"}, "AccessDeniedException")
	if r.status != http.StatusBadRequest || !strings.Contains(r.str("message"), "permission denied") {
		t.Fatalf("denial = %d %s", r.status, r.raw)
	}
	// A refusal does not reveal whether the secret exists.
	h.fails(t, ro, "GetSecretValue", obj{"SecretId": "prod/orders/nope"}, "AccessDeniedException")
	h.fails(t, ro, "PutSecretValue", obj{"SecretId": "prod/payments/db", "SecretString": "x"}, "AccessDeniedException")
	h.fails(t, ro, "DeleteSecret", obj{"SecretId": "prod/payments/db"}, "AccessDeniedException")
	h.fails(t, ro, "TagResource", obj{"SecretId": "prod/payments/db", "Tags": []obj{{"Key": "a", "Value": "b"}}}, "AccessDeniedException")
	if l := h.ok(t, ro, "ListSecrets", obj{}); len(l.body["SecretList"].([]any)) != 1 {
		t.Fatalf("ListSecrets with payments-ro = %s", l.raw)
	}
	if l := h.ok(t, none, "ListSecrets", obj{}); len(l.body["SecretList"].([]any)) != 0 {
		t.Fatalf("ListSecrets with no policy = %s", l.raw)
	}

	// create alone: CreateSecret works, writing to an existing secret does not.
	h.ok(t, cr, "CreateSecret", obj{"Name": "new/one", "SecretString": "s"})
	h.fails(t, cr, "PutSecretValue", obj{"SecretId": "new/one", "SecretString": "x"}, "AccessDeniedException")
	h.fails(t, cr, "CreateSecret", obj{"Name": "prod/x", "SecretString": "s"}, "AccessDeniedException")

	// Every operation that names a secret refuses a key without policies.
	for _, op := range h.api.Operations() {
		switch op {
		case "GetRandomPassword", "ListSecrets", "RotateSecret", "CancelRotateSecret",
			"GetResourcePolicy", "PutResourcePolicy", "DeleteResourcePolicy", "ValidateResourcePolicy",
			"ReplicateSecretToRegions", "RemoveRegionsFromReplication", "StopReplicationToReplica":
			continue
		case "BatchGetSecretValue":
			r := h.ok(t, none, op, obj{"SecretIdList": []string{"prod/payments/db"}})
			if len(r.body["SecretValues"].([]any)) != 0 {
				t.Fatalf("BatchGetSecretValue leaked: %s", r.raw)
			}
			continue
		}
		in := obj{"SecretId": "prod/payments/db", "Name": "prod/payments/db2", "SecretString": "x",
			"Tags": []obj{{"Key": "k", "Value": "v"}}, "TagKeys": []string{"k"}, "VersionStage": "AWSCURRENT", "MoveToVersionId": token1}
		if op == "CreateSecret" {
			in = obj{"Name": "prod/payments/db2", "SecretString": "x"}
		}
		if op == "GetSecretValue" || op == "DescribeSecret" || op == "ListSecretVersionIds" || op == "DeleteSecret" || op == "RestoreSecret" {
			in = obj{"SecretId": "prod/payments/db"}
		}
		if op == "PutSecretValue" || op == "UpdateSecret" {
			in = obj{"SecretId": "prod/payments/db", "SecretString": "x"}
		}
		if op == "TagResource" {
			in = obj{"SecretId": "prod/payments/db", "Tags": []obj{{"Key": "k", "Value": "v"}}}
		}
		if op == "UntagResource" {
			in = obj{"SecretId": "prod/payments/db", "TagKeys": []string{"k"}}
		}
		if op == "UpdateSecretVersionStage" {
			in = obj{"SecretId": "prod/payments/db", "VersionStage": "AWSCURRENT", "MoveToVersionId": token1}
		}
		h.fails(t, none, op, in, "AccessDeniedException")
	}
}

func TestAuthenticationRefusals(t *testing.T) {
	h := newHarness(t)
	h.ok(t, h.admin, "CreateSecret", obj{"Name": "a", "SecretString": "s"})
	body := []byte(`{"SecretId":"a"}`)
	newReq := func() *http.Request {
		req, _ := http.NewRequest("POST", h.srv.URL+"/aws", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
		return req
	}
	check := func(name string, req *http.Request, status int, typ string) {
		t.Helper()
		r := do(t, req)
		if r.status != status || r.errType() != typ {
			t.Errorf("%s: %d %s, want %d %s", name, r.status, r.raw, status, typ)
		}
		if strings.Contains(string(r.raw), h.admin.secret) {
			t.Errorf("%s: the answer holds the secret access key", name)
		}
	}
	check("unsigned", newReq(), 403, "MissingAuthenticationTokenException")

	req := newReq()
	sigv4.Sign(req, "/aws", body, h.admin.id, h.admin.secret+"x", "us-east-1", "secretsmanager", h.now)
	check("wrong secret", req, 400, "InvalidSignatureException")

	req = newReq()
	sigv4.Sign(req, "/aws", body, "CFRKAAAAAAAAAAAAAAAA", h.admin.secret, "us-east-1", "secretsmanager", h.now)
	check("unknown key", req, 400, "UnrecognizedClientException")

	req = newReq()
	sigv4.Sign(req, "/aws", body, h.admin.id, h.admin.secret, "us-east-1", "kms", h.now)
	check("wrong service", req, 400, "InvalidSignatureException")

	req = newReq()
	sigv4.Sign(req, "/aws", body, h.admin.id, h.admin.secret, "us-east-1", "secretsmanager", h.now.Add(-6*time.Minute))
	check("too old", req, 400, "InvalidSignatureException")

	req = newReq()
	sigv4.Sign(req, "/", body, h.admin.id, h.admin.secret, "us-east-1", "secretsmanager", h.now)
	check("signed without the mount prefix", req, 400, "InvalidSignatureException")

	req = newReq()
	sigv4.Sign(req, "/aws", body, h.admin.id, h.admin.secret, "us-east-1", "secretsmanager", h.now)
	req.Header.Set("X-Amz-Target", "secretsmanager.DeleteSecret")
	check("target changed after signing", req, 400, "InvalidSignatureException")

	req = newReq()
	req.Header.Del("X-Amz-Target")
	sigv4.Sign(req, "/aws", body, h.admin.id, h.admin.secret, "us-east-1", "secretsmanager", h.now)
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	check("target not signed", req, 400, "IncompleteSignatureException")

	req = newReq()
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=garbage")
	req.Header.Set("X-Amz-Date", h.now.Format(sigv4.TimeFormat))
	check("malformed", req, 400, "IncompleteSignatureException")

	// Deleted and expired keys stop working at once.
	k := h.key(t, "temp", "aws-admin")
	h.ok(t, k, "GetSecretValue", obj{"SecretId": "a"})
	if err := h.keys.Delete(context.Background(), k.id); err != nil {
		t.Fatal(err)
	}
	h.fails(t, k, "GetSecretValue", obj{"SecretId": "a"}, "UnrecognizedClientException")
	id, secret, _, _ := h.keys.Create(context.Background(), awskey.Input{Name: "short", Policies: []string{"aws-admin"}, TTL: time.Minute})
	short := cred{id, secret}
	h.ok(t, short, "GetSecretValue", obj{"SecretId": "a"})
	h.now = h.now.Add(2 * time.Minute)
	h.fails(t, short, "GetSecretValue", obj{"SecretId": "a"}, "UnrecognizedClientException")
}

func TestProtocolErrors(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	h.fails(t, a, "NoSuchOperation", obj{}, "UnknownOperationException")
	h.fails(t, a, "GetSecretValue", obj{"SecretId": "a", "Bogus": 1}, "SerializationException")
	h.fails(t, a, "GetSecretValue", obj{"SecretId": 5}, "SerializationException")

	// An oversized body is refused before anything else.
	big := bytes.Repeat([]byte("a"), awsapi.MaxBodySize+1)
	req, _ := http.NewRequest("POST", h.srv.URL+"/aws", bytes.NewReader(big))
	if r := do(t, req); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body = %d %s", r.status, r.raw)
	}
	// GET is not part of the protocol.
	req, _ = http.NewRequest("GET", h.srv.URL+"/aws", nil)
	if r := do(t, req); r.status != http.StatusNotFound || r.errType() != "UnknownOperationException" {
		t.Fatalf("GET = %d %s", r.status, r.raw)
	}
	// Other paths go to the next handler.
	for _, p := range []string{"/v1/secrets", "/awsx", "/"} {
		resp, err := http.Post(h.srv.URL+p, "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Amzn-Requestid") != "" {
			t.Fatalf("POST %s went to the AWS API", p)
		}
	}
	// A sealed server answers 503 before looking at the signature.
	h.core.Seal()
	r := h.send(t, a, "GetSecretValue", obj{"SecretId": "a"})
	if r.status != http.StatusServiceUnavailable || r.errType() != "ServiceUnavailable" {
		t.Fatalf("sealed = %d %s", r.status, r.raw)
	}
}

func TestUnsupportedOperations(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	// Rotation is supported (rotation_test.go); Lambda functions are not.
	r := h.fails(t, a, "RotateSecret", obj{"SecretId": "x", "RotationLambdaARN": "arn:aws:lambda:us-east-1:1:function:f"}, "InvalidRequestException")
	if !strings.Contains(r.str("message"), "Coffer runs no Lambda functions") {
		t.Fatalf("RotateSecret message = %q", r.str("message"))
	}
	for _, op := range []string{"GetResourcePolicy", "PutResourcePolicy", "DeleteResourcePolicy", "ValidateResourcePolicy",
		"ReplicateSecretToRegions", "RemoveRegionsFromReplication", "StopReplicationToReplica"} {
		r := h.fails(t, a, op, obj{"SecretId": "x"}, "InvalidRequestException")
		if !strings.Contains(r.str("message"), "Coffer does not support") {
			t.Fatalf("%s message = %q", op, r.str("message"))
		}
	}
	h.fails(t, a, "CreateSecret", obj{"Name": "r", "SecretString": "x", "AddReplicaRegions": []obj{{"Region": "eu-west-1"}}}, "InvalidRequestException")
	h.fails(t, a, "CreateSecret", obj{"Name": "r"}, "InvalidRequestException")
}

func TestAuditRecords(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "audited", "SecretString": "hunter2-value", "ClientRequestToken": token1})
	h.ok(t, a, "GetSecretValue", obj{"SecretId": "audited"})
	h.policy(t, "none", `path "other" { capabilities = ["read"] }`)
	k := h.key(t, "x", "none")
	h.fails(t, k, "GetSecretValue", obj{"SecretId": "audited"}, "AccessDeniedException")
	req, _ := http.NewRequest("POST", h.srv.URL+"/aws", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "secretsmanager.ListSecrets")
	sigv4.Sign(req, "/aws", []byte("{}"), "CFRKAAAAAAAAAAAAAAAA", "nope", "us-east-1", "secretsmanager", h.now)
	do(t, req)
	h.ok(t, a, "BatchGetSecretValue", obj{"SecretIdList": []string{"audited", "missing"}})
	h.ok(t, a, "ListSecrets", obj{})

	if len(h.audit) != 7 {
		t.Fatalf("audit has %d records, want 7", len(h.audit))
	}
	create, read, denied, unauth, batch1, batch2, list := h.audit[0], h.audit[1], h.audit[2], h.audit[3], h.audit[4], h.audit[5], h.audit[6]
	if create.Op != "aws.CreateSecret" || create.Path != "audited" || create.Version != 1 || create.Err != nil ||
		create.Principal == nil || create.Principal.Name != "aws/admin" || create.Principal.Method != "awskey" || create.Principal.Accessor != a.id ||
		create.Sensitive["value"] != "hunter2-value" || create.Sensitive["idempotency_token"] != token1 {
		t.Errorf("create record = %+v", create)
	}
	if read.Op != "aws.GetSecretValue" || read.Version != 1 || read.Status != 200 || read.Decision == nil || read.Decision.Policy != "aws-admin" || len(read.Sensitive) != 0 {
		t.Errorf("read record = %+v", read)
	}
	if !errors.Is(denied.Err, auth.ErrForbidden) || denied.ErrCode != "AccessDeniedException" || denied.Status != 400 || denied.Path != "audited" ||
		denied.Decision == nil || denied.Decision.Allowed {
		t.Errorf("denied record = %+v", denied)
	}
	if !errors.Is(unauth.Err, auth.ErrUnauthenticated) || unauth.Op != "aws.ListSecrets" || unauth.ErrCode != "UnrecognizedClientException" ||
		unauth.Principal == nil || unauth.Principal.Accessor != "CFRKAAAAAAAAAAAAAAAA" || unauth.Principal.Policies != nil {
		t.Errorf("unauthenticated record = %+v", unauth)
	}
	if batch1.Path != "audited" || batch1.ErrCode != "" || batch2.Path != "missing" || batch2.ErrCode != "ResourceNotFoundException" {
		t.Errorf("batch records = %+v, %+v", batch1, batch2)
	}
	if list.Path != "" || list.Op != "aws.ListSecrets" {
		t.Errorf("list record = %+v", list)
	}
	for _, r := range h.audit {
		r.Sensitive = nil // the core keeps these only as HMACs
		if s := fmt.Sprintf("%+v", r); strings.Contains(s, "hunter2") || strings.Contains(s, a.secret) {
			t.Fatalf("an audit record holds a value or a key: %s", s)
		}
	}
}

func TestAuditFailureRefuses(t *testing.T) {
	h := newHarness(t)
	h.api = awsapi.New(awsapi.Config{Core: h.core, Keys: h.keys, Now: func() time.Time { return h.now },
		Audit: func(context.Context, core.RequestRecord) error { return errors.New("disk full") }})
	h.srv.Config.Handler = h.api.Mount(http.NotFoundHandler())
	r := h.fails(t, h.admin, "CreateSecret", obj{"Name": "x", "SecretString": "v"}, "ServiceUnavailable")
	if r.status != http.StatusServiceUnavailable || strings.Contains(string(r.raw), "disk full") {
		t.Fatalf("answer = %d %s", r.status, r.raw)
	}
}

func TestNativeValuesThroughAWS(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	put := func(name string, v []byte, typ string) {
		t.Helper()
		if _, err := h.core.Secrets.Put(ctx, secret.PutInput{Name: name, Value: v, Type: typ, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	put("native/json", []byte(`{"user":"app","password":"p"}`), secret.TypeJSON)
	put("native/text", []byte("plain"), secret.TypeText)
	put("native/latin1", []byte{'c', 'a', 'f', 0xe9}, secret.TypeText)
	if g := h.ok(t, h.admin, "GetSecretValue", obj{"SecretId": "native/json"}); g.str("SecretString") != `{"user":"app","password":"p"}` {
		t.Fatalf("JSON secret = %s", g.raw)
	}
	if g := h.ok(t, h.admin, "GetSecretValue", obj{"SecretId": "native/text"}); g.str("SecretString") != "plain" || len(g.str("VersionId")) != 36 {
		t.Fatalf("text secret = %s", g.raw)
	}
	// Text that is not UTF-8 cannot travel in a JSON string intact.
	if g := h.ok(t, h.admin, "GetSecretValue", obj{"SecretId": "native/latin1"}); g.str("SecretBinary") != base64.StdEncoding.EncodeToString([]byte{'c', 'a', 'f', 0xe9}) {
		t.Fatalf("non-UTF-8 text = %s", g.raw)
	}
	// What the AWS API writes, the native service reads as text and binary.
	h.ok(t, h.admin, "CreateSecret", obj{"Name": "aws/written", "SecretString": `{"a":1}`})
	v, err := h.core.Secrets.Get(ctx, "aws/written", secret.Selector{})
	if err != nil || v.Type != secret.TypeText || string(v.Data) != `{"a":1}` {
		t.Fatalf("native read = %+v, %v", v, err)
	}
}

func TestMountedWithStripPrefix(t *testing.T) {
	h := newHarness(t)
	// A server that strips /aws before the handler: the signature still
	// covers the path the client sent.
	srv := httptest.NewServer(http.StripPrefix("/aws", h.api))
	defer srv.Close()
	h.srv.URL = srv.URL
	h.ok(t, h.admin, "CreateSecret", obj{"Name": "s", "SecretString": "v"})
	if g := h.ok(t, h.admin, "GetSecretValue", obj{"SecretId": "s"}); g.str("SecretString") != "v" {
		t.Fatalf("GetSecretValue = %s", g.raw)
	}
}

func TestGetRandomPasswordOverHTTP(t *testing.T) {
	h := newHarness(t)
	r := h.ok(t, h.key(t, "nopolicy"), "GetRandomPassword", obj{"PasswordLength": 40, "ExcludePunctuation": true})
	if pw := r.str("RandomPassword"); len(pw) != 40 {
		t.Fatalf("RandomPassword = %q", pw)
	}
	h.fails(t, h.admin, "GetRandomPassword", obj{"PasswordLength": 0}, "InvalidParameterException")
}

// FuzzOperations sends arbitrary bodies to every operation, signed with an
// admin key: whatever the input, the answer is a well-formed AWS answer and
// never an internal error.
func FuzzOperations(f *testing.F) {
	h := newHarness(f)
	h.ok(f, h.admin, "CreateSecret", obj{"Name": "fuzz/a", "SecretString": "v"})
	ops := h.api.Operations()
	seeds := []string{
		`{}`, `{"SecretId":"fuzz/a"}`, `{"SecretId":"arn:aws:secretsmanager:us-east-1:000000000000:secret:fuzz/a-abcdef"}`,
		`{"SecretId":"arn:::::::"}`, `{"SecretId":"fuzz/a","VersionStage":"AWSCURRENT","MoveToVersionId":"x","RemoveFromVersionId":"y"}`,
		`{"Name":"fuzz/b","SecretBinary":"AAEC","Tags":[{"Key":"k"}]}`, `{"Filters":[{"Key":"all","Values":["!"]}]}`,
		`{"NextToken":"bHM6Zm9v","MaxResults":0}`, `{"PasswordLength":4096,"ExcludeCharacters":"abc"}`,
		`{"SecretIdList":["fuzz/a","arn:aws:secretsmanager:us-east-1:000000000000:secret:"]}`,
		`[]`, `null`, `{"SecretId":null}`, `{"SecretId":"fuzz/a"} trailing`, "\x00",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, opIndex uint8, body string) {
		op := ops[int(opIndex)%len(ops)]
		req := httptest.NewRequest("POST", "/aws", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "secretsmanager."+op)
		if err := sigv4.Sign(req, "/aws", []byte(body), h.admin.id, h.admin.secret, "us-east-1", "secretsmanager", h.now); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		h.api.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q = %d %s", op, body, w.Code, w.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q answered %q", op, body, w.Body)
		}
		if w.Code != 200 && (out["__type"] == nil || out["message"] == nil) {
			t.Fatalf("%s %q error without a type: %s", op, body, w.Body)
		}
	})
}

func TestRateLimits(t *testing.T) {
	h := newHarnessConfig(t, core.Config{RateLimits: []ratelimit.Rule{
		{Prefix: "limited/", IdentityRate: 0.001, IdentityBurst: 2},
	}})
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "limited/x", "SecretString": "v"})
	h.ok(t, a, "GetSecretValue", obj{"SecretId": "limited/x"})
	r := h.fails(t, a, "GetSecretValue", obj{"SecretId": "arn:aws:secretsmanager:us-east-1:000000000000:secret:limited/x"}, "ThrottlingException")
	if r.status != http.StatusBadRequest || r.header.Get("Retry-After") == "" {
		t.Fatalf("throttled answer = %d %v", r.status, r.header)
	}
	// Other paths and other identities have their own buckets.
	h.ok(t, a, "CreateSecret", obj{"Name": "free/x", "SecretString": "v"})
	h.ok(t, h.key(t, "other", "aws-admin"), "GetSecretValue", obj{"SecretId": "limited/x"})
}

// BenchmarkGetSecretValue measures one signed read through the whole
// pipeline (signature check, key lookup, policy, two reads), in process.
func BenchmarkGetSecretValue(b *testing.B) {
	h := newHarness(b)
	h.audit = nil
	h.api = awsapi.New(awsapi.Config{Core: h.core, Keys: h.keys, Now: func() time.Time { return h.now }})
	h.ok(b, h.admin, "CreateSecret", obj{"Name": "bench/x", "SecretString": strings.Repeat("v", 100)})
	body := []byte(`{"SecretId":"bench/x"}`)
	req := httptest.NewRequest("POST", "/aws", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	sigv4.Sign(req, "/aws", body, h.admin.id, h.admin.secret, "us-east-1", "secretsmanager", h.now)
	b.ReportAllocs()
	for b.Loop() {
		req.Body = io.NopCloser(bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.api.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
