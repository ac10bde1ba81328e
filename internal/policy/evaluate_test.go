package policy

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// doc is a named policy document.
type doc struct{ name, src string }

// mustCompile parses docs and compiles them, in order, into a Set.
func mustCompile(tb testing.TB, docs ...doc) *Set {
	tb.Helper()
	var ps []*Policy
	for _, d := range docs {
		p, err := Parse(d.name, []byte(d.src))
		if err != nil {
			tb.Fatalf("Parse(%q) = %v", d.name, err)
		}
		ps = append(ps, p)
	}
	s, err := Compile(ps...)
	if err != nil {
		tb.Fatalf("Compile() = %v", err)
	}
	return s
}

// evalCase is one Evaluate expectation. An empty policy means "p".
type evalCase struct {
	name    string
	rules   string // one policy, named "p"; or use set
	req     Request
	allowed bool
	reason  string
	rule    string // the deciding rule's pattern; "" when none
	mfa     bool   // want MFARequired
}

func runEval(t *testing.T, set *Set, tests []evalCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := set
			if tt.rules != "" {
				s = mustCompile(t, doc{"p", tt.rules})
			}
			if tt.req.Capability == "" {
				tt.req.Capability = Read
			}
			d := s.Evaluate(tt.req)
			if d.Allowed != tt.allowed || d.Reason != tt.reason || d.Rule != tt.rule || d.MFARequired != tt.mfa {
				t.Errorf("Evaluate(%q, %s) = %+v, want allowed %v, reason %q, rule %q, mfa %v",
					tt.req.Path, tt.req.Capability, d, tt.allowed, tt.reason, tt.rule, tt.mfa)
			}
			if (d.Rule == "") != (d.Policy == "") || (d.Rule == "") != (d.Line == 0) {
				t.Errorf("Evaluate(%q, %s) = %+v, want Rule, Policy and Line set together", tt.req.Path, tt.req.Capability, d)
			}
		})
	}
}

func TestEvaluateDenyPrecedence(t *testing.T) {
	s := mustCompile(t,
		doc{"payments", `
path "prod/payments/*" {
  capabilities = ["read", "list"]
}
path "prod/payments/admin/*" {
  capabilities = ["deny"]
}`},
		doc{"ops", `
path "prod/*" {
  capabilities = ["admin"]
}
path "prod/payments/admin/keys" {
  capabilities = ["read"]
}
path "prod/db" {
  capabilities = ["read"]
}`},
		doc{"firewall", `
path "prod/db" {
  capabilities = ["deny"]
  condition {
    source_cidrs = ["192.168.0.0/16"]
  }
}`},
	)
	lan := netip.MustParseAddr("192.168.1.10")
	vpn := netip.MustParseAddr("10.1.1.1")
	runEval(t, s, []evalCase{
		{name: "grant from the most specific rule", req: Request{Path: "prod/payments/x"}, allowed: true, reason: ReasonAllowed, rule: "prod/payments/*"},
		{name: "deny beats a literal grant in another policy", req: Request{Path: "prod/payments/admin/keys"}, reason: ReasonDenied, rule: "prod/payments/admin/*"},
		{name: "deny beats admin in another policy", req: Request{Path: "prod/payments/admin/keys", Capability: Admin}, reason: ReasonDenied, rule: "prod/payments/admin/*"},
		{name: "deny applies to every capability", req: Request{Path: "prod/payments/admin/x", Capability: List}, reason: ReasonDenied, rule: "prod/payments/admin/*"},
		{name: "deny glob does not cover its parent", req: Request{Path: "prod/payments/admin"}, allowed: true, reason: ReasonAllowed, rule: "prod/payments/*"},
		{name: "admin grants elsewhere", req: Request{Path: "prod/other", Capability: Destroy}, allowed: true, reason: ReasonAllowed, rule: "prod/*"},
		{name: "conditional deny that holds", req: Request{Path: "prod/db", Source: lan}, reason: ReasonDenied, rule: "prod/db"},
		{name: "conditional deny that does not hold", req: Request{Path: "prod/db", Source: vpn}, allowed: true, reason: ReasonAllowed, rule: "prod/db"},
		{name: "conditional deny with unknown source does not hold", req: Request{Path: "prod/db"}, allowed: true, reason: ReasonAllowed, rule: "prod/db"},
		{name: "outside every rule", req: Request{Path: "dev/x"}, reason: "no rule grants read"},
	})
}

