package jwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Role defaults and bounds.
const (
	DefaultUserClaim     = "sub"
	DefaultLeewaySeconds = 60
	MaxLeewaySeconds     = 300
	MaxMaxAgeSeconds     = 365 * 24 * 3600
	maxRoleNameLen       = 128
	maxListLen           = 64   // audiences, bound claims, claim mappings
	maxClaimValues       = 256  // allowed values of one bound claim
	maxValueLen          = 1024 // one audience, subject or allowed value
	metaKeyRole          = "role"
)

// Role says which tokens may log in through it and what they get. The
// claim-name convention for BoundClaims, ClaimMappings and UserClaim is in
// the package comment.
type Role struct {
	// Name matches [a-z0-9_-]{1,128}.
	Name string `json:"name"`
	// BoundAudiences must not be empty: the token's aud must contain one.
	BoundAudiences []string `json:"bound_audiences"`
	// BoundSubject, when set, must equal the token's sub exactly.
	BoundSubject string `json:"bound_subject,omitempty"`
	// BoundClaims maps claim names to allowed values. Every named claim
	// must be present and match one of its values; a value ending in "*"
	// matches by prefix. A string, bool or number claim matches by its text
	// ("true", "42"); an array claim matches when any element does; an
	// object or null never matches.
	BoundClaims map[string][]string `json:"bound_claims,omitempty"`
	// ClaimMappings maps claim names to keys of auth.Login.Meta. Scalar
	// claims are copied as text; absent claims, arrays and objects are
	// skipped. The key "role" is reserved.
	ClaimMappings map[string]string `json:"claim_mappings,omitempty"`
	// UserClaim names the claim whose value names the identity
	// "jwt/<role>/<value>"; it must be a non-empty string or a number.
	// Empty means DefaultUserClaim.
	UserClaim string `json:"user_claim"`
	auth.TokenSettings
	// LeewaySeconds is the clock skew allowed on exp, nbf and iat: 0 means
	// DefaultLeewaySeconds, -1 means none, at most MaxLeewaySeconds.
	LeewaySeconds int `json:"leeway,omitempty"`
	// MaxAgeSeconds, when positive, rejects tokens without iat or issued
	// longer ago than this (plus leeway).
	MaxAgeSeconds int `json:"max_age,omitempty"`
}

// leeway returns the allowed clock skew in seconds.
func (r *Role) leeway() int {
	switch r.LeewaySeconds {
	case 0:
		return DefaultLeewaySeconds
	case -1:
		return 0
	}
	return r.LeewaySeconds
}

// ValidateRoleName checks a role name against [a-z0-9_-]{1,128}.
func ValidateRoleName(name string) error {
	if name == "" || len(name) > maxRoleNameLen {
		return invalid("name", fmt.Sprintf("must be 1 to %d characters", maxRoleNameLen))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalid("name", "may hold only a-z, 0-9, _ and -")
		}
	}
	return nil
}

