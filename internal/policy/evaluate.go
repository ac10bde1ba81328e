package policy

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Identity is the authenticated caller, as far as templates are concerned.
type Identity struct {
	ID   string
	Name string
	Meta map[string]string
}

// Request is one access to decide.
type Request struct {
	// Path is a secret name or a list prefix. It is matched byte for byte;
	// a path that is not a well-formed name or prefix matches nothing.
	Path string
	// Capability is the capability the access needs: any capability
	// except deny.
	Capability string
	// Identity resolves templates in patterns.
	Identity Identity
	// Source is the caller's address. The zero value means unknown, and
	// a source_cidrs condition then fails. IPv4-mapped IPv6 addresses are
	// compared as IPv4.
	Source netip.Addr
	// Time is when the access happens. The zero value means unknown, and
	// a days or hours condition then fails.
	Time time.Time
	// MFA reports whether the caller authenticated with MFA.
	MFA bool
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Policy, Rule and Line identify the rule that decided: the deny that
	// refused, the grant that allowed, or the grant whose condition
	// failed. Policy is "" when no rule decided.
	Policy string `json:"policy"`
	Rule   string `json:"rule"` // that rule's path pattern
	Line   int    `json:"line"`
	// Reason is a short constant explanation: one of the Reason
	// constants, "no rule grants CAP", or "condition not met: COND" with
	// COND one of the Cond constants.
	Reason string `json:"reason"`
	// MFARequired reports that a rule would allow if the caller had
	// authenticated with MFA: its only failing condition is require_mfa.
	MFARequired bool `json:"mfa_required"`
}

// Reasons given in Decision.Reason.
const (
	ReasonAllowed           = "allowed by rule"
	ReasonDenied            = "denied by explicit deny"
	ReasonMFARequired       = "mfa required"
	ReasonUnknownCapability = "unknown capability"
	ReasonInvalidPath       = "invalid request path"
)

// Match is one rule whose pattern matches a request path, as reported by
// Explain.
type Match struct {
	Policy       string   `json:"policy"`
	Rule         string   `json:"rule"` // path pattern
	Line         int      `json:"line"`
	Capabilities []string `json:"capabilities"`
	// Deny reports an explicit deny rule.
	Deny bool `json:"deny"`
	// Grants reports that the rule grants the requested capability,
	// directly or through admin.
	Grants bool `json:"grants"`
	// ConditionMet reports that the rule's condition holds, or that it
	// has none.
	ConditionMet bool `json:"condition_met"`
	// FailedConditions lists the conditions that do not hold, as Cond
	// constants, in the order source address, day, hours, mfa.
	FailedConditions []string `json:"failed_conditions"`
}

// verdict accumulates what the rules matching one request say. Rule
// fields hold indexes into Set.rules, -1 for none.
type verdict struct {
	want    capSet
	deny    int32    // most specific deny whose condition holds
	allow   int32    // most specific grant whose condition holds
	failed  int32    // most specific grant whose condition fails
	why     condFail // the conditions failed's rule fails
	mfaOnly int32    // most specific grant failing only require_mfa
	// explain, when set, makes consider record every matching rule in
	// hits; Evaluate leaves it unset so as not to allocate.
	explain bool
	hits    []hit
}

type hit struct {
	rule int32
	fail condFail
}

// Evaluate decides r against every policy in s: an explicit deny whose
// condition holds refuses; otherwise a grant of r.Capability or admin
// whose condition holds allows; otherwise r is denied, and Reason says
// which condition, if any, blocked a grant. Evaluate never normalizes
// r.Path and denies a path that is not a well-formed secret name or list
// prefix. It does not allocate and is safe for concurrent use.
func (s *Set) Evaluate(r Request) Decision {
	want := capBit(r.Capability)
	if want == 0 || want == capDeny {
		return Decision{Reason: ReasonUnknownCapability}
	}
	if !validRequestPath(r.Path) {
		return Decision{Reason: ReasonInvalidPath}
	}
	v := verdict{want: want, deny: -1, allow: -1, failed: -1, mfaOnly: -1}
	if s != nil && s.root != nil {
		s.walk(s.root, r.Path, &r, &v)
	}
	switch {
	case v.deny >= 0:
		return s.decision(v.deny, false, ReasonDenied)
	case v.allow >= 0:
		return s.decision(v.allow, true, ReasonAllowed)
	case v.mfaOnly >= 0:
		d := s.decision(v.mfaOnly, false, ReasonMFARequired)
		d.MFARequired = true
		return d
	case v.failed >= 0:
		return s.decision(v.failed, false, v.why.reason())
	}
	return Decision{Reason: noGrantReason(want)}
}