func TestEvaluateGlob(t *testing.T) {
	const prodStar = `path "prod/*" { capabilities = ["read"] }`
	const all = `path "*" { capabilities = ["read"] }`
	const payStar = `path "prod/pay*" { capabilities = ["read"] }`
	runEval(t, nil, []evalCase{
		{name: "prod/* does not match prod", rules: prodStar, req: Request{Path: "prod"}, reason: "no rule grants read"},
		{name: "prod/* matches the prefix prod/", rules: prodStar, req: Request{Path: "prod/"}, allowed: true, reason: ReasonAllowed, rule: "prod/*"},
		{name: "prod/* matches a child", rules: prodStar, req: Request{Path: "prod/a"}, allowed: true, reason: ReasonAllowed, rule: "prod/*"},
		{name: "prod/* matches a grandchild", rules: prodStar, req: Request{Path: "prod/a/b/c"}, allowed: true, reason: ReasonAllowed, rule: "prod/*"},
		{name: "prod/* does not match production", rules: prodStar, req: Request{Path: "production/a"}, reason: "no rule grants read"},
		{name: "prod/* does not match the root", rules: prodStar, req: Request{Path: ""}, reason: "no rule grants read"},
		{name: "lone star matches the root", rules: all, req: Request{Path: ""}, allowed: true, reason: ReasonAllowed, rule: "*"},
		{name: "lone star matches a name", rules: all, req: Request{Path: "a"}, allowed: true, reason: ReasonAllowed, rule: "*"},
		{name: "lone star matches a deep prefix", rules: all, req: Request{Path: "a/b/c/"}, allowed: true, reason: ReasonAllowed, rule: "*"},
		{name: "lone star does not match an invalid path", rules: all, req: Request{Path: "a//b"}, reason: ReasonInvalidPath},
		{name: "pay* matches its own prefix", rules: payStar, req: Request{Path: "prod/pay"}, allowed: true, reason: ReasonAllowed, rule: "prod/pay*"},
		{name: "pay* matches a longer segment", rules: payStar, req: Request{Path: "prod/payments"}, allowed: true, reason: ReasonAllowed, rule: "prod/pay*"},
		{name: "pay* crosses segments", rules: payStar, req: Request{Path: "prod/payments/x/y"}, allowed: true, reason: ReasonAllowed, rule: "prod/pay*"},
		{name: "pay* does not match a shorter segment", rules: payStar, req: Request{Path: "prod/pa"}, reason: "no rule grants read"},
		{name: "pay* does not match the parent", rules: payStar, req: Request{Path: "prod/"}, reason: "no rule grants read"},
		{name: "pay* does not match another segment", rules: payStar, req: Request{Path: "prod/x/pay"}, reason: "no rule grants read"},
		{name: "plus star is a literal plus", rules: `path "prod/+*" { capabilities = ["read"] }`, req: Request{Path: "prod/x"}, reason: "no rule grants read"},
		{name: "plus star matches a literal plus", rules: `path "prod/+*" { capabilities = ["read"] }`, req: Request{Path: "prod/+x/y"}, allowed: true, reason: ReasonAllowed, rule: "prod/+*"},
	})
}

