package policy

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Limits on policy documents.
const (
	MaxSourceSize = 1 << 20 // bytes of HCL per policy
	MaxRules      = 10000   // path blocks per policy
	MaxNameLen    = 128     // bytes in a policy name
)

// Policy is a parsed policy document. A Policy returned by Parse is valid;
// Compile checks hand-built ones again. Compile copies what it needs, so a
// Policy may be changed or discarded after compiling it.
type Policy struct {
	Name   string
	Rules  []Rule // in source order
	Source []byte // the document as parsed, for display; Parse copies it
}

// Rule is one path block: the capabilities it grants on the paths its
// pattern matches, under an optional condition.
type Rule struct {
	Path         string   // the pattern as written
	Capabilities []string // as written, without duplicates
	Line         int      // line of the path block; 0 for hand-built rules
	Condition    *Condition
}

// ValidateName checks a policy name: 1 to 128 characters from [a-z0-9_-].
// Its error wraps ErrInvalidPolicy.
func ValidateName(name string) error {
	ok := name != "" && len(name) <= MaxNameLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if !ok {
		return &Error{Msg: fmt.Sprintf("policy name %s must be 1 to %d characters from [a-z0-9_-]", quote(name), MaxNameLen)}
	}
	return nil
}

// Parse parses the policy document src, strictly: unknown attributes and
// blocks, wrong value types, unknown capabilities, malformed patterns and
// conditions, duplicate path blocks and documents over the limits are all
// errors. The error returned is an *Error wrapping ErrInvalidPolicy that
// names the policy and the line of the first problem found.
func Parse(name string, src []byte) (*Policy, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	rules, err := parse(name, src)
	if err != nil {
		return nil, err
	}
	return &Policy{Name: name, Rules: rules, Source: bytes.Clone(src)}, nil
}

// Format returns src in canonical HCL formatting. It first checks that src
// is a valid policy and returns Parse's error if it is not; formatting
// changes only spacing, never meaning.
func Format(src []byte) ([]byte, error) {
	if _, err := parse("", src); err != nil {
		return nil, err
	}
	return hclwrite.Format(src), nil
}

// MaxNesting bounds how deeply (, [ and { may nest in a policy. The HCL
// parser recurses once per level, and a few hundred kilobytes of "[" would
// overflow the stack: a fatal error no recover catches, which would take
// the whole server down. Real policies nest three or four levels.
const MaxNesting = 32