func (s *Set) decision(rule int32, allowed bool, reason string) Decision {
	cr := &s.rules[rule]
	return Decision{Allowed: allowed, Policy: cr.policy, Rule: cr.pattern, Line: cr.line, Reason: reason}
}

// Explain returns every rule whose pattern matches r.Path, most specific
// first, with whether its condition holds and whether it grants
// r.Capability. It is for "coffer policy explain" and audit tooling, not
// for deciding: use Evaluate. An invalid path matches no rule.
func (s *Set) Explain(r Request) []Match {
	if s == nil || s.root == nil || !validRequestPath(r.Path) {
		return nil
	}
	want := capBit(r.Capability)
	if want == capDeny {
		want = 0
	}
	v := verdict{want: want, deny: -1, allow: -1, failed: -1, mfaOnly: -1, explain: true}
	s.walk(s.root, r.Path, &r, &v)
	slices.SortFunc(v.hits, func(a, b hit) int { return int(s.rules[a.rule].rank - s.rules[b.rule].rank) })
	out := make([]Match, 0, len(v.hits))
	for _, h := range v.hits {
		cr := &s.rules[h.rule]
		out = append(out, Match{
			Policy:           cr.policy,
			Rule:             cr.pattern,
			Line:             cr.line,
			Capabilities:     slices.Clone(cr.capList),
			Deny:             cr.caps == capDeny,
			Grants:           want != 0 && cr.caps&(want|capAdmin) != 0,
			ConditionMet:     h.fail == 0,
			FailedConditions: h.fail.names(),
		})
	}
	return out
}

// walk visits the rules under n that match path, which starts at a segment
// boundary: it is the whole request path at the root, and what follows
// the next "/" below.
func (s *Set) walk(n *node, path string, r *Request, v *verdict) {
	for _, i := range n.globAll {
		s.consider(i, r, v)
	}
	for _, l := range n.globLens {
		if l > len(path) {
			break
		}
		for _, i := range n.globs[path[:l]] {
			s.consider(i, r, v)
		}
	}
	seg, rest, more := strings.Cut(path, "/")
	if len(n.lit) > 0 {
		if c := n.lit[seg]; c != nil {
			s.step(c, rest, more, r, v)
		}
	}
	if seg == "" {
		return // only literal edges could match, and no literal is empty
	}
	if n.plus != nil {
		s.step(n.plus, rest, more, r, v)
	}
	for k := range n.tmpls {
		e := &n.tmpls[k]
		if val, ok := e.v.resolve(&r.Identity); ok && val == seg {
			s.step(e.child, rest, more, r, v)
		}
	}
}

// step continues the walk into c after one segment: into c's terminal
// rules when the segment was the last, else down the rest of the path.
func (s *Set) step(c *node, rest string, more bool, r *Request, v *verdict) {
	if !more {
		for _, i := range c.terms {
			s.consider(i, r, v)
		}
		return
	}
	s.walk(c, rest, r, v)
}

// consider folds one matching rule into v.
func (s *Set) consider(i int32, r *Request, v *verdict) {
	cr := &s.rules[i]
	deny := cr.caps == capDeny
	grants := cr.caps&(v.want|capAdmin) != 0
	if !deny && !grants && !v.explain {
		return
	}
	var fail condFail
	if cr.cond != nil {
		fail = cr.cond.check(r)
	}
	if v.explain {
		v.hits = append(v.hits, hit{rule: i, fail: fail})
	}
	switch {
	case fail == 0 && deny:
		v.deny = s.better(i, v.deny)
	case fail == 0 && grants:
		v.allow = s.better(i, v.allow)
	case grants && fail == failMFA:
		v.mfaOnly = s.better(i, v.mfaOnly)
	case grants:
		if b := s.better(i, v.failed); b == i {
			v.failed, v.why = i, fail
		}
	}
}

// better returns whichever of rules a and b is more specific; b may be -1.
func (s *Set) better(a, b int32) int32 {
	if b < 0 || s.rules[a].rank < s.rules[b].rank {
		return a
	}
	return b
}
