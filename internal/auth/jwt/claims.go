package jwt

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// maxClaimPathDepth bounds how deep a claim pointer may descend.
const maxClaimPathDepth = 16

// parseClaimName turns a claim name into the object keys to follow from the
// claims root, by the convention in the package comment: "/a/b" is a JSON
// Pointer, anything else is one literal top-level key.
func parseClaimName(name string) ([]string, error) {
	if name == "" {
		return nil, errors.New("claim name is empty")
	}
	if len(name) > 256 {
		return nil, errors.New("claim name is longer than 256 bytes")
	}
	if name[0] != '/' {
		return []string{name}, nil
	}
	segs := strings.Split(name[1:], "/")
	if len(segs) > maxClaimPathDepth {
		return nil, errors.New("claim pointer is too deep")
	}
	for i, s := range segs {
		if s == "" {
			return nil, errors.New("claim pointer has an empty segment")
		}
		for j := 0; j < len(s); j++ {
			if s[j] == '~' && (j+1 == len(s) || s[j+1] != '0' && s[j+1] != '1') {
				return nil, errors.New(`claim pointer has "~" not followed by 0 or 1`)
			}
		}
		// RFC 6901 section 4: ~1 first, then ~0.
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return segs, nil
}

// lookupClaim follows path from the claims root through nested objects.
func lookupClaim(claims map[string]any, path []string) (any, bool) {
	var cur any = claims
	for _, key := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalarString renders a string, bool or number claim as text: numbers that
// are integers print without exponent or fraction ("100" for 1e2 or 100.0).
// Objects, arrays and null are not scalars.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return strconv.FormatInt(i, 10), true
		}
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return v.String(), true
		}
		if f == math.Trunc(f) && math.Abs(f) < 1e15 {
			return strconv.FormatInt(int64(f), 10), true
		}
		return strconv.FormatFloat(f, 'g', -1, 64), true
	}
	return "", false
}

// matchPattern reports whether s matches pattern: a pattern ending in "*"
// matches every s with the prefix before the "*"; any other pattern matches
// only itself. There is no escape for a literal trailing "*".
func matchPattern(pattern, s string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, prefix)
	}
	return s == pattern
}

// matchClaim reports whether the claim value v satisfies one of patterns: a
// scalar through its scalarString, an array when any scalar element does.
// Objects, null and nested arrays never match.
func matchClaim(v any, patterns []string) bool {
	vals, ok := v.([]any)
	if !ok {
		vals = []any{v}
	}
	for _, e := range vals {
		s, ok := scalarString(e)
		if !ok {
			continue
		}
		for _, p := range patterns {
			if matchPattern(p, s) {
				return true
			}
		}
	}
	return false
}
