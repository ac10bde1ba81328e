package cert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newCA(t testing.TB, name string) *ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &ca{cert: c, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (c *ca) issue(t testing.TB, cn string, dns []string, usage x509.ExtKeyUsage, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: dns, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// loginOverTLS performs a real TLS handshake presenting client (if any) and
// logs in with the peer chain the server saw.
func loginOverTLS(t testing.TB, svc *Service, role string, client *tls.Certificate) (*auth.Login, error) {
	t.Helper()
	var login *auth.Login
	var lerr error
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		login, lerr = svc.Login(r.Context(), role, r.TLS.PeerCertificates)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if client != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*client}
	}
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return login, lerr
}

func TestLoginOverTLS(t *testing.T) {
	ctx := context.Background()
	svc := New(mem.New(), nil)
	good, other := newCA(t, "payments-ca"), newCA(t, "rogue-ca")
	if err := svc.PutRole(ctx, Role{Name: "payments", Certificate: good.pem,
		AllowedCommonNames: []string{"api.payments.internal", "worker-*"}, AllowedDNSSANs: []string{"*.payments.internal"},
		TokenSettings: auth.TokenSettings{Policies: []string{"payments"}}}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	valid := good.issue(t, "api.payments.internal", []string{"api.payments.internal"}, x509.ExtKeyUsageClientAuth, later)
	tests := []struct {
		name   string
		role   string
		client *tls.Certificate
		ok     bool
	}{
		{"valid cert, named role", "payments", &valid, true},
		{"valid cert, any role", "", &valid, true},
		{"glob common name", "payments", ptr(good.issue(t, "worker-7", []string{"w7.payments.internal"}, x509.ExtKeyUsageClientAuth, later)), true},
		{"no certificate", "payments", nil, false},
		{"untrusted CA", "payments", ptr(other.issue(t, "api.payments.internal", []string{"api.payments.internal"}, x509.ExtKeyUsageClientAuth, later)), false},
		{"common name not bound", "payments", ptr(good.issue(t, "evil", []string{"api.payments.internal"}, x509.ExtKeyUsageClientAuth, later)), false},
		{"dns san not bound", "payments", ptr(good.issue(t, "worker-1", []string{"x.orders.internal"}, x509.ExtKeyUsageClientAuth, later)), false},
		{"server-auth only usage", "payments", ptr(good.issue(t, "api.payments.internal", []string{"api.payments.internal"}, x509.ExtKeyUsageServerAuth, later)), false},
		{"unknown role", "nope", &valid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := loginOverTLS(t, svc, tt.role, tt.client)
			if tt.ok {
				if err != nil || l.Method != "cert" || l.Token.Policies[0] != "payments" || l.Meta["role"] != "payments" {
					t.Fatalf("Login = %+v, %v, want success", l, err)
				}
				return
			}
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("Login = %+v, %v, want ErrUnauthenticated", l, err)
			}
		})
	}
}

func TestExpiredCertificate(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	svc := New(mem.New(), func() time.Time { return now })
	c := newCA(t, "ca")
	svc.PutRole(ctx, Role{Name: "r", Certificate: c.pem})
	leaf := c.issue(t, "x", nil, x509.ExtKeyUsageClientAuth, now.Add(time.Minute))
	if _, err := loginOverTLS(t, svc, "r", &leaf); err != nil {
		t.Fatalf("fresh cert: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := loginOverTLS(t, svc, "r", &leaf); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("expired cert: %v", err)
	}
}

func TestPutRoleValidation(t *testing.T) {
	svc := New(mem.New(), nil)
	c := newCA(t, "ca")
	for _, r := range []Role{
		{Name: "Bad Name", Certificate: c.pem},
		{Name: "r", Certificate: "not pem"},
		{Name: "r", Certificate: c.pem, AllowedCommonNames: []string{"[unclosed"}},
		{Name: "r", Certificate: c.pem, TokenSettings: auth.TokenSettings{Policies: []string{"root"}}},
	} {
		if err := svc.PutRole(context.Background(), r); err == nil {
			t.Errorf("PutRole(%+v) = nil, want error", r.Name)
		}
	}
}

func ptr[T any](v T) *T { return &v }