// nestingWithin reports whether the brackets of src nest at most max deep,
// and if not, the line where they first go deeper. It counts every
// bracket, in strings and comments too (an expression inside a string
// template nests as well), which can only err on the side of refusing.
func nestingWithin(src []byte, max int) (line int, ok bool) {
	depth, line := 0, 1
	for _, c := range src {
		switch c {
		case '\n':
			line++
		case '(', '[', '{':
			if depth++; depth > max {
				return line, false
			}
		case ')', ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0, true
}

func parse(name string, src []byte) ([]Rule, error) {
	if len(src) > MaxSourceSize {
		return nil, &Error{Policy: name, Msg: fmt.Sprintf("source is %d bytes; the limit is %d", len(src), MaxSourceSize)}
	}
	if line, ok := nestingWithin(src, MaxNesting); !ok {
		return nil, &Error{Policy: name, Line: line, Msg: fmt.Sprintf("brackets and braces nest deeper than %d levels", MaxNesting)}
	}
	p := parser{name: name, zones: zoneCache{}}
	file, diags := hclsyntax.ParseConfig(src, name+".hcl", hcl.InitialPos)
	if err := p.diagError(diags); err != nil {
		return nil, err
	}
	content, diags := file.Body.Content(&hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{{Type: "path", LabelNames: []string{"pattern"}}},
	})
	if err := p.diagError(diags); err != nil {
		return nil, err
	}
	if len(content.Blocks) > MaxRules {
		return nil, p.errorf(content.Blocks[MaxRules].DefRange.Start.Line,
			"policy has %d path blocks; the limit is %d", len(content.Blocks), MaxRules)
	}
	rules := make([]Rule, 0, len(content.Blocks))
	lines := make(map[string]int, len(content.Blocks))
	for _, b := range content.Blocks {
		r, err := p.rule(b)
		if err != nil {
			return nil, err
		}
		if first, dup := lines[r.Path]; dup {
			return nil, p.errorf(r.Line, "path %s is already defined on line %d", quote(r.Path), first)
		}
		lines[r.Path] = r.Line
		rules = append(rules, r)
	}
	return rules, nil
}

// parser holds the state of one parse call.
type parser struct {
	name  string
	zones zoneCache
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return &Error{Policy: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// diagError turns the first error in diags into an *Error.
func (p *parser) diagError(diags hcl.Diagnostics) error {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		line := 0
		if d.Subject != nil {
			line = d.Subject.Start.Line
		}
		msg := d.Summary
		if msg != "" {
			msg = strings.ToLower(msg[:1]) + msg[1:]
		}
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		return p.errorf(line, "%s", msg)
	}
	return nil
}

func (p *parser) rule(b *hcl.Block) (Rule, error) {
	r := Rule{Path: b.Labels[0], Line: b.DefRange.Start.Line}
	if _, err := parsePattern(r.Path); err != nil {
		return r, p.errorf(r.Line, "path %s %v", quote(r.Path), err)
	}
	content, diags := b.Body.Content(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "capabilities", Required: true}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "condition"}},
	})
	if err := p.diagError(diags); err != nil {
		return r, err
	}
	attr := content.Attributes["capabilities"]
	caps, err := stringList(attr)
	if err == nil {
		_, err = checkCapabilities(caps)
	}
	if err != nil {
		return r, p.errorf(attr.Range.Start.Line, "path %s: capabilities %v", quote(r.Path), err)
	}
	r.Capabilities = caps
	switch n := len(content.Blocks); {
	case n > 1:
		return r, p.errorf(content.Blocks[1].DefRange.Start.Line,
			"path %s has more than one condition block", quote(r.Path))
	case n == 1:
		c, err := p.condition(r.Path, content.Blocks[0])
		if err != nil {
			return r, err
		}
		r.Condition = c
	}
	return r, nil
}

func (p *parser) condition(path string, b *hcl.Block) (*Condition, error) {
	content, diags := b.Body.Content(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "source_cidrs"}, {Name: "days"}, {Name: "hours"}, {Name: "timezone"}, {Name: "require_mfa"},
		},
	})
	if err := p.diagError(diags); err != nil {
		return nil, err
	}
	if len(content.Attributes) == 0 {
		return nil, p.errorf(b.DefRange.Start.Line, "path %s: condition block is empty", quote(path))
	}
	var c Condition
	// Attributes in source order, so the first problem is the one reported.
	attrs := make([]*hcl.Attribute, 0, len(content.Attributes))
	for _, a := range content.Attributes {
		attrs = append(attrs, a)
	}
	sortAttributes(attrs)
	for _, a := range attrs {
		if err := p.conditionAttr(&c, a); err != nil {
			return nil, p.errorf(a.Range.Start.Line, "path %s: condition %s %v", quote(path), a.Name, err)
		}
	}
	return &c, nil
}

