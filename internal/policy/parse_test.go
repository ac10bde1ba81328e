package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

const examplePolicy = `# Payments service: read its own secrets.
path "prod/payments/*" {
  capabilities = ["read", "list"]
}
path "prod/payments/admin/*" {
  capabilities = ["deny"]
}
path "apps/{{identity.name}}/*" {
  capabilities = ["read", "create", "update"]
}
path "prod/+/db" {
  capabilities = ["read"]
  condition {
    source_cidrs = ["10.0.0.0/8", "127.0.0.1/32", "::1"]
    days         = ["mon", "tue", "wed", "thu", "fri"]
    hours        = "08:00-18:00"
    timezone     = "Europe/Paris"   # IANA name; default UTC
    require_mfa  = true
  }
}
`

func TestParse(t *testing.T) {
	p, err := Parse("payments", []byte(examplePolicy))
	if err != nil {
		t.Fatalf("Parse(example) = %v, want nil", err)
	}
	want := &Policy{
		Name: "payments",
		Rules: []Rule{
			{Path: "prod/payments/*", Capabilities: []string{"read", "list"}, Line: 2},
			{Path: "prod/payments/admin/*", Capabilities: []string{"deny"}, Line: 5},
			{Path: "apps/{{identity.name}}/*", Capabilities: []string{"read", "create", "update"}, Line: 8},
			{Path: "prod/+/db", Capabilities: []string{"read"}, Line: 11, Condition: &Condition{
				SourceCIDRs: []netip.Prefix{
					netip.MustParsePrefix("10.0.0.0/8"),
					netip.MustParsePrefix("127.0.0.1/32"),
					netip.MustParsePrefix("::1/128"),
				},
				Days:       []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
				Hours:      "08:00-18:00",
				Timezone:   "Europe/Paris",
				RequireMFA: true,
			}},
		},
		Source: []byte(examplePolicy),
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Parse(example) =\n%#v\nwant\n%#v", p, want)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"empty document", ""},
		{"comments only", "# nothing\n// granted\n/* yet */\n"},
		{"lone star", `path "*" { capabilities = ["admin"] }`},
		{"identifier label", `path prod { capabilities = ["read"] }`},
		{"literal plus inside segment", `path "a+b/+x/x+" { capabilities = ["read"] }`},
		{"plus star is a literal plus then glob", `path "prod/+*" { capabilities = ["read"] }`},
		{"id and meta templates", `path "u/{{identity.id}}/{{identity.meta.team-1_x}}/*" { capabilities = ["read"] }`},
		{"interpolation of constants", `path "a" { capabilities = ["re${"a"}d"] }`},
		{"wrapping hours", `path "a" {
  capabilities = ["read"]
  condition { hours = "22:00-06:00" }
}`},
		{"require_mfa false", `path "a" {
  capabilities = ["read"]
  condition { require_mfa = false }
}`},
		{"dotted literal segments", `path "a/.b/c../.../x.y" { capabilities = ["read"] }`},
		{"pattern of 1024 bytes", `path "` + strings.Repeat("a", 1024) + `" { capabilities = ["read"] }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("p", []byte(tt.src)); err != nil {
				t.Errorf("Parse(%q) = %v, want nil", tt.src, err)
			}
		})
	}
}

// rule wraps a rule body in a path block for error tests.
func rule(pattern, body string) string {
	return fmt.Sprintf("path %q {\n%s\n}\n", pattern, body)
}

const readCaps = `  capabilities = ["read"]`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantLine int
		wantMsg  string // substring of the error
	}{
		// HCL syntax and strict decoding.
		{"syntax error", "path \"a\" {\n  capabilities = [\"read\"\n}\n", 3, "missing item separator"},
		{"unknown top-level block", "\n\nrule \"a\" {}\n", 3, `unsupported block type`},
		{"top-level attribute", "name = \"x\"\n", 1, `unsupported argument`},
		{"unknown rule attribute", rule("a", readCaps+"\n  policy = \"x\""), 3, `unsupported argument`},
		{"unknown rule block", rule("a", readCaps+"\n  when {}"), 3, `unsupported block type`},
		{"unknown condition attribute", rule("a", readCaps+"\n  condition {\n    weekdays = [\"mon\"]\n  }"), 4, `unsupported argument`},
		{"missing capabilities", rule("a", ""), 1, `missing required argument`},
		{"missing label", "path {\n" + readCaps + "\n}\n", 1, `missing pattern for path`},
		{"two labels", "path \"a\" \"b\" {\n" + readCaps + "\n}\n", 1, `extraneous label`},
		{"attribute twice", rule("a", readCaps+"\n"+readCaps), 3, `attribute redefined`},
		{"variable reference", rule("a", "  capabilities = [read]"), 2, `must be a constant`},
		{"function call", rule("a", "  capabilities = [lower(\"READ\")]"), 2, `must be a constant`},
		{"interpolated variable", rule("a", "  capabilities = [\"${x}\"]"), 2, `must be a constant`},
		{"null capabilities", rule("a", "  capabilities = null"), 2, `must not be null`},

		// Capabilities.
		{"capabilities not a list", rule("a", `  capabilities = "read"`), 2, `must be a list of strings`},
		{"capability not a string", rule("a", `  capabilities = [1]`), 2, `must be a list of strings`},
		{"empty capabilities", rule("a", `  capabilities = []`), 2, `capabilities is empty`},
		{"unknown capability", rule("a", `  capabilities = ["read", "reed"]`), 2, `unknown capability "reed"`},
		{"capabilities are case sensitive", rule("a", `  capabilities = ["Read"]`), 2, `unknown capability "Read"`},
		{"duplicate capability", rule("a", `  capabilities = ["read", "read"]`), 2, `lists "read" twice`},
		{"deny with others", rule("a", `  capabilities = ["deny", "read"]`), 2, `combines deny`},

		// Patterns.
		{"empty pattern", rule("", readCaps), 1, `path "" is empty`},
		{"star in the middle", "\n" + rule("prod/*/db", readCaps), 2, `* is allowed only as the last character`},
		{"double star", rule("prod/**", readCaps), 1, `* is allowed only as the last character`},
		{"dot dot segment", rule("prod/../admin", readCaps), 1, `".." segment`},
		{"dot segment", rule("prod/./admin", readCaps), 1, `"." segment`},
		{"trailing dot dot", rule("prod/..", readCaps), 1, `".." segment`},
		{"empty segment", rule("prod//x", readCaps), 1, `empty segment`},
		{"trailing slash", rule("prod/", readCaps), 1, `empty segment`},
		{"empty segment before glob", rule("prod//*", readCaps), 1, `empty segment`},
		{"leading slash", rule("/prod/*", readCaps), 1, `must not start with /`},
		{"space", rule("prod x", readCaps), 1, `outside [A-Za-z0-9/_+=.@-]`},
		{"percent escape", rule("prod%2Fx", readCaps), 1, `outside [A-Za-z0-9/_+=.@-]`},
		{"unicode look-alike", rule("prod/pаyments", readCaps), 1, `outside [A-Za-z0-9/_+=.@-]`},
		{"question mark", rule("prod/?", readCaps), 1, `outside`},
		{"unknown template", rule("apps/{{identity.email}}", readCaps), 1, `unknown template variable "identity.email"`},
		{"template with spaces", rule("apps/{{ identity.name }}", readCaps), 1, `unknown template variable`},
		{"meta without key", rule("apps/{{identity.meta.}}", readCaps), 1, `unknown template variable`},
		{"meta key with a dot", rule("apps/{{identity.meta.a.b}}", readCaps), 1, `unknown template variable`},
		{"unbalanced open", rule("apps/{{identity.name}", readCaps), 1, `unbalanced braces`},
		{"unbalanced close", rule("apps/identity.name}}", readCaps), 1, `unbalanced braces`},
		{"single braces", rule("apps/{identity.name}", readCaps), 1, `malformed template`},
		{"two templates in a segment", rule("apps/{{identity.id}}{{identity.name}}", readCaps), 1, `malformed template`},
		{"template inside a segment", rule("apps/x-{{identity.name}}", readCaps), 1, `not a whole segment`},
		{"template before glob", rule("apps/{{identity.name}}*", readCaps), 1, `not a whole segment`},
		{"brace before glob", rule("apps/{*", readCaps), 1, `unbalanced braces`},
		{"pattern too long", rule(strings.Repeat("a", 1025), readCaps), 1, `the limit is 1024`},

		// Duplicates and limits.
		{"duplicate path", rule("a/*", readCaps) + rule("b", readCaps) + rule("a/*", readCaps), 7, `already defined on line 1`},
		{"two condition blocks", rule("a", readCaps+"\n  condition { require_mfa = true }\n  condition { hours = \"08:00-09:00\" }"), 4, `more than one condition block`},
		{"too many rules", strings.Repeat(rule("x", readCaps), 1) + manyRules(MaxRules), MaxRules*3 + 1, `the limit is 10000`},
		{"source too large", "#" + strings.Repeat("x", MaxSourceSize), 0, `the limit is 1048576`},

		// Conditions.
		{"empty condition", rule("a", readCaps+"\n  condition {}"), 3, `condition block is empty`},
		{"bad cidr", rule("a", readCaps+"\n  condition { source_cidrs = [\"10.0.0.0/33\"] }"), 3, `not a CIDR prefix`},
		{"bad address", rule("a", readCaps+"\n  condition { source_cidrs = [\"localhost\"] }"), 3, `neither a CIDR prefix nor an IP address`},
		{"address with zone", rule("a", readCaps+"\n  condition { source_cidrs = [\"fe80::1%eth0\"] }"), 3, `neither a CIDR prefix`},
		{"host bits set", rule("a", readCaps+"\n  condition { source_cidrs = [\"10.0.0.1/8\"] }"), 3, `did you mean 10.0.0.0/8`},
		{"empty cidrs", rule("a", readCaps+"\n  condition { source_cidrs = [] }"), 3, `source_cidrs is empty`},
		{"bad day", rule("a", readCaps+"\n  condition { days = [\"monday\"] }"), 3, `has "monday"`},
		{"day upper case", rule("a", readCaps+"\n  condition { days = [\"Mon\"] }"), 3, `has "Mon"`},
		{"duplicate day", rule("a", readCaps+"\n  condition { days = [\"mon\", \"mon\"] }"), 3, `lists "mon" twice`},
		{"empty days", rule("a", readCaps+"\n  condition { days = [] }"), 3, `days is empty`},
		{"hours not a window", rule("a", readCaps+"\n  condition { hours = \"8-18\" }"), 3, `not a window HH:MM-HH:MM`},
		{"hour 24", rule("a", readCaps+"\n  condition { hours = \"08:00-24:00\" }"), 3, `not a window`},
		{"minute 60", rule("a", readCaps+"\n  condition { hours = \"08:60-09:00\" }"), 3, `not a window`},
		{"empty window", rule("a", readCaps+"\n  condition { hours = \"08:00-08:00\" }"), 3, `empty window`},
		{"hours not a string", rule("a", readCaps+"\n  condition { hours = 8 }"), 3, `must be a string, not a number`},
		{"unknown timezone", rule("a", readCaps+"\n  condition { timezone = \"Mars/Olympus\" }"), 3, `"Mars/Olympus" is not a known IANA zone name`},
		{"local timezone", rule("a", readCaps+"\n  condition { timezone = \"Local\" }"), 3, `not an IANA zone name`},
		{"empty timezone", rule("a", readCaps+"\n  condition { timezone = \"\" }"), 3, `timezone is empty`},
		{"require_mfa as string", rule("a", readCaps+"\n  condition { require_mfa = \"true\" }"), 3, `must be a bool, not a string`},
		{"condition error line", rule("a", readCaps+"\n  condition {\n    require_mfa = true\n    days = [\"sat\", \"xyz\"]\n  }"), 5, `has "xyz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("payments", []byte(tt.src))
			var perr *Error
			if !errors.As(err, &perr) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Parse(%.80q) = %v, want an *Error wrapping ErrInvalidPolicy", tt.src, err)
			}
			if perr.Policy != "payments" || perr.Line != tt.wantLine {
				t.Errorf("Parse(%.80q) error at %s:%d, want payments:%d (%v)", tt.src, perr.Policy, perr.Line, tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Parse(%.80q) = %v, want a message containing %q", tt.src, err, tt.wantMsg)
			}
			if tt.wantLine > 0 && !strings.HasPrefix(err.Error(), fmt.Sprintf("payments.hcl:%d: ", tt.wantLine)) {
				t.Errorf("Parse(%.80q) = %q, want it to start with payments.hcl:%d: ", tt.src, err, tt.wantLine)
			}
			if len(err.Error()) > 400 {
				t.Errorf("Parse(%.80q) error is %d bytes long, want it short", tt.src, len(err.Error()))
			}
		})
	}
}

