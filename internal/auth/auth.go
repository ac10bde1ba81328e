// Package auth holds what every authentication method produces: a
// Principal, the caller on whose behalf a request runs.
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// ErrUnauthenticated means the request carried no credential, or one that is
// unknown, expired or revoked. It never says which.
var ErrUnauthenticated = errors.New("missing, invalid, expired or revoked token")

// ErrForbidden means the caller is known but lacks the capability.
var ErrForbidden = errors.New("permission denied")

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller in metadata and audit records (e.g. "root").
	Name string
	// Accessor names the token without revealing it.
	Accessor string
	Policies []string
	Meta     map[string]string
	// IdentityID is stable across logins, e.g. "approle:payments".
	IdentityID string
	// Method is the auth method that issued the token.
	Method string
	// MFA is true when the login passed a second factor.
	MFA bool
	// BreakGlass marks an emergency token.
	BreakGlass bool
	// IdentityName and IdentityMeta are what the caller stands for in
	// policy templates ({{identity.name}}, {{identity.meta.KEY}}), set by
	// the auth method, never by the caller: for a child token, its
	// creator's (see token.Entry). Name and Meta are descriptive only.
	IdentityName string
	IdentityMeta map[string]string
	// Family names the line of tokens the caller's token belongs to (see
	// token.Entry.Family): what rate limits count a caller without an
	// identity by.
	Family string
}

// LimitKey names the rate-limit bucket of the principal: its identity, or
// for a token without one (root and the tokens it makes) its token family,
// so that creating children never makes fresh buckets.
func (p *Principal) LimitKey() string {
	switch {
	case p.IdentityID != "":
		return p.IdentityID
	case p.Family != "":
		return p.Family
	}
	return p.Accessor
}

// Root reports whether the principal holds the root policy.
func (p *Principal) Root() bool {
	for _, pol := range p.Policies {
		if pol == "root" {
			return true
		}
	}
	return false
}

// TokenSettings are the token parameters an auth method role or user
// grants. JSON names match the API.
type TokenSettings struct {
	Policies []string `json:"token_policies,omitempty"`
	TTL      Duration `json:"token_ttl,omitempty"`     // 0: the server default (1h)
	MaxTTL   Duration `json:"token_max_ttl,omitempty"` // 0: the server default (24h)
	Period   Duration `json:"token_period,omitempty"`  // >0: a periodic token, renewable forever by period
	NumUses  int      `json:"token_num_uses,omitempty"`
}

// Validate checks the settings' bounds.
func (s TokenSettings) Validate() error {
	switch {
	case s.TTL < 0 || s.MaxTTL < 0 || s.Period < 0:
		return errors.New("token_ttl, token_max_ttl and token_period must not be negative")
	case s.MaxTTL > 0 && s.TTL > s.MaxTTL:
		return errors.New("token_ttl must not exceed token_max_ttl")
	case s.NumUses < 0:
		return errors.New("token_num_uses must not be negative")
	case len(s.Policies) > 64:
		return errors.New("at most 64 token_policies")
	}
	for _, p := range s.Policies {
		if p == "root" {
			return errors.New("an auth method cannot grant the root policy")
		}
	}
	return nil
}

// Login is what an auth method returns for a successful login; the token
// service turns it into a token.
type Login struct {
	Method     string            // "approle", "jwt", "userpass", "cert"
	Name       string            // display name of the identity, e.g. "approle/payments"
	IdentityID string            // stable identity id, e.g. "approle:payments"
	Meta       map[string]string // copied into the token (e.g. JWT claims)
	MFA        bool              // the login passed a second factor
	Token      TokenSettings
}

// InputError reports a bad request field.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// Check is one authorization question: may the principal use Capability on
// Path? Path is a secret name, or a sys/... or auth/... path.
type Check struct {
	Op         string // operation name, for audit and explanations
	Path       string
	Capability string
	Source     netip.Addr // the client's address; zero when unknown
}

// Duration is a time.Duration that reads and writes JSON as Go duration
// text ("90s", "24h"); it also reads a number of seconds.
type Duration time.Duration

// MarshalJSON writes the duration as text, e.g. "1h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads "1h30m" or a number of seconds; negative durations
// are refused. A bad value is reported as a *json.UnmarshalTypeError whose
// Value describes what is wanted, so the decoder names the field.
func (d *Duration) UnmarshalJSON(b []byte) error {
	bad := &json.UnmarshalTypeError{Value: `a duration like "30m" or "24h" (not negative)`, Type: reflect.TypeFor[Duration]()}
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		v, err := time.ParseDuration(s[1 : len(s)-1])
		if err != nil || v < 0 {
			return bad
		}
		*d = Duration(v)
		return nil
	}
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil || secs < 0 || secs > int64(maxDurationSeconds) {
		return bad
	}
	*d = Duration(time.Duration(secs) * time.Second)
	return nil
}

// maxDurationSeconds keeps a number of seconds from overflowing.
const maxDurationSeconds = 100 * 365 * 24 * 3600

// CheckDelegation refuses to hand out credentials (child tokens, access
// keys) with policies the caller lacks (no escalation; root may grant any),
// and refuses emergency tokens any delegation: break-glass access must end
// when its token does.
func CheckDelegation(p *Principal, policies []string) error {
	if p.BreakGlass {
		return fmt.Errorf("%w: a break-glass token cannot create credentials", ErrForbidden)
	}
	if p.Root() {
		return nil
	}
	for _, pol := range policies {
		if !slices.Contains(p.Policies, pol) {
			return fmt.Errorf("%w: cannot grant policy %q that the creating token lacks", ErrForbidden, pol)
		}
	}
	return nil
}
