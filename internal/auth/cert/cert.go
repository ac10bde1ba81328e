// Package cert is the TLS client certificate auth method. A role trusts one
// or more CA certificates and binds the common names and subject
// alternative names it accepts. The TLS handshake proves the client holds
// the certificate's private key; Login then verifies the chain against the
// role's CAs and checks the bindings.
package cert

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

const rolePrefix = "auth/cert/role/"

var (
	// ErrRoleNotFound means no role has that name.
	ErrRoleNotFound = errors.New("cert role not found")
	roleName        = regexp.MustCompile(`^[a-z0-9_-]{1,128}$`)
)

// MaxCABundle bounds a role's CA bundle.
const MaxCABundle = 256 << 10

// Role trusts CAs and binds names. Empty binding lists accept any value;
// patterns may use shell globs (path.Match), e.g. "*.payments.internal".
type Role struct {
	Name               string   `json:"name"`
	Certificate        string   `json:"certificate"` // PEM CA bundle
	AllowedCommonNames []string `json:"allowed_common_names,omitempty"`
	AllowedDNSSANs     []string `json:"allowed_dns_sans,omitempty"`
	AllowedEmailSANs   []string `json:"allowed_email_sans,omitempty"`
	AllowedURISANs     []string `json:"allowed_uri_sans,omitempty"`
	auth.TokenSettings
}

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Service manages cert roles and logins. It is safe for concurrent use.
type Service struct {
	store Store
	now   func() time.Time
}

// New returns a Service. now may be nil for time.Now.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

func parseCAs(bundle string) (*x509.CertPool, int, error) {
	if len(bundle) > MaxCABundle {
		return nil, 0, &auth.InputError{Field: "certificate", Msg: "CA bundle larger than 256 KiB"}
	}
	pool := x509.NewCertPool()
	n := 0
	rest := []byte(bundle)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, 0, &auth.InputError{Field: "certificate", Msg: "holds a certificate that does not parse"}
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, 0, &auth.InputError{Field: "certificate", Msg: "must hold at least one PEM CERTIFICATE"}
	}
	return pool, n, nil
}

func checkGlobs(field string, globs []string) error {
	if len(globs) > 100 {
		return &auth.InputError{Field: field, Msg: "at most 100 patterns"}
	}
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil || g == "" || len(g) > 256 {
			return &auth.InputError{Field: field, Msg: fmt.Sprintf("pattern %q is not a valid glob", g)}
		}
	}
	return nil
}

// PutRole creates or replaces a role.
func (s *Service) PutRole(ctx context.Context, r Role) error {
	if !roleName.MatchString(r.Name) {
		return &auth.InputError{Field: "name", Msg: "must match [a-z0-9_-]{1,128}"}
	}
	if _, _, err := parseCAs(r.Certificate); err != nil {
		return err
	}
	for field, g := range map[string][]string{"allowed_common_names": r.AllowedCommonNames, "allowed_dns_sans": r.AllowedDNSSANs,
		"allowed_email_sans": r.AllowedEmailSANs, "allowed_uri_sans": r.AllowedURISANs} {
		if err := checkGlobs(field, g); err != nil {
			return err
		}
	}
	if err := r.TokenSettings.Validate(); err != nil {
		return &auth.InputError{Field: "token", Msg: err.Error()}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx storage.Tx) error { return tx.Put(rolePrefix+r.Name, raw) })
}

// GetRole returns a role.
func (s *Service) GetRole(ctx context.Context, name string) (*Role, error) {
	if !roleName.MatchString(name) {
		return nil, ErrRoleNotFound
	}
	raw, err := s.store.Get(ctx, rolePrefix+name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrRoleNotFound
	}
	if err != nil {
		return nil, err
	}
	var r Role
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode cert role: %w", err)
	}
	return &r, nil
}

// ListRoles returns role names in order.
func (s *Service) ListRoles(ctx context.Context) ([]string, error) {
	keys, err := s.store.List(ctx, rolePrefix, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, strings.TrimPrefix(k, rolePrefix))
	}
	sort.Strings(out)
	return out, nil
}

// DeleteRole removes a role.
func (s *Service) DeleteRole(ctx context.Context, name string) error {
	if _, err := s.GetRole(ctx, name); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx storage.Tx) error { return tx.Delete(rolePrefix + name) })
}

var errNoMatch = fmt.Errorf("cert: no role accepts this certificate: %w", auth.ErrUnauthenticated)

// Login authenticates the peer chain of a TLS connection (leaf first).
// With role "" every role is tried in name order and the first that
// accepts the certificate wins.
func (s *Service) Login(ctx context.Context, role string, chain []*x509.Certificate) (*auth.Login, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("cert: the TLS connection presented no client certificate: %w", auth.ErrUnauthenticated)
	}
	names := []string{role}
	if role == "" {
		var err error
		if names, err = s.ListRoles(ctx); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		r, err := s.GetRole(ctx, n)
		if errors.Is(err, ErrRoleNotFound) {
			return nil, fmt.Errorf("cert: %w", auth.ErrUnauthenticated)
		}
		if err != nil {
			return nil, err
		}
		if s.accepts(r, chain) {
			leaf := chain[0]
			return &auth.Login{
				Method: "cert", Name: "cert/" + leaf.Subject.CommonName,
				IdentityID: "cert:" + r.Name + ":" + leaf.Subject.CommonName,
				Meta: map[string]string{"role": r.Name, "common_name": leaf.Subject.CommonName,
					"serial": leaf.SerialNumber.Text(16)},
				Token: r.TokenSettings,
			}, nil
		}
	}
	return nil, errNoMatch
}

func (s *Service) accepts(r *Role, chain []*x509.Certificate) bool {
	pool, _, err := parseCAs(r.Certificate)
	if err != nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: s.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return false
	}
	uris := make([]string, len(leaf.URIs))
	for i, u := range leaf.URIs {
		uris[i] = u.String()
	}
	return matchOne(r.AllowedCommonNames, []string{leaf.Subject.CommonName}) &&
		matchOne(r.AllowedDNSSANs, leaf.DNSNames) &&
		matchOne(r.AllowedEmailSANs, leaf.EmailAddresses) &&
		matchOne(r.AllowedURISANs, uris)
}

// matchOne reports whether some value matches some glob; no globs accept anything.
func matchOne(globs, values []string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		for _, v := range values {
			if ok, _ := path.Match(g, v); ok {
				return true
			}
		}
	}
	return false
}