// manyRules returns n distinct one-line-capability rules of three lines each.
func manyRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "path \"r%d\" {\n  capabilities = [\"read\"]\n}\n", i)
	}
	return b.String()
}

func TestParseMaxRules(t *testing.T) {
	if _, err := Parse("big", []byte(manyRules(MaxRules))); err != nil {
		t.Errorf("Parse(%d rules) = %v, want nil", MaxRules, err)
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "payments", true},
		{"digits dash underscore", "team-1_a", true},
		{"max length", strings.Repeat("a", MaxNameLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxNameLen+1), false},
		{"upper case", "Payments", false},
		{"dot", "a.b", false},
		{"slash", "a/b", false},
		{"space", "a b", false},
		{"unicode", "pаyments", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.in)
			if (err == nil) != tt.ok {
				t.Errorf("ValidateName(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("ValidateName(%q) = %v, want it to wrap ErrInvalidPolicy", tt.in, err)
			}
			if _, perr := Parse(tt.in, nil); (perr == nil) != tt.ok {
				t.Errorf("Parse(%q, nil) = %v, want ok %v", tt.in, perr, tt.ok)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    string
		wantErr bool
	}{
		{
			name: "aligns and indents",
			src:  "path \"a/*\" {\ncapabilities=[\"read\",\"list\"]\ncondition {\nrequire_mfa=true\nhours=\"08:00-18:00\"\n}\n}\n",
			want: "path \"a/*\" {\n  capabilities = [\"read\", \"list\"]\n  condition {\n    require_mfa = true\n    hours       = \"08:00-18:00\"\n  }\n}\n",
		},
		{name: "already canonical", src: "path \"a\" {\n  capabilities = [\"read\"]\n}\n", want: "path \"a\" {\n  capabilities = [\"read\"]\n}\n"},
		{name: "syntax error", src: "path \"a\" {", wantErr: true},
		{name: "semantic error", src: `path "a" { capabilities = ["reed"] }`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Format([]byte(tt.src))
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidPolicy) {
					t.Errorf("Format(%q) = %q, %v, want ErrInvalidPolicy", tt.src, got, err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("Format(%q) = %q, %v, want %q", tt.src, got, err, tt.want)
			}
		})
	}
}

