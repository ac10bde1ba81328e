package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		examplePolicy,
		// Empty and comment-only documents are valid and grant nothing.
		"",
		"# only a comment\n",
		// Every wildcard kind at once.
		`path "+/{{identity.meta.team}}/a+b/pay*" { capabilities = ["read", "admin"] }`,
		// A lone star.
		`path "*" { capabilities = ["deny"] }`,
		// Hours that wrap past midnight, IPv6 and bare addresses.
		"path \"a\" {\n  capabilities = [\"read\"]\n  condition {\n    hours = \"22:00-06:00\"\n    source_cidrs = [\"::1\", \"fe80::/10\", \"1.2.3.4\"]\n  }\n}\n",
		// Heredoc and interpolation of constants in values.
		"path \"a\" {\n  capabilities = [<<EOT\nread\nEOT\n  ]\n}\n",
		`path "a" { capabilities = ["${"re"}ad"] }`,
		// Template directives and variables must be rejected, not evaluated.
		`path "a" { capabilities = ["%{ if true }read%{ endif }"] }`,
		`path "a" { capabilities = [var.x] }`,
		// Nesting past MaxNesting is refused before HCL recurses into it.
		`path "a" { capabilities = ` + strings.Repeat("[", 40) + `"read"` + strings.Repeat("]", 40) + ` }`,
		`path "a" { capabilities = ["${` + strings.Repeat("(", 40) + `"read"` + strings.Repeat(")", 40) + `}"] }`,
		// Unbalanced syntax.
		`path "a" { capabilities = ["read"`,
		"path \"a\" {\n  capabilities = [\"read\"]\n",
		`path "a" }`,
		// Invalid patterns.
		`path "a/*/b" { capabilities = ["read"] }`,
		`path "a/../b" { capabilities = ["read"] }`,
		`path "{{identity.name}" { capabilities = ["read"] }`,
		`path "/a" { capabilities = ["read"] }`,
		// Duplicate and conflicting rules.
		"path \"a\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = [\"list\"] }\n",
		`path "a" { capabilities = ["deny", "read"] }`,
		// Wrong types.
		`path "a" { capabilities = "read" }`,
		`path "a" { capabilities = {read = true} }`,
		"path \"a\" {\n  capabilities = [\"read\"]\n  condition { require_mfa = 1 }\n}\n",
		// Odd bytes: NUL, invalid UTF-8, a BOM, CRLF line endings.
		"path \"a\x00\" { capabilities = [\"read\"] }",
		"path \"\xff\" { capabilities = [\"read\"] }",
		"\ufeffpath \"a\" { capabilities = [\"read\"] }",
		"path \"a\" {\r\n  capabilities = [\"read\"]\r\n}\r\n",
		// Unknown timezone and Local.
		"path \"a\" {\n  capabilities = [\"read\"]\n  condition { timezone = \"../../etc/passwd\" }\n}\n",
		"path \"a\" {\n  capabilities = [\"read\"]\n  condition { timezone = \"Local\" }\n}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz", src)
		if err != nil {
			if _, ferr := Format(src); ferr == nil {
				t.Fatalf("Format(%q) = nil error, but Parse = %v", src, err)
			}
			return
		}
		s, err := Compile(p)
		if err != nil {
			t.Fatalf("Compile(Parse(%q)) = %v, want nil", src, err)
		}
		out, err := Format(src)
		if err != nil {
			t.Fatalf("Format(%q) = %v, but Parse succeeded", src, err)
		}
		p2, err := Parse("fuzz", out)
		if err != nil {
			t.Fatalf("Parse(Format(%q)) = %v, want nil; formatted:\n%s", src, err, out)
		}
		if !rulesEqual(p.Rules, p2.Rules) {
			t.Fatalf("Parse(Format(%q)) = %+v, want %+v", src, p2.Rules, p.Rules)
		}
		for _, r := range p.Rules {
			req := Request{Path: r.Path, Capability: Read, Source: netip.MustParseAddr("10.0.0.1"), Time: wed()}
			s.Evaluate(req)
			s.Explain(req)
		}
	})
}

// FuzzEvaluatePath checks that arbitrary request paths never panic, that
// the engine's path check agrees with the reference one, and that a
// "prod/payments/*" grant never allows a path that is not, byte for byte, a
// valid path under "prod/payments/".
func FuzzEvaluatePath(f *testing.F) {
	for _, p := range []string{
		"prod/payments/x",
		"",                       // the root list prefix
		"prod/payments/",         // a list prefix
		"prod/payments/../admin", // traversal
		"prod/payments//x",       // empty segment
		"PROD/payments/x",        // case
		"prod/payments%2Fx",      // percent-encoding
		"prod/pаyments/x",        // Cyrillic а
		"prod/payments/\x00",     // NUL
		"/prod/payments/x",       // leading slash
		"prod/payments/x/./y",    // dot segment
		"prod/payments/.../x",    // three dots are a valid name
	} {
		f.Add(p, "alice")
	}
	f.Add("a", "\xff") // an identity value that is not UTF-8
	s := mustCompile(f, doc{"p", `
path "prod/payments/*" {
  capabilities = ["read"]
}
path "apps/{{identity.name}}/+" {
  capabilities = ["read"]
}`})
	f.Fuzz(func(t *testing.T, path, name string) {
		if got, want := validRequestPath(path), refValidPath(path); got != want {
			t.Fatalf("validRequestPath(%q) = %v, want %v", path, got, want)
		}
		r := Request{Path: path, Capability: Read, Identity: Identity{Name: name}}
		d := s.Evaluate(r)
		if want := refEvaluate([]refRule{
			{policy: "p", Rule: Rule{Path: "prod/payments/*", Capabilities: []string{Read}, Line: 2}},
			{policy: "p", Rule: Rule{Path: "apps/{{identity.name}}/+", Capabilities: []string{Read}, Line: 5}, index: 1},
		}, r); d != want {
			t.Fatalf("Evaluate(%q, name %q) = %+v, want %+v", path, name, d, want)
		}
		if d.Allowed && d.Rule == "prod/payments/*" && (!refValidPath(path) || len(path) < len("prod/payments/") || path[:len("prod/payments/")] != "prod/payments/") {
			t.Fatalf("Evaluate(%q) = %+v, want denied", path, d)
		}
	})
}
