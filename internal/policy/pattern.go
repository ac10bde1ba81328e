package policy

import (
	"fmt"
	"strings"
)

// MaxPatternLen is the longest path pattern a rule may have, in bytes.
const MaxPatternLen = 1024

// segKind says how one pattern segment matches one path segment.
type segKind uint8

const (
	segLiteral  segKind = iota // the bytes of lit exactly
	segPlus                    // any one non-empty segment
	segTemplate                // the identity value named by tmpl
)

// tmplKind names the identity field a template segment reads.
type tmplKind uint8

const (
	tmplName tmplKind = iota + 1
	tmplID
	tmplMeta
)

// tmplVar is a resolved template reference such as {{identity.meta.team}}.
// It is comparable, so equal templates share one trie edge.
type tmplVar struct {
	kind tmplKind
	key  string // metadata key for tmplMeta
}

// resolve returns the identity value the template stands for. ok is false
// when the value is missing, empty or contains "/": such a template never
// matches.
func (v tmplVar) resolve(id *Identity) (val string, ok bool) {
	switch v.kind {
	case tmplName:
		val = id.Name
	case tmplID:
		val = id.ID
	case tmplMeta:
		val = id.Meta[v.key]
	}
	return val, val != "" && strings.IndexByte(val, '/') < 0
}

type segment struct {
	kind segKind
	lit  string
	tmpl tmplVar
}

// pattern is a parsed path pattern: full segments, then, when glob is set,
// a partial segment globPrefix followed by "*" matching any suffix.
type pattern struct {
	segs       []segment
	glob       bool
	globPrefix string
	wildcards  int // number of "+" segments, plus one for a glob
}

// nameChar reports whether c may appear in a secret name. It matches
// secret.ValidateName's alphabet.
func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '/' || c == '_' || c == '+' || c == '=' || c == '.' || c == '@' || c == '-'
}

// parsePattern parses a rule's path pattern. Its errors are short phrases
// meant to follow the pattern in a message.
func parsePattern(p string) (pattern, error) {
	var pat pattern
	switch {
	case p == "":
		return pat, fmt.Errorf("is empty")
	case len(p) > MaxPatternLen:
		return pat, fmt.Errorf("is %d bytes; the limit is %d", len(p), MaxPatternLen)
	}
	body := p
	if strings.HasSuffix(p, "*") {
		pat.glob = true
		pat.wildcards++
		body = p[:len(p)-1]
	}
	if i := strings.IndexByte(body, '*'); i >= 0 {
		return pat, fmt.Errorf("has * at offset %d; * is allowed only as the last character", i)
	}
	if strings.HasPrefix(body, "/") {
		return pat, fmt.Errorf("must not start with /")
	}
	parts := strings.Split(body, "/")
	if pat.glob {
		pat.globPrefix = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
		if strings.ContainsAny(pat.globPrefix, "{}") {
			if err := checkBraces(pat.globPrefix); err != nil {
				return pat, err
			}
			return pat, fmt.Errorf("has a template that is not a whole segment")
		}
		if err := checkLiteral(pat.globPrefix); err != nil {
			return pat, err
		}
	}
	for _, part := range parts {
		seg, err := parseSegment(part)
		if err != nil {
			return pat, err
		}
		if seg.kind == segPlus {
			pat.wildcards++
		}
		pat.segs = append(pat.segs, seg)
	}
	return pat, nil
}

func parseSegment(s string) (segment, error) {
	switch s {
	case "":
		return segment{}, fmt.Errorf("has an empty segment")
	case ".", "..":
		return segment{}, fmt.Errorf("has a %q segment", s)
	case "+":
		return segment{kind: segPlus}, nil
	}
	if !strings.ContainsAny(s, "{}") {
		if err := checkLiteral(s); err != nil {
			return segment{}, err
		}
		return segment{kind: segLiteral, lit: s}, nil
	}
	if err := checkBraces(s); err != nil {
		return segment{}, err
	}
	if !strings.HasPrefix(s, "{{") || !strings.HasSuffix(s, "}}") {
		return segment{}, fmt.Errorf("has a template that is not a whole segment")
	}
	name := s[2 : len(s)-2]
	switch {
	case name == "identity.name":
		return segment{kind: segTemplate, tmpl: tmplVar{kind: tmplName}}, nil
	case name == "identity.id":
		return segment{kind: segTemplate, tmpl: tmplVar{kind: tmplID}}, nil
	case strings.HasPrefix(name, "identity.meta.") && metaKey(name[len("identity.meta."):]):
		return segment{kind: segTemplate, tmpl: tmplVar{kind: tmplMeta, key: name[len("identity.meta."):]}}, nil
	}
	return segment{}, fmt.Errorf("has unknown template variable %q", name)
}

// checkBraces checks that a segment holding braces holds exactly one
// "{{...}}" pair and no other brace.
func checkBraces(s string) error {
	open, closing := strings.Count(s, "{"), strings.Count(s, "}")
	if open != closing {
		return fmt.Errorf("has unbalanced braces")
	}
	i, j := strings.Index(s, "{{"), strings.LastIndex(s, "}}")
	if open != 2 || i < 0 || j < i+2 {
		return fmt.Errorf("has a malformed template; write {{identity.name}}, {{identity.id}} or {{identity.meta.KEY}}")
	}
	return nil
}

// metaKey reports whether k is a valid identity metadata key: [A-Za-z0-9_-]+.
func metaKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkLiteral(s string) error {
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			return fmt.Errorf("has %q at offset %d, outside [A-Za-z0-9/_+=.@-]", s[i], i)
		}
	}
	return nil
}

// validRequestPath reports whether p is a well-formed secret name or list
// prefix: empty, or segments of name characters that are neither empty nor
// "." or "..", with no leading slash and at most one trailing slash. It
// accepts what secret.ValidateName and secret.ValidatePrefix accept, less
// their length limits, and does not allocate.
func validRequestPath(p string) bool {
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			if c != '/' {
				if !nameChar(c) {
					return false
				}
				continue
			}
		}
		// p[start:i] is a segment.
		switch i - start {
		case 0:
			// Empty: only the whole path, or the tail after a trailing slash.
			if i == len(p) && (i == 0 || start > 0) {
				return true
			}
			return false
		case 1:
			if p[start] == '.' {
				return false
			}
		case 2:
			if p[start] == '.' && p[start+1] == '.' {
				return false
			}
		}
		start = i + 1
	}
	return true
}
