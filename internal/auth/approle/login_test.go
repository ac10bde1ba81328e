package approle

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
)

// netipAddr parses an address; "" gives the zero Addr (source unknown).
func netipAddr(t testing.TB, s string) netip.Addr {
	t.Helper()
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// wantRefused fails unless err is the generic login refusal.
func wantRefused(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidCredentials) || !errors.Is(err, auth.ErrUnauthenticated) || err.Error() != "invalid role_id or secret_id" {
		t.Fatalf("%s: Login = %v, want the generic ErrInvalidCredentials", what, err)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	ts := auth.TokenSettings{Policies: []string{"web-read"}, TTL: auth.Duration(20 * time.Minute), Period: auth.Duration(time.Hour)}
	web := mustPutRole(t, e.svc, Role{Name: "web", TokenSettings: ts})
	db := mustPutRole(t, e.svc, Role{Name: "db"})
	webID := mustGenerate(t, e.svc, "web", map[string]string{"host": "web-1"})
	dbID := mustGenerate(t, e.svc, "db", nil)
	badSum := webID.secretID[:len(webID.secretID)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", webID.secretID[len(webID.secretID)-1])+1)%16])
	src := netipAddr(t, "10.0.0.1")

	tests := []struct {
		name     string
		roleID   string
		secretID string
		ok       bool
	}{
		{"right pair", web.RoleID, webID.secretID, true},
		{"other role's pair", db.RoleID, dbID.secretID, true},
		{"unknown role_id", "3f1c0b8e-3d4a-4b7e-9a51-2f0e6c1d9b77", webID.secretID, false},
		{"role_id of another role", db.RoleID, webID.secretID, false},
		{"secret_id of another role", web.RoleID, dbID.secretID, false},
		{"bad checksum", web.RoleID, badSum, false},
		{"uppercase secret_id", web.RoleID, strings.ToUpper(webID.secretID), false},
		{"empty role_id", "", webID.secretID, false},
		{"empty secret_id", web.RoleID, "", false},
		{"secret_id as role_id", webID.secretID, webID.secretID, false},
		{"overlong role_id", strings.Repeat("a", 10000), webID.secretID, false},
		{"well-formed unknown secret_id", web.RoleID, func() string { s, _ := newSecretID(); return s }(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := e.svc.Login(context.Background(), tt.roleID, tt.secretID, src)
			if !tt.ok {
				wantRefused(t, tt.name, err)
				return
			}
			if err != nil {
				t.Fatalf("Login = %v", err)
			}
			if l.Method != "approle" || l.MFA || !strings.HasPrefix(l.Name, "approle/") || !strings.HasPrefix(l.IdentityID, "approle:") {
				t.Fatalf("Login = %+v", l)
			}
		})
	}

	l, err := e.svc.Login(context.Background(), web.RoleID, webID.secretID, src)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Login{Method: "approle", Name: "approle/web", IdentityID: "approle:web",
		Meta: map[string]string{"host": "web-1", "role": "web"}, Token: ts}
	if l.Method != want.Method || l.Name != want.Name || l.IdentityID != want.IdentityID || !maps.Equal(l.Meta, want.Meta) ||
		!slices.Equal(l.Token.Policies, ts.Policies) || l.Token.TTL != ts.TTL || l.Token.Period != ts.Period {
		t.Fatalf("Login = %+v, want %+v", l, want)
	}
	l.Meta["host"], l.Token.Policies[0] = "changed", "changed"
	if l2, _ := e.svc.Login(context.Background(), web.RoleID, webID.secretID, src); l2.Meta["host"] != "web-1" || l2.Token.Policies[0] != "web-read" {
		t.Fatalf("a login shares maps or slices with stored state: %+v", l2)
	}
}

func TestSecretIDTTL(t *testing.T) {
	type attempt struct {
		advance time.Duration
		ok      bool
	}
	tests := []struct {
		name     string
		ttl      time.Duration
		attempts []attempt
	}{
		{"expires after its ttl", time.Hour, []attempt{{0, true}, {time.Hour - time.Nanosecond, true}, {time.Nanosecond, false}}},
		{"no ttl", 0, []attempt{{0, true}, {10 * 365 * 24 * time.Hour, true}}},
		{"short ttl", time.Second, []attempt{{2 * time.Second, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			r := mustPutRole(t, e.svc, Role{Name: "cron", SecretIDTTL: auth.Duration(tt.ttl)})
			id := mustGenerate(t, e.svc, "cron", nil)
			switch {
			case tt.ttl == 0 && id.expiresAt != nil:
				t.Fatalf("expiresAt = %v, want nil", id.expiresAt)
			case tt.ttl != 0 && (id.expiresAt == nil || !id.expiresAt.Equal(e.clock.t.Add(tt.ttl))):
				t.Fatalf("expiresAt = %v, want now + %v", id.expiresAt, tt.ttl)
			}
			// A later change to the role's ttl does not move the expiry.
			mustPutRole(t, e.svc, Role{Name: "cron", SecretIDTTL: auth.Duration(100 * time.Hour)})
			for i, a := range tt.attempts {
				e.clock.advance(a.advance)
				_, err := e.svc.Login(ctx, r.RoleID, id.secretID, netip.Addr{})
				if a.ok && err != nil {
					t.Fatalf("attempt %d at +%v: Login = %v, want success", i, a.advance, err)
				}
				if !a.ok {
					wantRefused(t, "expired", err)
					if ks := keys(t, e, secretPrefix); len(ks) != 0 {
						t.Fatalf("an expired secret_id presented at login was not deleted: %v", ks)
					}
				}
			}
		})
	}
}

func TestSecretIDNumUses(t *testing.T) {
	tests := []struct {
		name  string
		uses  int
		tries int
	}{
		{"single use", 1, 3},
		{"three uses", 3, 5},
		{"unlimited", 0, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			r := mustPutRole(t, e.svc, Role{Name: "deploy", SecretIDNumUses: tt.uses})
			id := mustGenerate(t, e.svc, "deploy", nil)
			for i := range tt.tries {
				_, err := e.svc.Login(ctx, r.RoleID, id.secretID, netip.Addr{})
				if tt.uses == 0 || i < tt.uses {
					if err != nil {
						t.Fatalf("login %d of %d uses = %v", i+1, tt.uses, err)
					}
					infos, _ := e.svc.ListSecretIDAccessors(ctx, "deploy")
					if left := max(tt.uses-i-1, 0); tt.uses > 0 && left > 0 && (len(infos) != 1 || infos[0].UsesLeft != left) {
						t.Fatalf("after login %d: %+v, want %d uses left", i+1, infos, left)
					}
					continue
				}
				wantRefused(t, "used up", err)
			}
			if ks := keys(t, e, secretPrefix); tt.uses > 0 && len(ks) != 0 {
				t.Fatalf("a used-up secret_id is still stored: %v", ks)
			}
			if ks := keys(t, e, accessorPrefix); tt.uses > 0 && len(ks) != 0 {
				t.Fatalf("a used-up secret_id's accessor is still stored: %v", ks)
			}
		})
	}
}

// TestSecretIDNumUsesConcurrent races logins for one secret_id: it must
// serve exactly its number of uses.
func TestSecretIDNumUsesConcurrent(t *testing.T) {
	tests := []struct {
		name       string
		uses       int
		goroutines int
		want       int
	}{
		{"single use", 1, 16, 1},
		{"three uses", 3, 16, 3},
		{"unlimited", 0, 8, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := mustPutRole(t, e.svc, Role{Name: "race", SecretIDNumUses: tt.uses})
			id := mustGenerate(t, e.svc, "race", nil)
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex // guards ok and errs
				ok      int
				errs    []error
				start   = make(chan struct{})
				src     = netip.MustParseAddr("10.0.0.1")
				roleID  = r.RoleID
				secret  = id.secretID
				service = e.svc
			)
			for range tt.goroutines {
				wg.Go(func() {
					<-start
					_, err := service.Login(context.Background(), roleID, secret, src)
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						ok++
					} else if !errors.Is(err, ErrInvalidCredentials) {
						errs = append(errs, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if ok != tt.want || len(errs) != 0 {
				t.Fatalf("%d concurrent logins with a %d-use secret_id: %d succeeded (errors %v), want %d", tt.goroutines, tt.uses, ok, errs, tt.want)
			}
		})
	}
}

func TestLoginCIDR(t *testing.T) {
	tests := []struct {
		name       string
		roleCIDRs  []string
		secretCIDR []string
		source     string
		ok         bool
	}{
		{"no binding, unknown source", nil, nil, "", true},
		{"no binding, any source", nil, nil, "203.0.113.9", true},
		{"role binding, inside", []string{"10.0.0.0/8"}, nil, "10.1.2.3", true},
		{"role binding, outside", []string{"10.0.0.0/8"}, nil, "11.0.0.1", false},
		{"role binding, unknown source", []string{"10.0.0.0/8"}, nil, "", false},
		{"role binding, IPv4-mapped source", []string{"10.0.0.0/8"}, nil, "::ffff:10.1.2.3", true},
		{"role binding, second block", []string{"10.0.0.0/8", "192.168.0.0/16"}, nil, "192.168.4.4", true},
		{"single host", []string{"10.0.0.7"}, nil, "10.0.0.7", true},
		{"single host, neighbour", []string{"10.0.0.7"}, nil, "10.0.0.8", false},
		{"both bindings, inside both", []string{"10.0.0.0/8"}, []string{"10.1.0.0/16"}, "10.1.2.3", true},
		{"both bindings, inside role only", []string{"10.0.0.0/8"}, []string{"10.1.0.0/16"}, "10.2.0.1", false},
		{"secret binding only, inside", nil, []string{"192.168.1.0/24"}, "192.168.1.9", true},
		{"secret binding only, outside", nil, []string{"192.168.1.0/24"}, "192.168.2.1", false},
		{"secret binding only, unknown source", nil, []string{"192.168.1.0/24"}, "", false},
		{"IPv6 inside", []string{"2001:db8::/32"}, nil, "2001:db8::1", true},
		{"IPv6 binding, IPv4 source", []string{"2001:db8::/32"}, nil, "10.0.0.1", false},
		{"IPv6 link-local with zone", []string{"fe80::/10"}, nil, "fe80::1%eth0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := mustPutRole(t, e.svc, Role{Name: "net", SecretIDBoundCIDRs: tt.roleCIDRs, SecretIDNumUses: 1})
			id := mustGenerate(t, e.svc, "net", nil, tt.secretCIDR...)
			_, err := e.svc.Login(context.Background(), r.RoleID, id.secretID, netipAddr(t, tt.source))
			if !tt.ok {
				wantRefused(t, tt.name, err)
				// A refusal spends no use.
				if infos, _ := e.svc.ListSecretIDAccessors(context.Background(), "net"); len(infos) != 1 || infos[0].UsesLeft != 1 {
					t.Fatalf("after a refused login: %+v, want the secret_id with its use", infos)
				}
				return
			}
			if err != nil {
				t.Fatalf("Login from %q = %v", tt.source, err)
			}
		})
	}
}

// TestRoleCIDRChangeApplies checks that narrowing a role's binding binds
// secret_ids already issued.
func TestRoleCIDRChangeApplies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := mustPutRole(t, e.svc, Role{Name: "edge"})
	id := mustGenerate(t, e.svc, "edge", nil)
	src := netipAddr(t, "198.51.100.7")
	if _, err := e.svc.Login(ctx, r.RoleID, id.secretID, src); err != nil {
		t.Fatal(err)
	}
	mustPutRole(t, e.svc, Role{Name: "edge", SecretIDBoundCIDRs: []string{"10.0.0.0/8"}})
	_, err := e.svc.Login(ctx, r.RoleID, id.secretID, src)
	wantRefused(t, "after the role was bound to 10.0.0.0/8", err)
}

func BenchmarkLogin(b *testing.B) {
	e := newEnv(b)
	r := mustPutRole(b, e.svc, Role{Name: "bench", SecretIDBoundCIDRs: []string{"10.0.0.0/8"}})
	id := mustGenerate(b, e.svc, "bench", nil)
	ctx, src := context.Background(), netip.MustParseAddr("10.1.2.3")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Login(ctx, r.RoleID, id.secretID, src); err != nil {
			b.Fatal(err)
		}
	}
}
