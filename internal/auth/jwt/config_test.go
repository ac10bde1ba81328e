package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"reflect"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestConfigure(t *testing.T) {
	ec := newECKey(t, "ec-1")
	ecPEM := ec.publicPEM(t)
	privDER, err := x509.MarshalECPrivateKey(ec.priv.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privDER}))
	privJWKS, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec.priv, KeyID: "ec-1", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	hmacJWKS, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h"}}})
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const iss = "https://issuer.example"

	tests := []struct {
		name    string
		cfg     Config
		wantErr string // the ValidationError field; "" means valid
	}{
		{name: "discovery", cfg: Config{OIDCDiscoveryURL: "https://token.actions.githubusercontent.com"}},
		{name: "discovery with equal bound issuer", cfg: Config{OIDCDiscoveryURL: iss, BoundIssuer: iss}},
		{name: "discovery over loopback http", cfg: Config{OIDCDiscoveryURL: "http://127.0.0.1:8200/issuer"}},
		{name: "jwks url", cfg: Config{JWKSURL: "https://www.googleapis.com/oauth2/v3/certs", BoundIssuer: "https://accounts.google.com"}},
		{name: "static jwks", cfg: Config{JWKS: jwksJSON(t, ec), BoundIssuer: iss, SupportedAlgs: []string{"ES256"}}},
		{name: "pem", cfg: Config{PublicKeys: []string{ecPEM}, BoundIssuer: iss}},

		{name: "no source", cfg: Config{BoundIssuer: iss}, wantErr: "config"},
		{name: "two sources", cfg: Config{OIDCDiscoveryURL: iss, JWKSURL: iss + "/jwks"}, wantErr: "config"},
		{name: "discovery with other bound issuer", cfg: Config{OIDCDiscoveryURL: iss, BoundIssuer: "https://other.example"}, wantErr: "bound_issuer"},
		{name: "discovery over plain http", cfg: Config{OIDCDiscoveryURL: "http://issuer.example"}, wantErr: "oidc_discovery_url"},
		{name: "discovery relative", cfg: Config{OIDCDiscoveryURL: "/issuer"}, wantErr: "oidc_discovery_url"},
		{name: "discovery with query", cfg: Config{OIDCDiscoveryURL: iss + "?x=1"}, wantErr: "oidc_discovery_url"},
		{name: "jwks url with credentials", cfg: Config{JWKSURL: "https://u:p@issuer.example/jwks", BoundIssuer: iss}, wantErr: "jwks_url"},
		{name: "jwks url without bound issuer", cfg: Config{JWKSURL: iss + "/jwks"}, wantErr: "bound_issuer"},
		{name: "jwks without bound issuer", cfg: Config{JWKS: jwksJSON(t, ec)}, wantErr: "bound_issuer"},
		{name: "jwks garbage", cfg: Config{JWKS: "{not json", BoundIssuer: iss}, wantErr: "jwks"},
		{name: "jwks empty", cfg: Config{JWKS: `{"keys":[]}`, BoundIssuer: iss}, wantErr: "jwks"},
		{name: "jwks private key", cfg: Config{JWKS: string(privJWKS), BoundIssuer: iss}, wantErr: "jwks"},
		{name: "jwks symmetric key", cfg: Config{JWKS: string(hmacJWKS), BoundIssuer: iss}, wantErr: "jwks"},
		{name: "jwks encryption key", cfg: Config{JWKS: `{"keys":[{"kty":"EC","use":"enc","crv":"P-256","x":"AA","y":"AA"}]}`, BoundIssuer: iss}, wantErr: "jwks"},
		{name: "pem garbage", cfg: Config{PublicKeys: []string{"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, BoundIssuer: iss}, wantErr: "public_keys[0]"},
		{name: "pem not pem", cfg: Config{PublicKeys: []string{"ssh-ed25519 AAAA"}, BoundIssuer: iss}, wantErr: "public_keys[0]"},
		{name: "pem private key", cfg: Config{PublicKeys: []string{ecPEM, privPEM}, BoundIssuer: iss}, wantErr: "public_keys[1]"},
		{name: "pem two blocks", cfg: Config{PublicKeys: []string{ecPEM + ecPEM}, BoundIssuer: iss}, wantErr: "public_keys[0]"},
		{name: "pem unsupported curve", cfg: Config{PublicKeys: []string{pkixPEM(t, &p224.PublicKey)}, BoundIssuer: iss}, wantErr: "public_keys[0]"},
		{name: "alg HS256", cfg: Config{OIDCDiscoveryURL: iss, SupportedAlgs: []string{"RS256", "HS256"}}, wantErr: "supported_algs"},
		{name: "alg none", cfg: Config{OIDCDiscoveryURL: iss, SupportedAlgs: []string{"none"}}, wantErr: "supported_algs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestService(t, newTestClock(testEpoch()), nil)
			err := s.Configure(t.Context(), tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Configure = %v, want nil", err)
				}
				got, err := s.ReadConfig(t.Context())
				if err != nil || !reflect.DeepEqual(*got, tc.cfg) {
					t.Fatalf("ReadConfig = %+v, %v, want %+v", got, err, tc.cfg)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.wantErr {
				t.Fatalf("Configure = %v, want a ValidationError of %s", err, tc.wantErr)
			}
			if _, err := s.ReadConfig(t.Context()); !errors.Is(err, ErrNotConfigured) {
				t.Errorf("ReadConfig after a rejected Configure = %v, want %v", err, ErrNotConfigured)
			}
		})
	}
}

func pkixPEM(tb testing.TB, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
