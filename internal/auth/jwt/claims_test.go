package jwt

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func jsonMarshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// decodeJSON decodes a JSON value the way Login decodes claims.
func decodeJSON(tb testing.TB, s string) any {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func TestParseClaimName(t *testing.T) {
	tests := []struct {
		name    string
		want    []string
		wantErr bool
	}{
		{name: "sub", want: []string{"sub"}},
		{name: "kubernetes.io", want: []string{"kubernetes.io"}},
		{name: "a/b", want: []string{"a/b"}}, // no leading slash: literal
		{name: "/kubernetes.io/namespace", want: []string{"kubernetes.io", "namespace"}},
		{name: "/a~1b/c~0d/~01", want: []string{"a/b", "c~d", "~1"}},
		{name: "", wantErr: true},
		{name: "/", wantErr: true},
		{name: "/a/", wantErr: true},
		{name: "/a~", wantErr: true},
		{name: "/a~2b", wantErr: true},
		{name: "/" + strings.Repeat("a/", maxClaimPathDepth) + "a", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseClaimName(tc.name)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Fatalf("parseClaimName(%q) = %q, %v, want %q (error %v)", tc.name, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestLookupClaim(t *testing.T) {
	claims := decodeJSON(t, `{"sub":"x","kubernetes.io":{"namespace":"payments","pod":{"name":"p"}},"a/b":1,"list":[{"k":"v"}]}`).(map[string]any)
	tests := []struct {
		name   string
		want   string // scalarString of the value
		wantOK bool
	}{
		{name: "sub", want: "x", wantOK: true},
		{name: "/sub", want: "x", wantOK: true},
		{name: "/kubernetes.io/namespace", want: "payments", wantOK: true},
		{name: "/kubernetes.io/pod/name", want: "p", wantOK: true},
		{name: "a/b", want: "1", wantOK: true},
		{name: "/a~1b", want: "1", wantOK: true},
		{name: "kubernetes.io/namespace"},
		{name: "/kubernetes.io/missing"},
		{name: "/sub/deeper"},
		{name: "/list/0/k"}, // pointers do not index arrays
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, err := parseClaimName(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			v, ok := lookupClaim(claims, path)
			got, _ := scalarString(v)
			if ok != tc.wantOK || got != tc.want {
				t.Fatalf("lookupClaim(%q) = %q, %v, want %q, %v", tc.name, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestMatchClaim(t *testing.T) {
	tests := []struct {
		name     string
		claim    string // JSON
		patterns []string
		want     bool
	}{
		{name: "exact string", claim: `"acme/payments"`, patterns: []string{"acme/payments"}, want: true},
		{name: "string mismatch", claim: `"acme/payments"`, patterns: []string{"acme/billing"}},
		{name: "one of several", claim: `"b"`, patterns: []string{"a", "b"}, want: true},
		{name: "prefix glob", claim: `"refs/tags/v1.2"`, patterns: []string{"refs/tags/v*"}, want: true},
		{name: "prefix glob mismatch", claim: `"refs/heads/v1"`, patterns: []string{"refs/tags/v*"}},
		{name: "star matches empty", claim: `""`, patterns: []string{"*"}, want: true},
		{name: "star inside is literal", claim: `"a-x-b"`, patterns: []string{"a*b"}},
		{name: "star inside literal match", claim: `"a*b"`, patterns: []string{"a*b"}, want: true},
		{name: "case sensitive", claim: `"Payments"`, patterns: []string{"payments"}},
		{name: "bool", claim: `true`, patterns: []string{"true"}, want: true},
		{name: "bool mismatch", claim: `false`, patterns: []string{"true"}},
		{name: "integer", claim: `42`, patterns: []string{"42"}, want: true},
		{name: "integer as float", claim: `42.0`, patterns: []string{"42"}, want: true},
		{name: "integer in exponent form", claim: `1e2`, patterns: []string{"100"}, want: true},
		{name: "fraction", claim: `1.5`, patterns: []string{"1.5"}, want: true},
		{name: "number glob", claim: `12345`, patterns: []string{"123*"}, want: true},
		{name: "list any element", claim: `["devs","deployers"]`, patterns: []string{"deployers"}, want: true},
		{name: "list glob", claim: `["team:a","team:b"]`, patterns: []string{"team:*"}, want: true},
		{name: "list mismatch", claim: `["devs"]`, patterns: []string{"deployers"}},
		{name: "empty list", claim: `[]`, patterns: []string{"*"}},
		{name: "list of numbers", claim: `[1,2]`, patterns: []string{"2"}, want: true},
		{name: "nested list", claim: `[["deployers"]]`, patterns: []string{"deployers"}},
		{name: "object", claim: `{"a":"b"}`, patterns: []string{"*"}},
		{name: "null", claim: `null`, patterns: []string{"*"}},
		{name: "null is not the string null", claim: `null`, patterns: []string{"null"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchClaim(decodeJSON(t, tc.claim), tc.patterns); got != tc.want {
				t.Fatalf("matchClaim(%s, %q) = %v, want %v", tc.claim, tc.patterns, got, tc.want)
			}
		})
	}
}
