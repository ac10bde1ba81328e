package agent

import (
	"strings"
	"testing"
)

func TestSecretValueField(t *testing.T) {
	v := &secretValue{name: "app/db", typ: "json", data: []byte(`{"user":"app","port":5432,"tls":{ "on": true },"none":null,"pw":"p\"q"}`)}
	for _, tc := range []struct {
		field, want string
	}{
		{"user", "app"},
		{"port", "5432"},
		{"tls", `{"on":true}`},
		{"none", ""},
		{"pw", `p"q`},
	} {
		if got, err := v.field(tc.field); err != nil || got != tc.want {
			t.Errorf("field(%q) = %q, %v; want %q", tc.field, got, err, tc.want)
		}
	}
	// Errors name the secret and the field, never the value.
	for _, tc := range []struct {
		v     *secretValue
		field string
		want  string
	}{
		{v, "missing", `no field "missing"`},
		{&secretValue{name: "app/pw", typ: "text", data: []byte("hunter2")}, "x", "is text, not a JSON object"},
		{&secretValue{name: "app/list", typ: "json", data: []byte(`["hunter2"]`)}, "x", "not a JSON object"},
	} {
		_, err := tc.v.field(tc.field)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("field(%q) error = %v, want one containing %q and no value", tc.field, err, tc.want)
		}
	}
}
