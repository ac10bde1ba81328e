package jwt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/auth"
)

// FuzzMatchClaim checks the claim matcher against untrusted claim values and
// operator patterns: it never panics, a pattern always matches itself as a
// string claim, a trailing "*" matches every extension, and a claim that
// matches as a scalar also matches inside a list.
func FuzzMatchClaim(f *testing.F) {
	f.Add(`"acme/payments"`, "acme/payments")
	f.Add(`"refs/tags/v1"`, "refs/tags/v*")
	f.Add(`["devs","deployers"]`, "deployers")
	f.Add(`true`, "true")
	f.Add(`1e2`, "100")
	f.Add(`1e400`, "*")                    // overflows float64
	f.Add(`-0`, "0")                       // negative zero
	f.Add(`12345678901234567890`, "1234*") // beyond int64
	f.Add(`{"a":["b"]}`, "*")              // object: never matches
	f.Add(`null`, "null")                  // null: never matches
	f.Add(`"\u0000*"`, "\x00*")            // NUL in both
	f.Add(`"é"`, "\xc3*")                  // a glob splitting a UTF-8 sequence
	f.Fuzz(func(t *testing.T, claimJSON, pattern string) {
		dec := json.NewDecoder(strings.NewReader(claimJSON))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		got := matchClaim(v, []string{pattern})
		if s, ok := scalarString(v); ok {
			if inList := matchClaim([]any{"unrelated-value", v}, []string{pattern}); got && !inList {
				t.Errorf("matchClaim(%s, %q) = true, but false inside a list", claimJSON, pattern)
			}
			if !matchPattern(s+"*", s+pattern) {
				t.Errorf("matchPattern(%q, %q) = false, want true", s+"*", s+pattern)
			}
		}
		if !strings.HasSuffix(pattern, "*") && !matchClaim(pattern, []string{pattern}) {
			t.Errorf("matchClaim(%q, %q) = false, want true", pattern, pattern)
		}
		if _, isObj := v.(map[string]any); isObj && got {
			t.Errorf("matchClaim(object %s, %q) = true, want false", claimJSON, pattern)
		}
	})
}

// FuzzParseClaimName checks that any accepted pointer round-trips through
// RFC 6901 escaping.
func FuzzParseClaimName(f *testing.F) {
	for _, s := range []string{"sub", "/kubernetes.io/namespace", "/a~1b~0c", "/", "/a//b", "/~", "/~2", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		segs, err := parseClaimName(name)
		if err != nil {
			return
		}
		if name[0] != '/' {
			if len(segs) != 1 || segs[0] != name {
				t.Fatalf("parseClaimName(%q) = %q, want the literal name", name, segs)
			}
			return
		}
		var b strings.Builder
		for _, s := range segs {
			b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1"))
		}
		if b.String() != name {
			t.Fatalf("parseClaimName(%q) = %q, re-escaped to %q", name, segs, b.String())
		}
	})
}

// FuzzLogin feeds arbitrary tokens to Login with a static key: it must never
// panic, every failure is a login failure without the token in its message,
// and any success is the one identity the seed token holds.
func FuzzLogin(f *testing.F) {
	key := newECKey(f, "k1")
	clk := newTestClock(testEpoch())
	s := newTestService(f, clk, nil)
	const issuer = "https://issuer.example"
	mustConfigure(f, s, Config{JWKS: jwksJSON(f, key), BoundIssuer: issuer})
	mustPutRole(f, s, kubernetesRole())

	valid := sign(f, key, k8sClaims(issuer, clk.Now()))
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(parts[0] + "." + parts[1] + ".")                              // signature stripped
	f.Add(parts[0] + "." + parts[1])                                    // two segments
	f.Add(valid + ".x")                                                 // four segments
	f.Add("eyJhbGciOiJub25lIn0." + parts[1] + ".")                      // alg none
	f.Add("eyJhbGciOiJFUzI1NiIsImNyaXQiOlsiZXhwIl19." + parts[1] + ".") // unknown crit header
	f.Add("..")
	f.Add("")
	f.Add(strings.Repeat("A", MaxTokenSize+1))
	f.Fuzz(func(t *testing.T, token string) {
		login, err := s.Login(t.Context(), "payments-api", token)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("Login = %v, want a login failure", err)
			}
			if len(token) > 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("Login error %q holds the token", err)
			}
			return
		}
		if login.Name != "jwt/payments-api/api" {
			t.Fatalf("Login = %+v from a token that is not the seed", login)
		}
	})
}
