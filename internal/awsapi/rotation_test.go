package awsapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/secret"
)

func TestRotateSecret(t *testing.T) {
	h := newHarness(t)
	a := h.admin
	h.ok(t, a, "CreateSecret", obj{"Name": "app/key", "SecretString": "first"})
	r := h.fails(t, a, "RotateSecret", obj{"SecretId": "app/key"}, "InvalidRequestException")
	if !strings.Contains(r.str("message"), "no rotation policy") {
		t.Fatalf("RotateSecret without a policy: %s", r.raw)
	}
	ctx := context.Background()
	if _, err := h.core.Rotation.SetPolicy(ctx, "app/key", rotation.Policy{Rotator: "password", Options: json.RawMessage(`{"length":16}`)}, "t"); err != nil {
		t.Fatal(err)
	}
	r = h.ok(t, a, "RotateSecret", obj{"SecretId": "app/key", "RotationRules": obj{"AutomaticallyAfterDays": 30}})
	if r.str("Name") != "app/key" || r.str("VersionId") == "" {
		t.Fatalf("RotateSecret = %s", r.raw)
	}
	v := h.ok(t, a, "GetSecretValue", obj{"SecretId": "app/key"})
	if s := v.str("SecretString"); len(s) != 16 || v.str("VersionId") != r.str("VersionId") {
		t.Fatalf("after RotateSecret: %s", v.raw)
	}
	st, err := h.core.Rotation.Status(ctx, "app/key")
	if err != nil || st.Policy.Schedule != "every 30d" {
		t.Fatalf("schedule after RotationRules = %+v, %v", st, err)
	}
	d := h.ok(t, a, "DescribeSecret", obj{"SecretId": "app/key"})
	if d.body["RotationEnabled"] != true || d.body["NextRotationDate"] == nil || d.body["LastRotatedDate"] == nil ||
		d.body["RotationRules"].(map[string]any)["AutomaticallyAfterDays"] != float64(30) {
		t.Fatalf("DescribeSecret = %s", d.raw)
	}
	l := h.ok(t, a, "ListSecrets", obj{})
	if e := l.body["SecretList"].([]any)[0].(map[string]any); e["RotationEnabled"] != true || e["NextRotationDate"] == nil ||
		e["RotationRules"].(map[string]any)["AutomaticallyAfterDays"] != float64(30) {
		t.Fatalf("ListSecrets entry = %s", l.raw)
	}
	h.ok(t, a, "RotateSecret", obj{"SecretId": "app/key", "RotateImmediately": false, "RotationRules": obj{"ScheduleExpression": "rate(10 days)"}})
	if st, _ := h.core.Rotation.Status(ctx, "app/key"); st.Policy.Schedule != "every 10d" || st.State.Rotations != 1 {
		t.Fatalf("after RotateImmediately=false: %+v", st)
	}
	h.fails(t, a, "RotateSecret", obj{"SecretId": "app/key", "RotationRules": obj{"ScheduleExpression": "cron(0 3 * * ? *)"}}, "InvalidParameterException")
	h.ok(t, a, "CancelRotateSecret", obj{"SecretId": "app/key"})
	if _, err := h.core.Rotation.Status(ctx, "app/key"); err == nil {
		t.Fatal("CancelRotateSecret left the policy")
	}
	if m, _ := h.core.Secrets.Describe(ctx, "app/key"); m.Stages[secret.StagePending] != 0 {
		t.Fatalf("pending after cancel: %v", m.Stages)
	}
}