func TestEvaluatePlus(t *testing.T) {
	const db = `path "prod/+/db" { capabilities = ["read"] }`
	const child = `path "prod/+" { capabilities = ["read"] }`
	runEval(t, nil, []evalCase{
		{name: "one segment", rules: db, req: Request{Path: "prod/x/db"}, allowed: true, reason: ReasonAllowed, rule: "prod/+/db"},
		{name: "plus as a literal segment value", rules: db, req: Request{Path: "prod/+/db"}, allowed: true, reason: ReasonAllowed, rule: "prod/+/db"},
		{name: "empty segment", rules: db, req: Request{Path: "prod//db"}, reason: ReasonInvalidPath},
		{name: "two segments", rules: db, req: Request{Path: "prod/x/y/db"}, reason: "no rule grants read"},
		{name: "no segment", rules: db, req: Request{Path: "prod/db"}, reason: "no rule grants read"},
		{name: "as a prefix", rules: db, req: Request{Path: "prod/x/db/"}, reason: "no rule grants read"},
		{name: "longer last segment", rules: db, req: Request{Path: "prod/x/dbx"}, reason: "no rule grants read"},
		{name: "trailing plus", rules: child, req: Request{Path: "prod/x"}, allowed: true, reason: ReasonAllowed, rule: "prod/+"},
		{name: "trailing plus needs a segment", rules: child, req: Request{Path: "prod/"}, reason: "no rule grants read"},
		{name: "trailing plus not the parent", rules: child, req: Request{Path: "prod"}, reason: "no rule grants read"},
		{name: "trailing plus one level only", rules: child, req: Request{Path: "prod/x/y"}, reason: "no rule grants read"},
		{name: "plus then glob", rules: `path "+/+/*" { capabilities = ["read"] }`, req: Request{Path: "a/b/"}, allowed: true, reason: ReasonAllowed, rule: "+/+/*"},
		{name: "plus then glob needs both segments", rules: `path "+/+/*" { capabilities = ["read"] }`, req: Request{Path: "a/b"}, reason: "no rule grants read"},
		{name: "literal plus inside a segment", rules: `path "a+b/c" { capabilities = ["read"] }`, req: Request{Path: "a+b/c"}, allowed: true, reason: ReasonAllowed, rule: "a+b/c"},
		{name: "literal plus is not a wildcard", rules: `path "a+b/c" { capabilities = ["read"] }`, req: Request{Path: "axb/c"}, reason: "no rule grants read"},
	})
}

func TestEvaluateTemplates(t *testing.T) {
	s := mustCompile(t, doc{"p", `
path "apps/{{identity.name}}/*" {
  capabilities = ["read"]
}
path "ids/{{identity.id}}" {
  capabilities = ["read"]
}
path "teams/{{identity.meta.team}}/+/cfg" {
  capabilities = ["read"]
}
path "pair/{{identity.name}}/{{identity.meta.env}}" {
  capabilities = ["read"]
}`})
	alice := Identity{ID: "u-1", Name: "alice", Meta: map[string]string{"team": "payments", "env": "prod"}}
	runEval(t, s, []evalCase{
		{name: "name", req: Request{Path: "apps/alice/x", Identity: alice}, allowed: true, reason: ReasonAllowed, rule: "apps/{{identity.name}}/*"},
		{name: "name of someone else", req: Request{Path: "apps/bob/x", Identity: alice}, reason: "no rule grants read"},
		{name: "name is case sensitive", req: Request{Path: "apps/Alice/x", Identity: alice}, reason: "no rule grants read"},
		{name: "name is not a prefix", req: Request{Path: "apps/alice2/x", Identity: alice}, reason: "no rule grants read"},
		{name: "empty name", req: Request{Path: "apps/alice/x", Identity: Identity{}}, reason: "no rule grants read"},
		{name: "name with a slash", req: Request{Path: "apps/a/b/x", Identity: Identity{Name: "a/b"}}, reason: "no rule grants read"},
		{name: "name with a slash, first part", req: Request{Path: "apps/a/x", Identity: Identity{Name: "a/b"}}, reason: "no rule grants read"},
		{name: "name dot dot", req: Request{Path: "apps/../x", Identity: Identity{Name: ".."}}, reason: ReasonInvalidPath},
		{name: "literal template text", req: Request{Path: "apps/{{identity.name}}/x", Identity: alice}, reason: ReasonInvalidPath},
		{name: "id", req: Request{Path: "ids/u-1", Identity: alice}, allowed: true, reason: ReasonAllowed, rule: "ids/{{identity.id}}"},
		{name: "id of someone else", req: Request{Path: "ids/u-2", Identity: alice}, reason: "no rule grants read"},
		{name: "id is not the name", req: Request{Path: "ids/alice", Identity: alice}, reason: "no rule grants read"},
		{name: "meta key", req: Request{Path: "teams/payments/x/cfg", Identity: alice}, allowed: true, reason: ReasonAllowed, rule: "teams/{{identity.meta.team}}/+/cfg"},
		{name: "missing meta key", req: Request{Path: "teams/payments/x/cfg", Identity: Identity{Name: "alice", Meta: map[string]string{"env": "prod"}}}, reason: "no rule grants read"},
		{name: "nil meta", req: Request{Path: "teams/payments/x/cfg", Identity: Identity{Name: "alice"}}, reason: "no rule grants read"},
		{name: "empty meta value", req: Request{Path: "teams//x/cfg", Identity: Identity{Meta: map[string]string{"team": ""}}}, reason: ReasonInvalidPath},
		{name: "meta value with a slash", req: Request{Path: "teams/a/b/cfg", Identity: Identity{Meta: map[string]string{"team": "a/b"}}}, reason: "no rule grants read"},
		{name: "two templates", req: Request{Path: "pair/alice/prod", Identity: alice}, allowed: true, reason: ReasonAllowed, rule: "pair/{{identity.name}}/{{identity.meta.env}}"},
		{name: "two templates swapped", req: Request{Path: "pair/prod/alice", Identity: alice}, reason: "no rule grants read"},
	})
}