// Validate checks the role's fields and bounds. Errors are *ValidationError.
func (r *Role) Validate() error {
	if err := ValidateRoleName(r.Name); err != nil {
		return err
	}
	if len(r.BoundAudiences) == 0 || len(r.BoundAudiences) > maxListLen {
		return invalid("bound_audiences", fmt.Sprintf("must hold 1 to %d audiences", maxListLen))
	}
	for _, a := range r.BoundAudiences {
		if a == "" || len(a) > maxValueLen {
			return invalid("bound_audiences", fmt.Sprintf("an audience must be 1 to %d bytes", maxValueLen))
		}
	}
	if len(r.BoundSubject) > maxValueLen {
		return invalid("bound_subject", "is too long")
	}
	if len(r.BoundClaims) > maxListLen {
		return invalid("bound_claims", fmt.Sprintf("at most %d claims", maxListLen))
	}
	for name, vals := range r.BoundClaims {
		if _, err := parseClaimName(name); err != nil {
			return invalid("bound_claims", err.Error())
		}
		if len(vals) == 0 || len(vals) > maxClaimValues {
			return invalid("bound_claims", fmt.Sprintf("claim %q must list 1 to %d values", name, maxClaimValues))
		}
		for _, v := range vals {
			if v == "" || len(v) > maxValueLen {
				return invalid("bound_claims", fmt.Sprintf("claim %q: a value must be 1 to %d bytes", name, maxValueLen))
			}
		}
	}
	if len(r.ClaimMappings) > maxListLen {
		return invalid("claim_mappings", fmt.Sprintf("at most %d mappings", maxListLen))
	}
	seen := map[string]bool{}
	for claim, key := range r.ClaimMappings {
		if _, err := parseClaimName(claim); err != nil {
			return invalid("claim_mappings", err.Error())
		}
		if err := validateMetaKey(key); err != nil {
			return invalid("claim_mappings", err.Error())
		}
		if seen[key] {
			return invalid("claim_mappings", fmt.Sprintf("two claims map to %q", key))
		}
		seen[key] = true
	}
	if r.UserClaim != "" {
		if _, err := parseClaimName(r.UserClaim); err != nil {
			return invalid("user_claim", err.Error())
		}
	}
	if err := r.TokenSettings.Validate(); err != nil {
		return invalid("token", err.Error())
	}
	if r.LeewaySeconds < -1 || r.LeewaySeconds > MaxLeewaySeconds {
		return invalid("leeway", fmt.Sprintf("must be -1 (none), 0 (default %d) or up to %d seconds", DefaultLeewaySeconds, MaxLeewaySeconds))
	}
	if r.MaxAgeSeconds < 0 || r.MaxAgeSeconds > MaxMaxAgeSeconds {
		return invalid("max_age", fmt.Sprintf("must be 0 (off) to %d seconds", MaxMaxAgeSeconds))
	}
	return nil
}

func validateMetaKey(key string) error {
	if key == "" || len(key) > 128 {
		return errors.New("a metadata key must be 1 to 128 bytes")
	}
	if key == metaKeyRole {
		return fmt.Errorf("the metadata key %q is reserved", metaKeyRole)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.", c) >= 0) {
			return errors.New("a metadata key may hold only letters, digits, _, - and .")
		}
	}
	return nil
}

func roleKey(name string) string { return rolePrefix + name }

// PutRole validates r, fills in defaults (UserClaim "sub") and creates or
// replaces the role. Errors are *ValidationError or storage errors.
func (s *Service) PutRole(ctx context.Context, r Role) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.UserClaim == "" {
		r.UserClaim = DefaultUserClaim
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx storage.Tx) error { return tx.Put(roleKey(r.Name), raw) })
}

// GetRole returns the named role, or ErrRoleNotFound.
func (s *Service) GetRole(ctx context.Context, name string) (*Role, error) {
	if ValidateRoleName(name) != nil {
		return nil, ErrRoleNotFound
	}
	raw, err := s.store.Get(ctx, roleKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrRoleNotFound
	}
	if err != nil {
		return nil, err
	}
	var r Role
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode jwt role: %w", err)
	}
	return &r, nil
}

// ListRoles returns the names of all roles in byte order.
func (s *Service) ListRoles(ctx context.Context) ([]string, error) {
	names := []string{}
	after := ""
	for {
		keys, err := s.store.List(ctx, rolePrefix, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			names = append(names, strings.TrimPrefix(k, rolePrefix))
		}
		if len(keys) < 1000 {
			sort.Strings(names)
			return names, nil
		}
		after = keys[len(keys)-1]
	}
}

// DeleteRole removes the named role, or returns ErrRoleNotFound.
func (s *Service) DeleteRole(ctx context.Context, name string) error {
	if ValidateRoleName(name) != nil {
		return ErrRoleNotFound
	}
	return s.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(roleKey(name)); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return ErrRoleNotFound
			}
			return err
		}
		return tx.Delete(roleKey(name))
	})
}
