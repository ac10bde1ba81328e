package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// The reference implementation below decides requests the slow, obvious
// way: every rule's pattern becomes a regular expression, every rule is
// tried, and the most specific one is found by sorting. The property test
// checks that the compiled trie agrees with it.

type refRule struct {
	policy string
	Rule
	index int // compile order
}

// refValidPath mirrors secret.ValidateName and ValidatePrefix, less length.
func refValidPath(p string) bool {
	if !regexp.MustCompile(`^([A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*/?)?$`).MatchString(p) {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

func refMatch(pattern, path string, id Identity) bool {
	glob := strings.HasSuffix(pattern, "*")
	parts := strings.Split(strings.TrimSuffix(pattern, "*"), "/")
	var re strings.Builder
	re.WriteString(`(?s)^`)
	for i, part := range parts {
		if i > 0 {
			re.WriteString("/")
		}
		if glob && i == len(parts)-1 {
			re.WriteString(regexp.QuoteMeta(part)) // the partial segment before * is literal
			continue
		}
		switch {
		case part == "+":
			re.WriteString(`[^/]+`)
		case strings.HasPrefix(part, "{{"):
			var val string
			var ok bool
			switch name := strings.Trim(part, "{}"); {
			case name == "identity.name":
				val, ok = id.Name, true
			case name == "identity.id":
				val, ok = id.ID, true
			default:
				val, ok = id.Meta[strings.TrimPrefix(name, "identity.meta.")]
			}
			if !ok || val == "" || strings.Contains(val, "/") {
				return false
			}
			if !utf8.ValidString(val) {
				return false // regexp cannot quote it; valid paths are ASCII anyway
			}
			re.WriteString(regexp.QuoteMeta(val))
		default:
			re.WriteString(regexp.QuoteMeta(part))
		}
	}
	if glob {
		re.WriteString(`.*`)
	}
	re.WriteString(`$`)
	return regexp.MustCompile(re.String()).MatchString(path)
}

func refWildcards(pattern string) int {
	n := 0
	if strings.HasSuffix(pattern, "*") {
		n++
		pattern = pattern[:strings.LastIndexByte(pattern, '/')+1]
	}
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "+" {
			n++
		}
	}
	return n
}

// refFailures returns the names of the conditions that r fails.
func refFailures(c *Condition, r Request) []string {
	if c == nil {
		return nil
	}
	var out []string
	if len(c.SourceCIDRs) > 0 && !slices.ContainsFunc(c.SourceCIDRs, func(p netip.Prefix) bool {
		return r.Source.IsValid() && p.Contains(r.Source.Unmap())
	}) {
		out = append(out, CondSource)
	}
	loc := time.UTC
	if c.Timezone != "" {
		loc, _ = time.LoadLocation(c.Timezone)
	}
	t := r.Time.In(loc)
	if len(c.Days) > 0 && (r.Time.IsZero() || !slices.Contains(c.Days, t.Weekday())) {
		out = append(out, CondDay)
	}
	if c.Hours != "" {
		var h1, m1, h2, m2 int
		fmt.Sscanf(c.Hours, "%d:%d-%d:%d", &h1, &m1, &h2, &m2)
		start, end := time.Duration(h1)*time.Hour+time.Duration(m1)*time.Minute, time.Duration(h2)*time.Hour+time.Duration(m2)*time.Minute
		now := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
		in := start <= now && now < end || start > end && (now >= start || now < end)
		if r.Time.IsZero() || !in {
			out = append(out, CondHours)
		}
	}
	if c.RequireMFA && !r.MFA {
		out = append(out, CondMFA)
	}
	return out
}

func refEvaluate(rules []refRule, r Request) Decision {
	if !slices.Contains([]string{Read, List, Create, Update, Delete, Destroy, Rotate, Admin}, r.Capability) {
		return Decision{Reason: ReasonUnknownCapability}
	}
	if !refValidPath(r.Path) {
		return Decision{Reason: ReasonInvalidPath}
	}
	var matched []refRule
	for _, rr := range rules {
		if refMatch(rr.Path, r.Path, r.Identity) {
			matched = append(matched, rr)
		}
	}
	slices.SortStableFunc(matched, func(a, b refRule) int {
		if len(a.Path) != len(b.Path) {
			return len(b.Path) - len(a.Path)
		}
		if wa, wb := refWildcards(a.Path), refWildcards(b.Path); wa != wb {
			return wa - wb
		}
		return a.index - b.index
	})
	decide := func(rr refRule, allowed bool, reason string) Decision {
		return Decision{Allowed: allowed, Policy: rr.policy, Rule: rr.Path, Line: rr.Line, Reason: reason}
	}
	grants := func(rr refRule) bool {
		return slices.Contains(rr.Capabilities, r.Capability) || slices.Contains(rr.Capabilities, Admin)
	}
	for _, rr := range matched {
		if slices.Contains(rr.Capabilities, Deny) && len(refFailures(rr.Condition, r)) == 0 {
			return decide(rr, false, ReasonDenied)
		}
	}
	for _, rr := range matched {
		if grants(rr) && len(refFailures(rr.Condition, r)) == 0 {
			return decide(rr, true, ReasonAllowed)
		}
	}
	for _, rr := range matched {
		if f := refFailures(rr.Condition, r); grants(rr) && len(f) == 1 && f[0] == CondMFA {
			d := decide(rr, false, ReasonMFARequired)
			d.MFARequired = true
			return d
		}
	}
	for _, rr := range matched {
		if f := refFailures(rr.Condition, r); grants(rr) && len(f) > 0 {
			return decide(rr, false, "condition not met: "+f[0])
		}
	}
	return Decision{Reason: "no rule grants " + r.Capability}
}

// Generators. Small alphabets make collisions between patterns, paths and
// identities likely.

func genPattern(t *rapid.T) string {
	segs := rapid.SliceOfN(rapid.SampledFrom([]string{
		"a", "b", "ab", "+", "a+b", ".x", "{{identity.name}}", "{{identity.id}}", "{{identity.meta.k}}",
	}), 0, 3).Draw(t, "segs")
	glob := len(segs) == 0 || rapid.Bool().Draw(t, "glob")
	p := strings.Join(segs, "/")
	if glob {
		if p != "" {
			p += "/"
		}
		p += rapid.SampledFrom([]string{"", "", "a", "b", "+", "ab", "."}).Draw(t, "globPrefix") + "*"
	}
	return p
}

func genCondition(t *rapid.T) (*Condition, string) {
	var c Condition
	var hcl []string
	if rapid.Bool().Draw(t, "source") {
		c.SourceCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		hcl = append(hcl, `source_cidrs = ["10.0.0.0/8"]`)
	}
	if rapid.Bool().Draw(t, "days") {
		c.Days = []time.Weekday{time.Wednesday, time.Thursday}
		hcl = append(hcl, `days = ["wed", "thu"]`)
	}
	if rapid.Bool().Draw(t, "hours") {
		c.Hours = rapid.SampledFrom([]string{"08:00-18:00", "22:00-06:00"}).Draw(t, "window")
		hcl = append(hcl, fmt.Sprintf("hours = %q", c.Hours))
	}
	if (c.Days != nil || c.Hours != "") && rapid.Bool().Draw(t, "tz") {
		c.Timezone = "Asia/Tokyo"
		hcl = append(hcl, `timezone = "Asia/Tokyo"`)
	}
	if rapid.Bool().Draw(t, "mfa") {
		c.RequireMFA = true
		hcl = append(hcl, `require_mfa = true`)
	}
	if len(hcl) == 0 {
		return nil, ""
	}
	return &c, "  condition {\n    " + strings.Join(hcl, "\n    ") + "\n  }\n"
}

func genPath(t *rapid.T) string {
	segs := rapid.SliceOfN(rapid.SampledFrom([]string{
		"a", "b", "ab", "abc", "+", "a+b", ".x", "alice", "u-1", "x",
		"", ".", "..", "A", "a%2Fb", "{{identity.name}}", "*",
	}), 0, 4).Draw(t, "pathSegs")
	p := strings.Join(segs, "/")
	if p != "" && rapid.Bool().Draw(t, "trailingSlash") {
		p += "/"
	}
	return p
}

func genIdentity(t *rapid.T) Identity {
	vals := []string{"", "a", "b", "ab", "alice", "a/b", "+"}
	id := Identity{
		ID:   rapid.SampledFrom(append(vals, "u-1")).Draw(t, "id"),
		Name: rapid.SampledFrom(vals).Draw(t, "name"),
	}
	if rapid.Bool().Draw(t, "hasMeta") {
		id.Meta = map[string]string{"k": rapid.SampledFrom(vals).Draw(t, "meta")}
	}
	return id
}

func TestEvaluateMatchesReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var policies []*Policy
		var ref []refRule
		for p := range rapid.IntRange(1, 3).Draw(t, "policies") {
			name := fmt.Sprintf("p%d", p)
			var src strings.Builder
			seen := map[string]bool{}
			line := 1
			var want []Rule
			for range rapid.IntRange(0, 6).Draw(t, "rules") {
				pat := genPattern(t)
				if seen[pat] {
					continue
				}
				seen[pat] = true
				caps := []string{Deny}
				if !rapid.Bool().Draw(t, "deny") {
					caps = rapid.SliceOfNDistinct(rapid.SampledFrom([]string{Read, List, Admin}), 1, 3, rapid.ID[string]).Draw(t, "caps")
				}
				cond, condHCL := genCondition(t)
				fmt.Fprintf(&src, "path %q {\n  capabilities = [\"%s\"]\n%s}\n", pat, strings.Join(caps, `", "`), condHCL)
				r := Rule{Path: pat, Capabilities: caps, Line: line, Condition: cond}
				want = append(want, r)
				ref = append(ref, refRule{policy: name, Rule: r, index: len(ref)})
				line += strings.Count(condHCL, "\n") + 3
			}
			pol, err := Parse(name, []byte(src.String()))
			if err != nil {
				t.Fatalf("Parse(%q) = %v", src.String(), err)
			}
			if !rulesEqual(pol.Rules, want) {
				t.Fatalf("Parse(%q) = %+v, want %+v", src.String(), pol.Rules, want)
			}
			policies = append(policies, pol)
		}
		s, err := Compile(policies...)
		if err != nil {
			t.Fatalf("Compile() = %v", err)
		}
		for range 10 {
			r := Request{
				Path:       genPath(t),
				Capability: rapid.SampledFrom([]string{Read, List, Admin, Create, Deny}).Draw(t, "cap"),
				Identity:   genIdentity(t),
				Source: rapid.SampledFrom([]netip.Addr{
					{}, netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("::ffff:10.0.0.1"),
				}).Draw(t, "source"),
				Time: rapid.SampledFrom([]time.Time{
					{}, wed(), at(wed(), 20, 0), at(wed().AddDate(0, 0, 3), 23, 0), at(wed(), 5, 0),
				}).Draw(t, "time"),
				MFA: rapid.Bool().Draw(t, "mfa"),
			}
			got, want := s.Evaluate(r), refEvaluate(ref, r)
			if got != want {
				t.Fatalf("Evaluate(%+v) = %+v, want %+v", r, got, want)
			}
			var gotRules, wantRules []string
			for _, m := range s.Explain(r) {
				gotRules = append(gotRules, m.Policy+":"+m.Rule)
			}
			if refValidPath(r.Path) {
				for _, rr := range ref {
					if refMatch(rr.Path, r.Path, r.Identity) {
						wantRules = append(wantRules, rr.policy+":"+rr.Path)
					}
				}
			}
			slices.Sort(gotRules)
			slices.Sort(wantRules)
			if !slices.Equal(gotRules, wantRules) {
				t.Fatalf("Explain(%+v) matched %q, want %q", r, gotRules, wantRules)
			}
		}
	})
}

// rulesEqual compares rules by meaning; Condition pointers are followed.
func rulesEqual(a, b []Rule) bool {
	return slices.EqualFunc(a, b, func(x, y Rule) bool {
		if x.Path != y.Path || x.Line != y.Line || !slices.Equal(x.Capabilities, y.Capabilities) {
			return false
		}
		if (x.Condition == nil) != (y.Condition == nil) {
			return false
		}
		if x.Condition == nil {
			return true
		}
		cx, cy := x.Condition, y.Condition
		return slices.Equal(cx.SourceCIDRs, cy.SourceCIDRs) && slices.Equal(cx.Days, cy.Days) &&
			cx.Hours == cy.Hours && cx.Timezone == cy.Timezone && cx.RequireMFA == cy.RequireMFA
	})
}
