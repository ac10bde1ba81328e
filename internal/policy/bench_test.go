package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// benchSet compiles 100 policies of 100 rules each: prefix globs, "+"
// segments, templates, explicit denies and conditioned rules, the shape of
// a large deployment.
func benchSet(tb testing.TB) *Set {
	tb.Helper()
	var policies []*Policy
	for p := range 100 {
		var b strings.Builder
		for i := range 100 {
			if i == 0 {
				// A broad list rule: every request under the team visits it.
				fmt.Fprintf(&b, "path \"team%d/*\" {\n  capabilities = [\"list\"]\n}\n", p)
				continue
			}
			switch i % 10 {
			case 6:
				fmt.Fprintf(&b, "path \"team%d/+/db%d\" {\n  capabilities = [\"read\"]\n}\n", p, i)
			case 7:
				fmt.Fprintf(&b, "path \"apps/{{identity.name}}/svc%d_%d/*\" {\n  capabilities = [\"read\", \"create\"]\n}\n", p, i)
			case 8:
				fmt.Fprintf(&b, "path \"team%d/service%d/admin/*\" {\n  capabilities = [\"deny\"]\n}\n", p, i)
			case 9:
				fmt.Fprintf(&b, "path \"team%d/service%d/prod/*\" {\n  capabilities = [\"read\"]\n  condition {\n    source_cidrs = [\"10.0.0.0/8\"]\n    hours = \"08:00-18:00\"\n    timezone = \"Europe/Paris\"\n    require_mfa = true\n  }\n}\n", p, i)
			default:
				fmt.Fprintf(&b, "path \"team%d/service%d/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n", p, i)
			}
		}
		pol, err := Parse(fmt.Sprintf("team%d", p), []byte(b.String()))
		if err != nil {
			tb.Fatal(err)
		}
		policies = append(policies, pol)
	}
	s, err := Compile(policies...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func benchmarkEvaluate(b *testing.B, r Request, want bool) {
	s := benchSet(b)
	if d := s.Evaluate(r); d.Allowed != want {
		b.Fatalf("Evaluate(%q) = %+v, want Allowed %v", r.Path, d, want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Evaluate(r)
	}
}

func BenchmarkEvaluate10kRules(b *testing.B) {
	b.Run("allowed read", func(b *testing.B) {
		benchmarkEvaluate(b, Request{Path: "team42/service13/config", Capability: Read}, true)
	})
	b.Run("explicit deny", func(b *testing.B) {
		benchmarkEvaluate(b, Request{Path: "team42/service18/admin/root", Capability: Read}, false)
	})
	b.Run("plus segment", func(b *testing.B) {
		benchmarkEvaluate(b, Request{Path: "team42/anything/db16", Capability: Read}, true)
	})
	b.Run("no match", func(b *testing.B) {
		benchmarkEvaluate(b, Request{Path: "other/service13/config", Capability: Read}, false)
	})
	b.Run("conditions", func(b *testing.B) {
		benchmarkEvaluate(b, Request{
			Path:       "team42/service19/prod/db",
			Capability: Read,
			Source:     netip.MustParseAddr("10.1.2.3"),
			Time:       time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC),
			MFA:        true,
		}, true)
	})
}

func BenchmarkEvaluate10kRulesTemplated(b *testing.B) {
	benchmarkEvaluate(b, Request{
		Path:       "apps/alice/svc42_17/key",
		Capability: Create,
		Identity:   Identity{ID: "u-1", Name: "alice", Meta: map[string]string{"team": "payments"}},
	}, true)
}

func BenchmarkCompile10kRules(b *testing.B) {
	var policies []*Policy
	for p := range 100 {
		pol := &Policy{Name: fmt.Sprintf("team%d", p)}
		for i := range 100 {
			pol.Rules = append(pol.Rules, Rule{Path: fmt.Sprintf("team%d/service%d/*", p, i), Capabilities: []string{Read}})
		}
		policies = append(policies, pol)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Compile(policies...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	src := []byte(`
path "prod/payments/*" {
  capabilities = ["read", "list"]
}
path "prod/+/db" {
  capabilities = ["read"]
  condition {
    source_cidrs = ["10.0.0.0/8"]
    hours        = "08:00-18:00"
    timezone     = "Europe/Paris"
    require_mfa  = true
  }
}
`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench", src); err != nil {
			b.Fatal(err)
		}
	}
}