func TestParseCopiesSource(t *testing.T) {
	src := []byte(`path "a" { capabilities = ["read"] }`)
	p, err := Parse("p", src)
	if err != nil {
		t.Fatal(err)
	}
	src[0] = 'X'
	if p.Source[0] != 'p' {
		t.Errorf("Policy.Source aliases the caller's buffer")
	}
}

func TestCompileErrors(t *testing.T) {
	ok := func(name string) *Policy {
		return &Policy{Name: name, Rules: []Rule{{Path: "a/*", Capabilities: []string{Read}}}}
	}
	withRule := func(r Rule) *Policy { return &Policy{Name: "p", Rules: []Rule{r}} }
	tests := []struct {
		name     string
		policies []*Policy
		wantMsg  string
	}{
		{"nil policy", []*Policy{ok("a"), nil}, "nil policy"},
		{"bad name", []*Policy{ok("Bad")}, "policy name"},
		{"duplicate name", []*Policy{ok("a"), ok("b"), ok("a")}, "a.hcl: policy is given more than once"},
		{"bad pattern", []*Policy{withRule(Rule{Path: "a/*/b", Capabilities: []string{Read}, Line: 7})}, `p.hcl:7: path "a/*/b" has *`},
		{"no capabilities", []*Policy{withRule(Rule{Path: "a"})}, "capabilities is empty"},
		{"unknown capability", []*Policy{withRule(Rule{Path: "a", Capabilities: []string{"sudo"}})}, `unknown capability "sudo"`},
		{"deny mixed", []*Policy{withRule(Rule{Path: "a", Capabilities: []string{Deny, Admin}})}, "combines deny"},
		{"duplicate path", []*Policy{{Name: "p", Rules: []Rule{{Path: "a", Capabilities: []string{Read}}, {Path: "a", Capabilities: []string{List}}}}}, "defined more than once"},
		{"bad hours", []*Policy{withRule(Rule{Path: "a", Capabilities: []string{Read}, Condition: &Condition{Hours: "9-5"}})}, `condition hours "9-5"`},
		{"bad timezone", []*Policy{withRule(Rule{Path: "a", Capabilities: []string{Read}, Condition: &Condition{Timezone: "Nowhere"}})}, `condition timezone "Nowhere"`},
		{"bad weekday", []*Policy{withRule(Rule{Path: "a", Capabilities: []string{Read}, Condition: &Condition{Days: []time.Weekday{9}}})}, "invalid weekday"},
		{"duplicate weekday", []*Policy{withRule(Rule{Path: "a", Capabilities: []string{Read}, Condition: &Condition{Days: []time.Weekday{1, 1}}})}, `"mon" twice`},
		{"invalid prefix", []*Policy{withRule(Rule{Path: "a", Capabilities: []string{Read}, Condition: &Condition{SourceCIDRs: []netip.Prefix{{}}}})}, "invalid prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(tt.policies...)
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Compile() = %v, %v, want an ErrInvalidPolicy containing %q", s, err, tt.wantMsg)
			}
		})
	}
}

// TestDeepNestingRefused: a policy nesting brackets deeper than MaxNesting
// is refused with a line number, before the HCL parser (which recurses per
// level) could overflow the stack and kill the server.
func TestDeepNestingRefused(t *testing.T) {
	deep := "path \"ok\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = " + strings.Repeat("[", 200000) + " }"
	_, err := Parse("deep", []byte(deep))
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 2 || !strings.Contains(pe.Msg, "nest deeper than") {
		t.Fatalf("Parse(200,000 [) = %v, want a nesting error on line 2", err)
	}
	ok := `path "a" {
  capabilities = ["read"]
  condition {
    source_cidrs = ["10.0.0.0/8"]
  }
}`
	if _, err := Parse("ok", []byte(ok)); err != nil {
		t.Fatalf("Parse(a normal policy) = %v", err)
	}
}