// wed is Wednesday 5 March 2025, 10:00 UTC.
func wed() time.Time { return time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC) }

func at(day time.Time, hh, mm int) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day(), hh, mm, 0, 0, time.UTC)
}

func withCond(cond string) string {
	return "path \"db/*\" {\n  capabilities = [\"read\"]\n  condition {\n" + cond + "\n  }\n}\n"
}

func TestEvaluateConditions(t *testing.T) {
	cidrs := withCond(`source_cidrs = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]`)
	weekdays := withCond(`days = ["mon", "tue", "wed", "thu", "fri"]`)
	office := withCond(`hours = "08:00-18:00"`)
	night := withCond(`hours = "22:00-06:00"`)
	paris := withCond("hours = \"08:00-18:00\"\n timezone = \"Europe/Paris\"")
	tokyoWed := withCond("days = [\"wed\"]\n timezone = \"Asia/Tokyo\"")
	mfa := withCond(`require_mfa = true`)
	mfaAndSource := withCond("require_mfa = true\n source_cidrs = [\"10.0.0.0/8\"]")
	const notSource, notDay, notHours = "condition not met: source address", "condition not met: day", "condition not met: hours"
	addr := netip.MustParseAddr
	sat := wed().AddDate(0, 0, 3)
	july := time.Date(2025, 7, 2, 0, 0, 0, 0, time.UTC)
	runEval(t, nil, []evalCase{
		{name: "cidr in", rules: cidrs, req: Request{Path: "db/x", Source: addr("10.200.0.1")}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "cidr out", rules: cidrs, req: Request{Path: "db/x", Source: addr("11.0.0.1")}, reason: notSource, rule: "db/*"},
		{name: "cidr ipv6 in", rules: cidrs, req: Request{Path: "db/x", Source: addr("2001:db8::1")}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "cidr ipv4-mapped ipv6", rules: cidrs, req: Request{Path: "db/x", Source: addr("::ffff:10.0.0.1")}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "bare address in", rules: cidrs, req: Request{Path: "db/x", Source: addr("192.0.2.7")}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "bare address neighbour", rules: cidrs, req: Request{Path: "db/x", Source: addr("192.0.2.8")}, reason: notSource, rule: "db/*"},
		{name: "unknown source", rules: cidrs, req: Request{Path: "db/x"}, reason: notSource, rule: "db/*"},
		{name: "weekday", rules: weekdays, req: Request{Path: "db/x", Time: wed()}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "weekend", rules: weekdays, req: Request{Path: "db/x", Time: sat}, reason: notDay, rule: "db/*"},
		{name: "unknown time fails days", rules: weekdays, req: Request{Path: "db/x"}, reason: notDay, rule: "db/*"},
		{name: "office hours start is inclusive", rules: office, req: Request{Path: "db/x", Time: at(wed(), 8, 0)}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "office hours end is exclusive", rules: office, req: Request{Path: "db/x", Time: at(wed(), 18, 0)}, reason: notHours, rule: "db/*"},
		{name: "before office hours", rules: office, req: Request{Path: "db/x", Time: at(wed(), 7, 59)}, reason: notHours, rule: "db/*"},
		{name: "unknown time fails hours", rules: office, req: Request{Path: "db/x"}, reason: notHours, rule: "db/*"},
		{name: "night before midnight", rules: night, req: Request{Path: "db/x", Time: at(wed(), 23, 0)}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "night start", rules: night, req: Request{Path: "db/x", Time: at(wed(), 22, 0)}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "night after midnight", rules: night, req: Request{Path: "db/x", Time: at(wed(), 5, 59)}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "night end", rules: night, req: Request{Path: "db/x", Time: at(wed(), 6, 0)}, reason: notHours, rule: "db/*"},
		{name: "night at noon", rules: night, req: Request{Path: "db/x", Time: at(wed(), 12, 0)}, reason: notHours, rule: "db/*"},
		{name: "timezone winter in", rules: paris, req: Request{Path: "db/x", Time: at(wed(), 7, 30)}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "timezone winter out", rules: paris, req: Request{Path: "db/x", Time: at(wed(), 17, 30)}, reason: notHours, rule: "db/*"},
		{name: "timezone summer in", rules: paris, req: Request{Path: "db/x", Time: at(july, 6, 30)}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "timezone summer out", rules: paris, req: Request{Path: "db/x", Time: at(july, 16, 30)}, reason: notHours, rule: "db/*"},
		{name: "request time zone is irrelevant", rules: paris, req: Request{Path: "db/x", Time: at(wed(), 7, 30).In(time.FixedZone("X", -5*3600))}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "timezone moves the day", rules: tokyoWed, req: Request{Path: "db/x", Time: at(wed(), 20, 0)}, reason: notDay, rule: "db/*"},
		{name: "timezone keeps the day", rules: tokyoWed, req: Request{Path: "db/x", Time: at(wed(), 10, 0)}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "mfa present", rules: mfa, req: Request{Path: "db/x", MFA: true}, allowed: true, reason: ReasonAllowed, rule: "db/*"},
		{name: "mfa missing", rules: mfa, req: Request{Path: "db/x"}, reason: ReasonMFARequired, rule: "db/*", mfa: true},
		{name: "mfa missing on a rule that would not grant", rules: mfa, req: Request{Path: "db/x", Capability: Update}, reason: "no rule grants update"},
		{name: "mfa and source missing", rules: mfaAndSource, req: Request{Path: "db/x"}, reason: notSource, rule: "db/*"},
		{name: "source ok, mfa missing", rules: mfaAndSource, req: Request{Path: "db/x", Source: addr("10.0.0.1")}, reason: ReasonMFARequired, rule: "db/*", mfa: true},
		{name: "mfa-only failure wins the reason", rules: mfaAndSource + `
path "db/x" {
  capabilities = ["read"]
  condition { source_cidrs = ["10.0.0.0/8"] }
}
path "db/+" {
  capabilities = ["read"]
  condition { require_mfa = true }
}`, req: Request{Path: "db/x", Source: addr("192.0.2.1")}, reason: ReasonMFARequired, rule: "db/+", mfa: true},
		{name: "an unconditional grant beats a failing one", rules: mfa + `path "db/+" { capabilities = ["read"] }`, req: Request{Path: "db/x"}, allowed: true, reason: ReasonAllowed, rule: "db/+"},
	})
}

