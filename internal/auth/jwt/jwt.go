// Package jwt is the JWT/OIDC auth method: a workload presents a JSON Web
// Token signed by an issuer the operator trusts (a Kubernetes service-account
// token, a GitHub Actions or GitLab CI OIDC token, a cloud workload identity
// token) together with the name of a role, and receives an auth.Login when the
// token's signature, issuer, lifetime, audience, subject and bound claims
// satisfy that role.
//
// One key source is configured per mount: OIDC discovery, a JWKS URL, a static
// JWKS document or static PEM public keys. Remote key sets are fetched over
// HTTP on first use, cached, and refetched when a token names a key ID that is
// not cached (key rotation), at most once per refetch interval.
//
// # Claim names
//
// Wherever a role names a claim (bound_claims, claim_mappings, user_claim), a
// name that starts with "/" is a JSON Pointer (RFC 6901) into the claims
// object: "/kubernetes.io/namespace" is the "namespace" member of the
// "kubernetes.io" object. Within a pointer, "~1" stands for a literal "/" and
// "~0" for "~". Any other name is one top-level claim taken literally, so
// "kubernetes.io" is the whole top-level "kubernetes.io" claim and
// "job_workflow_ref" is the top-level claim of that name. Pointers descend
// through objects only, never into arrays.
//
// # Errors
//
// Every failed Login returns an error that matches auth.ErrUnauthenticated and
// one of this package's reason sentinels (ErrTokenExpired, ErrAudience, ...)
// under errors.Is. Error strings are short and safe to return to the caller
// and to log: they never contain the token, a key, or a claim value.
package jwt

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const (
	configKey  = "auth/jwt/config"
	rolePrefix = "auth/jwt/role/" // + role name -> Role
)

// MaxTokenSize bounds the length in bytes of a JWT that Login will parse.
const MaxTokenSize = 16 << 10

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Options are the Service's dependencies. Zero values mean defaults.
type Options struct {
	// Now is the clock used for token lifetimes and key refetch intervals;
	// nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches discovery documents and JWKS; its Timeout and
	// Transport bound every fetch. nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives key-fetch failures (URL and error, never a token);
	// nil discards them.
	Logger *slog.Logger
}

// Service is the JWT auth method. It is safe for concurrent use.
type Service struct {
	store  Store
	now    func() time.Time
	client *http.Client
	log    *slog.Logger

	mu        sync.Mutex // guards cached and cachedRaw
	cached    *verifier  // built from cachedRaw; nil until the first login
	cachedRaw []byte     // the stored config that cached was built from
}

// New returns a Service over store.
func New(store Store, opts Options) *Service {
	s := &Service{store: store, now: opts.Now, client: opts.HTTPClient, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Errors other than login failures.
var (
	// ErrNotConfigured means Configure has not been called. Login wraps it
	// as a login failure.
	ErrNotConfigured = errors.New("jwt: auth method is not configured")
	// ErrRoleNotFound means no role has that name. Login wraps it as a login
	// failure.
	ErrRoleNotFound = errors.New("jwt: role not found")
)

// Reasons a Login fails. Each is returned wrapped so that it also matches
// auth.ErrUnauthenticated.
var (
	ErrTokenTooLarge    = errors.New("jwt: token too large")
	ErrMalformed        = errors.New("jwt: malformed token")
	ErrAlgorithm        = errors.New("jwt: signing algorithm not allowed")
	ErrSignature        = errors.New("jwt: signature not verified by any trusted key")
	ErrKeysUnavailable  = errors.New("jwt: issuer keys unavailable")
	ErrIssuer           = errors.New("jwt: issuer not trusted")
	ErrTokenExpired     = errors.New("jwt: token expired")
	ErrNoExpiry         = errors.New("jwt: token has no expiry")
	ErrNotYetValid      = errors.New("jwt: token not yet valid")
	ErrIssuedInFuture   = errors.New("jwt: token issued in the future")
	ErrTooOld           = errors.New("jwt: token older than the role's max_age")
	ErrAudience         = errors.New("jwt: audience not bound to role")
	ErrNoSubject        = errors.New("jwt: token has no subject")
	ErrSubject          = errors.New("jwt: subject not bound to role")
	ErrClaimMissing     = errors.New("jwt: bound claim missing")
	ErrClaimMismatch    = errors.New("jwt: bound claim not satisfied")
	ErrUserClaimMissing = errors.New("jwt: user claim missing or not a string or number")
)

// loginError is a failed login: it matches both its reason and
// auth.ErrUnauthenticated, and prints only the reason.
type loginError struct{ reason error }

func (e *loginError) Error() string   { return e.reason.Error() }
func (e *loginError) Unwrap() []error { return []error{e.reason, auth.ErrUnauthenticated} }

// fail turns reason into a login failure.
func fail(reason error) error { return &loginError{reason: reason} }

// ValidationError describes an invalid Config or Role field.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

func invalid(field, msg string) error { return &ValidationError{Field: field, Msg: msg} }
