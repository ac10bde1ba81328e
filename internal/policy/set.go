package policy

import (
	"cmp"
	"fmt"
	"slices"
)

// Set is a compiled group of policies, ready for evaluation. A Set is
// immutable: it is safe for concurrent use by any number of goroutines and
// holds no reference to the Policies it was compiled from. A nil or zero
// Set denies everything.
//
// Rules live in a trie keyed by path segment. Each node has literal edges,
// at most one "+" edge and one edge per distinct template, and lists the
// rules whose pattern ends at the node and the rules whose pattern
// continues with "prefix*" from it. Evaluate follows only the edges that
// the request path takes, so its cost grows with the path's length and
// the number of matching rules, not with the size of the Set.
type Set struct {
	root  *node
	rules []crule
}

// crule is a compiled rule.
type crule struct {
	policy  string
	pattern string
	line    int
	caps    capSet
	cond    *cond // nil: always holds
	rank    int32 // position in specificity order; lower is more specific
	capList []string
}

type node struct {
	lit   map[string]*node
	plus  *node
	tmpls []tmplEdge
	// terms are the rules whose pattern ends exactly at this node.
	terms []int32
	// globAll are the rules whose pattern continues with "*" from here:
	// they match whatever follows.
	globAll []int32
	// globs are the rules whose pattern continues with "prefix*" from
	// here, keyed by the non-empty prefix. globLens lists the distinct key
	// lengths in increasing order, so a lookup costs one map probe per
	// length rather than a scan of every prefix.
	globs    map[string][]int32
	globLens []int
}

type tmplEdge struct {
	v     tmplVar
	child *node
}

// Compile builds a Set from policies, checking each again as Parse would.
// Policy names must be distinct. It returns an *Error wrapping
// ErrInvalidPolicy for the first problem found. Compiling no policies
// gives a Set that denies everything.
func Compile(policies ...*Policy) (*Set, error) {
	s := &Set{root: &node{}}
	zones := zoneCache{}
	names := make(map[string]bool, len(policies))
	wildcards := []int{}
	for _, p := range policies {
		if p == nil {
			return nil, &Error{Msg: "nil policy"}
		}
		if err := ValidateName(p.Name); err != nil {
			return nil, err
		}
		if names[p.Name] {
			return nil, &Error{Policy: p.Name, Msg: "policy is given more than once"}
		}
		names[p.Name] = true
		if len(p.Rules) > MaxRules {
			return nil, &Error{Policy: p.Name, Msg: fmt.Sprintf("policy has %d rules; the limit is %d", len(p.Rules), MaxRules)}
		}
		paths := make(map[string]bool, len(p.Rules))
		for _, r := range p.Rules {
			fail := func(format string, args ...any) error {
				return &Error{Policy: p.Name, Line: r.Line, Msg: fmt.Sprintf("path %s", quote(r.Path)) + fmt.Sprintf(format, args...)}
			}
			if paths[r.Path] {
				return nil, fail(" is defined more than once")
			}
			paths[r.Path] = true
			pat, err := parsePattern(r.Path)
			if err != nil {
				return nil, fail(" %v", err)
			}
			caps, err := checkCapabilities(r.Capabilities)
			if err != nil {
				return nil, fail(": capabilities %v", err)
			}
			var c *cond
			if r.Condition != nil {
				if c, err = compileCondition(r.Condition, zones); err != nil {
					return nil, fail(": condition %v", err)
				}
				if c.trivial() {
					c = nil
				}
			}
			idx := int32(len(s.rules))
			s.rules = append(s.rules, crule{
				policy:  p.Name,
				pattern: r.Path,
				line:    r.Line,
				caps:    caps,
				cond:    c,
				capList: slices.Clone(r.Capabilities),
			})
			wildcards = append(wildcards, pat.wildcards)
			s.root.insert(pat, idx)
		}
	}
	// Rank by specificity: longer patterns first, then fewer wildcards,
	// then compile order, so that every tie is broken the same way.
	order := make([]int32, len(s.rules))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		ra, rb := &s.rules[a], &s.rules[b]
		if c := cmp.Compare(len(rb.pattern), len(ra.pattern)); c != 0 {
			return c
		}
		if c := cmp.Compare(wildcards[a], wildcards[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for rank, i := range order {
		s.rules[i].rank = int32(rank)
	}
	return s, nil
}

// insert adds rule idx under pat, creating nodes as needed.
func (n *node) insert(pat pattern, idx int32) {
	for _, seg := range pat.segs {
		n = n.child(seg)
	}
	switch {
	case !pat.glob:
		n.terms = append(n.terms, idx)
	case pat.globPrefix == "":
		n.globAll = append(n.globAll, idx)
	default:
		if n.globs == nil {
			n.globs = make(map[string][]int32)
		}
		if _, ok := n.globs[pat.globPrefix]; !ok {
			l := len(pat.globPrefix)
			if i, found := slices.BinarySearch(n.globLens, l); !found {
				n.globLens = slices.Insert(n.globLens, i, l)
			}
		}
		n.globs[pat.globPrefix] = append(n.globs[pat.globPrefix], idx)
	}
}

// child returns the node reached from n through seg, creating it if needed.
func (n *node) child(seg segment) *node {
	switch seg.kind {
	case segPlus:
		if n.plus == nil {
			n.plus = &node{}
		}
		return n.plus
	case segTemplate:
		for _, e := range n.tmpls {
			if e.v == seg.tmpl {
				return e.child
			}
		}
		c := &node{}
		n.tmpls = append(n.tmpls, tmplEdge{v: seg.tmpl, child: c})
		return c
	}
	if n.lit == nil {
		n.lit = make(map[string]*node)
	}
	c := n.lit[seg.lit]
	if c == nil {
		c = &node{}
		n.lit[seg.lit] = c
	}
	return c
}

// trivial reports whether c holds for every request.
func (c *cond) trivial() bool {
	return len(c.prefixes) == 0 && c.days == 0 && !c.hours && !c.mfa
}
