package jwt

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/coffer-dev/coffer/internal/storage"
)

// Bounds on a Config.
const (
	maxPublicKeys = 64
	maxJWKSSize   = 1 << 20
	maxURLLen     = 2048
	minRSABits    = 2048
)

// DefaultAlgs returns the signing algorithms accepted when
// Config.SupportedAlgs is empty: every asymmetric JWS algorithm. HMAC
// algorithms and "none" are never accepted.
func DefaultAlgs() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// Config says where the keys that sign trusted tokens come from. Exactly one
// of OIDCDiscoveryURL, JWKSURL, JWKS and PublicKeys is set.
type Config struct {
	// OIDCDiscoveryURL is the issuer URL. Its discovery document is
	// fetched from <issuer>/.well-known/openid-configuration, must name the
	// same issuer, and its jwks_uri supplies the keys. Tokens must carry
	// this issuer in iss.
	OIDCDiscoveryURL string `json:"oidc_discovery_url,omitempty"`
	// JWKSURL is fetched for a JSON Web Key Set.
	JWKSURL string `json:"jwks_url,omitempty"`
	// JWKS is a static JSON Web Key Set document holding public keys only.
	JWKS string `json:"jwks,omitempty"`
	// PublicKeys are PEM-encoded public keys ("PUBLIC KEY", "RSA PUBLIC
	// KEY") or certificates ("CERTIFICATE"): RSA of at least 2048 bits,
	// ECDSA or Ed25519, one per element.
	PublicKeys []string `json:"public_keys,omitempty"`
	// BoundIssuer is the iss every token must carry. It is required with
	// JWKSURL, JWKS and PublicKeys; with OIDCDiscoveryURL it must be empty
	// or equal to the discovery URL.
	BoundIssuer string `json:"bound_issuer,omitempty"`
	// SupportedAlgs restricts the accepted signing algorithms to a subset
	// of DefaultAlgs(); empty means all of them.
	SupportedAlgs []string `json:"supported_algs,omitempty"`
}

// Validate checks the config, including that static keys parse. It does not
// contact any URL. Errors are *ValidationError.
func (c *Config) Validate() error {
	_, err := c.build()
	return err
}

// issuer returns the iss that tokens must carry.
func (c *Config) issuer() string {
	if c.OIDCDiscoveryURL != "" {
		return c.OIDCDiscoveryURL
	}
	return c.BoundIssuer
}

// build validates c and returns the static part of a verifier: static keys
// are parsed, remote key sets are created but not fetched.
func (c *Config) build() (*verifier, error) {
	sources := 0
	for _, set := range []bool{c.OIDCDiscoveryURL != "", c.JWKSURL != "", c.JWKS != "", len(c.PublicKeys) > 0} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, invalid("config", "set exactly one of oidc_discovery_url, jwks_url, jwks and public_keys")
	}
	algs, err := parseAlgs(c.SupportedAlgs)
	if err != nil {
		return nil, err
	}
	v := &verifier{algs: algs, issuer: c.issuer()}
	if c.OIDCDiscoveryURL != "" {
		if err := checkURL("oidc_discovery_url", c.OIDCDiscoveryURL); err != nil {
			return nil, err
		}
		if c.BoundIssuer != "" && c.BoundIssuer != c.OIDCDiscoveryURL {
			return nil, invalid("bound_issuer", "must be empty or equal oidc_discovery_url, which is the issuer")
		}
		return v, nil
	}
	if c.BoundIssuer == "" {
		return nil, invalid("bound_issuer", "is required with jwks_url, jwks and public_keys")
	}
	if len(c.BoundIssuer) > maxURLLen {
		return nil, invalid("bound_issuer", "is too long")
	}
	switch {
	case c.JWKSURL != "":
		if err := checkURL("jwks_url", c.JWKSURL); err != nil {
			return nil, err
		}
	case c.JWKS != "":
		if len(c.JWKS) > maxJWKSSize {
			return nil, invalid("jwks", "is larger than 1 MiB")
		}
		keys, err := parseJWKS([]byte(c.JWKS), true)
		if err != nil {
			return nil, invalid("jwks", err.Error())
		}
		v.static = keys
	default:
		if len(c.PublicKeys) > maxPublicKeys {
			return nil, invalid("public_keys", fmt.Sprintf("at most %d keys", maxPublicKeys))
		}
		for i, p := range c.PublicKeys {
			pub, err := parsePEMKey(p)
			if err != nil {
				return nil, invalid(fmt.Sprintf("public_keys[%d]", i), err.Error())
			}
			v.static = append(v.static, jose.JSONWebKey{Key: pub})
		}
	}
	return v, nil
}

// parseAlgs checks names against DefaultAlgs; none means all of them.
func parseAlgs(names []string) ([]jose.SignatureAlgorithm, error) {
	all := DefaultAlgs()
	if len(names) == 0 {
		names = all
	}
	var out []jose.SignatureAlgorithm
	for _, n := range names {
		if !slices.Contains(all, n) {
			return nil, invalid("supported_algs", fmt.Sprintf("%q is not one of %s", n, strings.Join(all, ", ")))
		}
		if !slices.Contains(out, jose.SignatureAlgorithm(n)) {
			out = append(out, jose.SignatureAlgorithm(n))
		}
	}
	return out, nil
}