func TestEvaluateAdmin(t *testing.T) {
	s := mustCompile(t, doc{"ops", `
path "sys/*" {
  capabilities = ["admin"]
}
path "app/x" {
  capabilities = ["read"]
}`})
	for _, c := range []string{Read, List, Create, Update, Delete, Destroy, Rotate, Admin} {
		runEval(t, s, []evalCase{
			{name: "admin implies " + c, req: Request{Path: "sys/mounts", Capability: c}, allowed: true, reason: ReasonAllowed, rule: "sys/*"},
		})
	}
	runEval(t, s, []evalCase{
		{name: "read does not imply admin", req: Request{Path: "app/x", Capability: Admin}, reason: "no rule grants admin"},
		{name: "read does not imply list", req: Request{Path: "app/x", Capability: List}, reason: "no rule grants list"},
		{name: "deny is not a requestable capability", req: Request{Path: "sys/x", Capability: Deny}, reason: ReasonUnknownCapability},
		{name: "unknown capability", req: Request{Path: "sys/x", Capability: "sudo"}, reason: ReasonUnknownCapability},
		{name: "capability is case sensitive", req: Request{Path: "sys/x", Capability: "READ"}, reason: ReasonUnknownCapability},
	})
}

// TestEvaluatePathEscapes checks that request paths are matched byte for
// byte: nothing is decoded, folded or normalized, and malformed paths
// match nothing even where their bytes start like a granted prefix.
func TestEvaluatePathEscapes(t *testing.T) {
	s := mustCompile(t, doc{"payments", `path "prod/payments/*" { capabilities = ["read"] }`})
	const none = "no rule grants read"
	runEval(t, s, []evalCase{
		{name: "control", req: Request{Path: "prod/payments/x"}, allowed: true, reason: ReasonAllowed, rule: "prod/payments/*"},
		{name: "list prefix", req: Request{Path: "prod/payments/x/"}, allowed: true, reason: ReasonAllowed, rule: "prod/payments/*"},
		{name: "dot dot", req: Request{Path: "prod/payments/../admin"}, reason: ReasonInvalidPath},
		{name: "trailing dot dot", req: Request{Path: "prod/payments/.."}, reason: ReasonInvalidPath},
		{name: "dot", req: Request{Path: "prod/payments/./x"}, reason: ReasonInvalidPath},
		{name: "double slash", req: Request{Path: "prod/payments//x"}, reason: ReasonInvalidPath},
		{name: "trailing double slash", req: Request{Path: "prod/payments//"}, reason: ReasonInvalidPath},
		{name: "leading slash", req: Request{Path: "/prod/payments/x"}, reason: ReasonInvalidPath},
		{name: "lone slash", req: Request{Path: "/"}, reason: ReasonInvalidPath},
		{name: "upper case", req: Request{Path: "PROD/payments/x"}, reason: none},
		{name: "mixed case", req: Request{Path: "prod/Payments/x"}, reason: none},
		{name: "percent-encoded slash", req: Request{Path: "prod/payments%2Fx"}, reason: ReasonInvalidPath},
		{name: "percent-encoded dot", req: Request{Path: "prod/payments/%2e%2e/admin"}, reason: ReasonInvalidPath},
		{name: "cyrillic a", req: Request{Path: "prod/pаyments/x"}, reason: ReasonInvalidPath},
		{name: "fullwidth solidus", req: Request{Path: "prod/payments／x"}, reason: ReasonInvalidPath},
		{name: "nul byte", req: Request{Path: "prod/payments/x\x00"}, reason: ReasonInvalidPath},
		{name: "newline", req: Request{Path: "prod/payments/x\n"}, reason: ReasonInvalidPath},
		{name: "backslash", req: Request{Path: `prod/payments\x`}, reason: ReasonInvalidPath},
		{name: "invalid utf-8", req: Request{Path: "prod/payments/\xff"}, reason: ReasonInvalidPath},
		{name: "the parent itself", req: Request{Path: "prod/payments"}, reason: none},
		{name: "longer sibling", req: Request{Path: "prod/paymentsx/y"}, reason: none},
	})
}