func (p *parser) conditionAttr(c *Condition, a *hcl.Attribute) error {
	switch a.Name {
	case "source_cidrs":
		list, err := stringList(a)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return fmt.Errorf("is empty; omit it to allow any source")
		}
		for _, s := range list {
			pfx, err := parsePrefix(s)
			if err != nil {
				return err
			}
			c.SourceCIDRs = append(c.SourceCIDRs, pfx)
		}
	case "days":
		list, err := stringList(a)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return fmt.Errorf("is empty; omit it to allow any day")
		}
		seen := make(map[time.Weekday]bool, len(list))
		for _, s := range list {
			d, ok := parseDay(s)
			if !ok {
				return fmt.Errorf("has %s; days are mon, tue, wed, thu, fri, sat and sun", quote(s))
			}
			if seen[d] {
				return fmt.Errorf("lists %s twice", quote(s))
			}
			seen[d] = true
			c.Days = append(c.Days, d)
		}
	case "hours":
		s, err := stringValue(a)
		if err != nil {
			return err
		}
		if _, _, err := parseHours(s); err != nil {
			return err
		}
		c.Hours = s
	case "timezone":
		s, err := stringValue(a)
		if err != nil {
			return err
		}
		if s == "" {
			return fmt.Errorf("is empty; omit it for UTC")
		}
		if _, err := loadZone(s, p.zones); err != nil {
			return err
		}
		c.Timezone = s
	case "require_mfa":
		v, err := value(a, cty.Bool)
		if err != nil {
			return err
		}
		c.RequireMFA = v.True()
	}
	return nil
}

// parsePrefix parses a CIDR prefix, or a bare address meaning the prefix
// holding only that address. A prefix with host bits set is an error:
// "10.0.0.1/8" is more likely a typo than a way to write "10.0.0.0/8".
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("has %s, which is neither a CIDR prefix nor an IP address", quote(s))
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("has %s, which is not a CIDR prefix", quote(s))
	}
	if pfx != pfx.Masked() {
		return netip.Prefix{}, fmt.Errorf("has %s, which has host bits set; did you mean %s?", quote(s), pfx.Masked())
	}
	return pfx, nil
}

// checkCapabilities validates a rule's capability list and returns it as a
// set. Its errors are phrases meant to follow "capabilities ".
func checkCapabilities(caps []string) (capSet, error) {
	if len(caps) == 0 {
		return 0, fmt.Errorf("is empty")
	}
	var set capSet
	for _, c := range caps {
		bit := capBit(c)
		if bit == 0 {
			return 0, fmt.Errorf("has unknown capability %s", quote(c))
		}
		if set&bit != 0 {
			return 0, fmt.Errorf("lists %s twice", quote(c))
		}
		set |= bit
	}
	if set&capDeny != 0 && set != capDeny {
		return 0, fmt.Errorf("combines deny with other capabilities; deny refuses everything on its own")
	}
	return set, nil
}

// value evaluates a constant attribute and checks its type exactly, with
// no conversion: require_mfa = "true" is an error, not true.
func value(a *hcl.Attribute, want cty.Type) (cty.Value, error) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				return cty.NilVal, fmt.Errorf("must be a constant: %s", strings.ToLower(d.Summary))
			}
		}
	}
	switch {
	case v.IsNull():
		return cty.NilVal, fmt.Errorf("must not be null")
	case !v.IsWhollyKnown():
		return cty.NilVal, fmt.Errorf("must be a constant")
	case want == cty.DynamicPseudoType:
		return v, nil
	case !v.Type().Equals(want):
		return cty.NilVal, fmt.Errorf("must be a %s, not a %s", want.FriendlyName(), v.Type().FriendlyName())
	}
	return v, nil
}

func stringValue(a *hcl.Attribute) (string, error) {
	v, err := value(a, cty.String)
	if err != nil {
		return "", err
	}
	return v.AsString(), nil
}

func stringList(a *hcl.Attribute) ([]string, error) {
	v, err := value(a, cty.DynamicPseudoType)
	if err != nil {
		return nil, err
	}
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() {
		return nil, fmt.Errorf("must be a list of strings, not a %s", t.FriendlyName())
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() || !e.Type().Equals(cty.String) {
			return nil, fmt.Errorf("must be a list of strings")
		}
		out = append(out, e.AsString())
	}
	return out, nil
}

func sortAttributes(attrs []*hcl.Attribute) {
	for i := 1; i < len(attrs); i++ {
		for j := i; j > 0 && attrs[j].Range.Start.Byte < attrs[j-1].Range.Start.Byte; j-- {
			attrs[j], attrs[j-1] = attrs[j-1], attrs[j]
		}
	}
}

// quote quotes s for an error message, shortening it past 80 bytes so that
// a 1 MiB label does not become a 1 MiB error.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