// checkURL requires an absolute https URL, or http to a loopback host (a
// local development issuer), without credentials or fragment.
func checkURL(field, raw string) error {
	if len(raw) > maxURLLen {
		return invalid(field, "is too long")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return invalid(field, "must be an absolute URL")
	}
	switch {
	case u.User != nil:
		return invalid(field, "must not contain credentials")
	case u.Fragment != "":
		return invalid(field, "must not have a fragment")
	case u.RawQuery != "" && field == "oidc_discovery_url":
		return invalid(field, "an issuer must not have a query")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return invalid(field, "must use https (http only for a loopback host)")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// rawJWK is the part of a JWK looked at before go-jose parses it, so that
// private or symmetric key material is never parsed.
type rawJWK struct {
	Kty string          `json:"kty"`
	Use string          `json:"use"`
	Alg string          `json:"alg"`
	D   json.RawMessage `json:"d"`
	K   json.RawMessage `json:"k"`
	P   json.RawMessage `json:"p"`
}

// parseJWKS parses a JWK Set into its public signing keys. With strict, any
// key that is private, symmetric, for encryption, of an unsupported type or
// malformed is an error, and the set must hold at least one key; otherwise
// such keys are skipped, as RFC 7517 section 5 asks of remote sets.
func parseJWKS(doc []byte, strict bool) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, errors.New("is not a JWK Set JSON document")
	}
	var out []jose.JSONWebKey
	for i, raw := range set.Keys {
		key, err := parseJWK(raw)
		if err != nil {
			if strict {
				return nil, fmt.Errorf("key %d: %v", i, err)
			}
			continue
		}
		out = append(out, key)
	}
	if strict && len(out) == 0 {
		return nil, errors.New("holds no keys")
	}
	return out, nil
}

func parseJWK(raw json.RawMessage) (jose.JSONWebKey, error) {
	var meta rawJWK
	if err := json.Unmarshal(raw, &meta); err != nil {
		return jose.JSONWebKey{}, errors.New("is not a JSON object")
	}
	switch {
	case meta.D != nil || meta.K != nil || meta.P != nil || meta.Kty == "oct":
		return jose.JSONWebKey{}, errors.New("must be a public key, without private or symmetric material")
	case meta.Use != "" && meta.Use != "sig":
		return jose.JSONWebKey{}, errors.New(`use must be "sig"`)
	case meta.Alg != "" && !slices.Contains(DefaultAlgs(), meta.Alg):
		return jose.JSONWebKey{}, errors.New("alg is not a supported signing algorithm")
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(raw); err != nil {
		return jose.JSONWebKey{}, errors.New("is not a valid JWK")
	}
	if !key.IsPublic() || !key.Valid() {
		return jose.JSONWebKey{}, errors.New("must be an RSA, EC or Ed25519 public key")
	}
	if err := checkPublicKey(key.Key); err != nil {
		return jose.JSONWebKey{}, err
	}
	return key, nil
}

// parsePEMKey parses one PEM block holding a public key or a certificate.
func parsePEMKey(s string) (crypto.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("is not PEM")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("must hold exactly one PEM block")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, errors.New(`PEM type must be "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"`)
	}
	if err != nil {
		return nil, errors.New("does not parse as a public key")
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA keys must have at least %d bits", minRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return errors.New("ECDSA keys must use P-256, P-384 or P-521")
		}
	case ed25519.PublicKey:
	default:
		return errors.New("must be an RSA, ECDSA or Ed25519 public key")
	}
	return nil
}

// Configure validates cfg and stores it, replacing any previous config.
// Cached keys and discovery results of the previous config are dropped. It
// does not contact the issuer; a wrong URL shows at the first login. Errors
// are *ValidationError or storage errors.
func (s *Service) Configure(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := s.store.Update(ctx, func(tx storage.Tx) error { return tx.Put(configKey, raw) }); err != nil {
		return err
	}
	// A login racing with this call may still cache the old verifier; it
	// is replaced at the next login because verifierFor compares the
	// stored bytes.
	s.mu.Lock()
	s.cached, s.cachedRaw = nil, nil
	s.mu.Unlock()
	return nil
}

// ReadConfig returns the stored config, or ErrNotConfigured.
func (s *Service) ReadConfig(ctx context.Context) (*Config, error) {
	raw, err := s.store.Get(ctx, configKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotConfigured
	}
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode jwt config: %w", err)
	}
	return &c, nil
}

// verifierFor returns the verifier of the stored config, reusing the cached
// one while the stored config is unchanged (also when another server changed
// it), so that remote keys and discovery results survive across logins.
func (s *Service) verifierFor(ctx context.Context) (*verifier, error) {
	raw, err := s.store.Get(ctx, configKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotConfigured
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached != nil && bytes.Equal(raw, s.cachedRaw) {
		return s.cached, nil
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode jwt config: %w", err)
	}
	v, err := c.build()
	if err != nil {
		return nil, fmt.Errorf("stored jwt config: %w", err)
	}
	switch {
	case c.OIDCDiscoveryURL != "":
		v.remote = newDiscoveryKeys(c.OIDCDiscoveryURL, s.fetcher())
	case c.JWKSURL != "":
		v.remote = newRemoteKeys(c.JWKSURL, s.fetcher())
	}
	s.cached, s.cachedRaw = v, raw
	return v, nil
}