func TestEvaluateSpecificity(t *testing.T) {
	s := mustCompile(t,
		doc{"a", `path "prod/*" { capabilities = ["read"] }`},
		doc{"b", `path "prod/payments/*" { capabilities = ["read"] }`},
		doc{"c", "\n\npath \"prod/payments/db\" { capabilities = [\"read\"] }"},
		doc{"d", `path "prod/+/db" { capabilities = ["read"] }`},
		doc{"e", "path \"q/ab\" { capabilities = [\"read\"] }\npath \"q/a*\" { capabilities = [\"read\"] }"},
		doc{"f", `path "q/a*" { capabilities = ["read"] }`},
	)
	tests := []struct {
		name       string
		path       string
		wantPolicy string
		wantRule   string
		wantLine   int
	}{
		{"literal beats longer-reaching globs", "prod/payments/db", "c", "prod/payments/db", 3},
		{"longer glob beats shorter", "prod/payments/x", "b", "prod/payments/*", 1},
		{"plus beats a shorter glob", "prod/x/db", "d", "prod/+/db", 1},
		{"literal beats a glob of the same length", "q/ab", "e", "q/ab", 1},
		{"same pattern: first compiled wins", "q/ac", "e", "q/a*", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Evaluate(Request{Path: tt.path, Capability: Read})
			if !d.Allowed || d.Policy != tt.wantPolicy || d.Rule != tt.wantRule || d.Line != tt.wantLine {
				t.Errorf("Evaluate(%q) = %+v, want allowed by %s:%d %q", tt.path, d, tt.wantPolicy, tt.wantLine, tt.wantRule)
			}
		})
	}
}

