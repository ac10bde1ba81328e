package jwt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/internal/auth"
)

// maxUserClaimLen bounds the user claim value that names the identity.
const maxUserClaimLen = 512

// Login verifies token for the named role and returns the login it grants:
// Method "jwt", Name "jwt/<role>/<user claim>", IdentityID
// "jwt:<issuer>:<sub>", Meta holding the role's claim mappings and "role",
// and the role's token settings.
//
// The token must be a compact JWS of at most MaxTokenSize bytes, signed with
// a configured algorithm by a key of the configured source, and carry the
// trusted iss, an exp, a sub, and an aud holding one of the role's
// audiences; exp, nbf and iat are checked against the injected clock with the
// role's leeway, then bound_subject and bound_claims.
//
// A rejected token yields an error matching auth.ErrUnauthenticated and a
// reason sentinel of this package (ErrRoleNotFound for an unknown role,
// ErrNotConfigured before Configure). Storage errors and ctx's error are
// returned as they are. Login may fetch remote keys using ctx.
func (s *Service) Login(ctx context.Context, roleName, token string) (*auth.Login, error) {
	if len(token) > MaxTokenSize {
		return nil, fail(ErrTokenTooLarge)
	}
	if token == "" {
		return nil, fail(ErrMalformed)
	}
	role, err := s.GetRole(ctx, roleName)
	if errors.Is(err, ErrRoleNotFound) {
		return nil, fail(ErrRoleNotFound)
	}
	if err != nil {
		return nil, err
	}
	v, err := s.verifierFor(ctx)
	if errors.Is(err, ErrNotConfigured) {
		return nil, fail(ErrNotConfigured)
	}
	if err != nil {
		return nil, err
	}
	payload, err := v.verify(ctx, token)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, err
		}
		return nil, fail(err)
	}
	// Everything below reads claims whose signature was verified.
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, fail(ErrMalformed)
	}
	reg, err := parseRegistered(claims)
	if err != nil {
		return nil, fail(ErrMalformed)
	}
	if err := s.check(role, v.issuer, reg, claims); err != nil {
		return nil, fail(err)
	}
	user, err := userName(role, claims)
	if err != nil {
		return nil, fail(err)
	}
	return &auth.Login{
		Method:     "jwt",
		Name:       "jwt/" + role.Name + "/" + user,
		IdentityID: "jwt:" + v.issuer + ":" + reg.sub,
		Meta:       mapClaims(role, claims),
		Token:      role.TokenSettings,
	}, nil
}

// check applies the issuer, lifetime, audience, subject and bound claim
// rules of role and returns the first reason that fails.
func (s *Service) check(role *Role, issuer string, reg registered, claims map[string]any) error {
	if reg.iss != issuer {
		return ErrIssuer
	}
	now := s.now()
	leeway := time.Duration(role.leeway()) * time.Second
	switch {
	case reg.exp == nil:
		return ErrNoExpiry
	case !now.Before(reg.exp.Add(leeway)):
		return ErrTokenExpired
	case reg.nbf != nil && now.Add(leeway).Before(*reg.nbf):
		return ErrNotYetValid
	case reg.iat != nil && now.Add(leeway).Before(*reg.iat):
		return ErrIssuedInFuture
	}
	if role.MaxAgeSeconds > 0 {
		if reg.iat == nil || now.Sub(*reg.iat) > time.Duration(role.MaxAgeSeconds)*time.Second+leeway {
			return ErrTooOld
		}
	}
	if !slices.ContainsFunc(reg.aud, func(a string) bool { return slices.Contains(role.BoundAudiences, a) }) {
		return ErrAudience
	}
	if reg.sub == "" {
		return ErrNoSubject
	}
	if role.BoundSubject != "" && reg.sub != role.BoundSubject {
		return ErrSubject
	}
	names := make([]string, 0, len(role.BoundClaims))
	for name := range role.BoundClaims {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path, err := parseClaimName(name)
		if err != nil {
			return fmt.Errorf("%w: %q", ErrClaimMismatch, name)
		}
		val, ok := lookupClaim(claims, path)
		if !ok {
			return fmt.Errorf("%w: %q", ErrClaimMissing, name)
		}
		if !matchClaim(val, role.BoundClaims[name]) {
			return fmt.Errorf("%w: %q", ErrClaimMismatch, name)
		}
	}
	return nil
}

// userName returns the role's user claim as text fit for an identity name.
func userName(role *Role, claims map[string]any) (string, error) {
	name := role.UserClaim
	if name == "" {
		name = DefaultUserClaim
	}
	path, err := parseClaimName(name)
	if err != nil {
		return "", ErrUserClaimMissing
	}
	v, ok := lookupClaim(claims, path)
	if !ok {
		return "", ErrUserClaimMissing
	}
	if _, isBool := v.(bool); isBool {
		return "", ErrUserClaimMissing
	}
	s, ok := scalarString(v)
	if !ok || s == "" || len(s) > maxUserClaimLen || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return "", ErrUserClaimMissing
	}
	return s, nil
}

// mapClaims returns the login metadata: the role name and each mapped claim
// that is present and scalar.
func mapClaims(role *Role, claims map[string]any) map[string]string {
	meta := map[string]string{metaKeyRole: role.Name}
	for claim, key := range role.ClaimMappings {
		path, err := parseClaimName(claim)
		if err != nil {
			continue
		}
		if v, ok := lookupClaim(claims, path); ok {
			if s, ok := scalarString(v); ok {
				meta[key] = s
			}
		}
	}
	return meta
}

// decodeClaims decodes a JWT payload that must be exactly one JSON object.
// Numbers stay json.Number so that they keep their precision.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("claims are not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the claims object")
	}
	return claims, nil
}

// registered holds the registered claims of RFC 7519 section 4.1 that Login
// checks.
type registered struct {
	iss, sub      string
	aud           []string
	exp, nbf, iat *time.Time
}

// parseRegistered reads the registered claims, rejecting wrong types.
func parseRegistered(claims map[string]any) (registered, error) {
	var r registered
	var err error
	if r.iss, err = optString(claims, "iss"); err != nil {
		return r, err
	}
	if r.sub, err = optString(claims, "sub"); err != nil {
		return r, err
	}
	switch aud := claims["aud"].(type) {
	case nil:
	case string:
		r.aud = []string{aud}
	case []any:
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return r, errors.New("aud holds a non-string")
			}
			r.aud = append(r.aud, s)
		}
	default:
		return r, errors.New("aud is neither a string nor an array")
	}
	for name, dst := range map[string]**time.Time{"exp": &r.exp, "nbf": &r.nbf, "iat": &r.iat} {
		v, ok := claims[name]
		if !ok {
			continue
		}
		n, ok := v.(json.Number)
		if !ok {
			return r, fmt.Errorf("%s is not a number", name)
		}
		t, err := numericDate(n)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		*dst = &t
	}
	return r, nil
}

func optString(claims map[string]any, name string) (string, error) {
	v, ok := claims[name]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused rather
// than risk overflow.
const maxNumericDate = 253402300799

// numericDate converts seconds since the epoch, possibly fractional.
func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, errors.New("not a date between 1970 and 9999")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}