func TestEvaluateEmptySets(t *testing.T) {
	empty, err := Compile()
	if err != nil {
		t.Fatalf("Compile() = %v", err)
	}
	tests := []struct {
		name string
		set  *Set
	}{
		{"nil", nil},
		{"zero", &Set{}},
		{"no policies", empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Request{Path: "a", Capability: Read}
			want := Decision{Reason: "no rule grants read"}
			if d := tt.set.Evaluate(r); d != want {
				t.Errorf("Evaluate(%q) = %+v, want %+v", r.Path, d, want)
			}
			if m := tt.set.Explain(r); len(m) != 0 {
				t.Errorf("Explain(%q) = %+v, want none", r.Path, m)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	s := mustCompile(t,
		doc{"payments", examplePolicy},
		doc{"ops", "path \"prod/*\" {\n  capabilities = [\"list\"]\n}\n"},
	)
	tests := []struct {
		name string
		req  Request
		want []Match
	}{
		{
			name: "deny and grants",
			req:  Request{Path: "prod/payments/admin/x", Capability: Read},
			want: []Match{
				{Policy: "payments", Rule: "prod/payments/admin/*", Line: 5, Capabilities: []string{"deny"}, Deny: true, ConditionMet: true},
				{Policy: "payments", Rule: "prod/payments/*", Line: 2, Capabilities: []string{"read", "list"}, Grants: true, ConditionMet: true},
				{Policy: "ops", Rule: "prod/*", Line: 1, Capabilities: []string{"list"}, ConditionMet: true},
			},
		},
		{
			name: "failed conditions",
			req:  Request{Path: "prod/payments/db", Capability: Read, Time: wed()},
			want: []Match{
				{Policy: "payments", Rule: "prod/payments/*", Line: 2, Capabilities: []string{"read", "list"}, Grants: true, ConditionMet: true},
				{Policy: "payments", Rule: "prod/+/db", Line: 11, Capabilities: []string{"read"}, Grants: true, FailedConditions: []string{CondSource, CondMFA}},
				{Policy: "ops", Rule: "prod/*", Line: 1, Capabilities: []string{"list"}, ConditionMet: true},
			},
		},
		{name: "no match", req: Request{Path: "dev/x", Capability: Read}, want: []Match{}},
		{name: "invalid path", req: Request{Path: "prod/../x", Capability: Read}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Explain(tt.req)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Explain(%q) =\n%+v\nwant\n%+v", tt.req.Path, got, tt.want)
			}
		})
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	s := benchSet(t)
	tests := []struct {
		name string
		req  Request
	}{
		{"allowed read", Request{Path: "team42/service13/config", Capability: Read}},
		{"explicit deny", Request{Path: "team42/service18/admin/x", Capability: Read}},
		{"templated", Request{Path: "apps/alice/svc42_17/key", Capability: Read, Identity: Identity{Name: "alice"}}},
		{"conditions", Request{Path: "team42/service19/prod/db", Capability: Read, Source: netip.MustParseAddr("10.1.2.3"), Time: wed()}},
		{"no match", Request{Path: "nope/x", Capability: Read}},
		{"invalid path", Request{Path: "team42/../x", Capability: Read}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { s.Evaluate(tt.req) }); n != 0 {
				t.Errorf("Evaluate(%q) allocates %v times, want 0", tt.req.Path, n)
			}
		})
	}
}

func TestEvaluateConcurrent(t *testing.T) {
	s := mustCompile(t, doc{"p", examplePolicy})
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 1000 {
				if d := s.Evaluate(Request{Path: "prod/payments/x", Capability: Read}); !d.Allowed {
					t.Errorf("Evaluate(%q) = %+v, want allowed", "prod/payments/x", d)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
