package approle

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type env struct {
	svc   *Service
	clock *clock
	store *mem.Backend
}

func newEnv(t testing.TB) *env {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	be := mem.New()
	t.Cleanup(func() { be.Close() })
	return &env{svc: New(be, Options{Now: c.now}), clock: c, store: be}
}

func mustPutRole(t testing.TB, s *Service, r Role) *Role {
	t.Helper()
	out, err := s.PutRole(context.Background(), r)
	if err != nil {
		t.Fatalf("PutRole(%s) = %v", r.Name, err)
	}
	return out
}

// issued is a secret_id as GenerateSecretID returned it.
type issued struct {
	secretID, accessor string
	expiresAt          *time.Time
}

func mustGenerate(t testing.TB, s *Service, role string, meta map[string]string, cidrs ...string) issued {
	t.Helper()
	id, acc, exp, err := s.GenerateSecretID(context.Background(), role, meta, cidrs)
	if err != nil {
		t.Fatalf("GenerateSecretID(%s) = %v", role, err)
	}
	return issued{id, acc, exp}
}

// keys returns the stored keys under prefix.
func keys(t testing.TB, e *env, prefix string) []string {
	t.Helper()
	ks, err := e.store.List(context.Background(), prefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestPutRoleValidation(t *testing.T) {
	e := newEnv(t)
	mustPutRole(t, e.svc, Role{Name: "existing"})
	tests := []struct {
		name  string
		in    Role
		field string
	}{
		{"empty name", Role{}, "role"},
		{"uppercase name", Role{Name: "Web"}, "role"},
		{"dot in name", Role{Name: "web.api"}, "role"},
		{"long name", Role{Name: strings.Repeat("a", MaxRoleNameLen+1)}, "role"},
		{"negative ttl", Role{Name: "r", SecretIDTTL: auth.Duration(-time.Second)}, "secret_id_ttl"},
		{"negative uses", Role{Name: "r", SecretIDNumUses: -1}, "secret_id_num_uses"},
		{"bad cidr", Role{Name: "r", SecretIDBoundCIDRs: []string{"10.0.0.0/33"}}, "secret_id_bound_cidrs"},
		{"root policy", Role{Name: "r", TokenSettings: auth.TokenSettings{Policies: []string{"root"}}}, "token"},
		{"ttl above max", Role{Name: "r", TokenSettings: auth.TokenSettings{TTL: auth.Duration(2 * time.Hour), MaxTTL: auth.Duration(time.Hour)}}, "token"},
		{"role_id on create", Role{Name: "r", RoleID: "my-own-id"}, "role_id"},
		{"role_id changed", Role{Name: "existing", RoleID: "another-id"}, "role_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.PutRole(context.Background(), tt.in)
			var ie *auth.InputError
			if !errors.As(err, &ie) || ie.Field != tt.field {
				t.Fatalf("PutRole(%+v) = %v, want an InputError on %s", tt.in, err, tt.field)
			}
		})
	}
	if names, _ := e.svc.ListRoles(context.Background()); !slices.Equal(names, []string{"existing"}) {
		t.Fatalf("after refused puts ListRoles = %v", names)
	}
}

func TestRoleCRUD(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := Role{Name: "payments", SecretIDTTL: auth.Duration(time.Hour), SecretIDNumUses: 3,
		SecretIDBoundCIDRs: []string{"10.1.2.3/16", "2001:db8::1", "192.168.0.7"},
		TokenSettings:      auth.TokenSettings{Policies: []string{"payments"}, TTL: auth.Duration(time.Hour)}}
	r := mustPutRole(t, e.svc, in)
	if !uuidRE.MatchString(r.RoleID) {
		t.Fatalf("RoleID = %q, want a random UUID", r.RoleID)
	}
	if want := []string{"10.1.0.0/16", "2001:db8::1/128", "192.168.0.7/32"}; !slices.Equal(r.SecretIDBoundCIDRs, want) {
		t.Fatalf("SecretIDBoundCIDRs = %v, want canonical %v", r.SecretIDBoundCIDRs, want)
	}
	if time.Duration(r.SecretIDTTL) != time.Hour || r.SecretIDNumUses != 3 || !slices.Equal(r.Policies, []string{"payments"}) || !r.CreatedAt.Equal(e.clock.t) {
		t.Fatalf("PutRole = %+v", r)
	}

	// An update replaces the settings and keeps role_id and created_at.
	e.clock.advance(time.Minute)
	r2 := mustPutRole(t, e.svc, Role{Name: "payments", RoleID: r.RoleID, SecretIDNumUses: 1})
	if r2.RoleID != r.RoleID || !r2.CreatedAt.Equal(r.CreatedAt) || !r2.UpdatedAt.Equal(e.clock.t) ||
		r2.SecretIDTTL != 0 || r2.SecretIDNumUses != 1 || r2.SecretIDBoundCIDRs != nil || r2.Policies != nil {
		t.Fatalf("PutRole(update) = %+v, want role_id %s kept and settings replaced", r2, r.RoleID)
	}
	got, err := e.svc.GetRole(ctx, "payments")
	if err != nil || got.RoleID != r.RoleID || got.SecretIDNumUses != 1 {
		t.Fatalf("GetRole = %+v, %v", got, err)
	}

	mustPutRole(t, e.svc, Role{Name: "billing"})
	if names, err := e.svc.ListRoles(ctx); err != nil || !slices.Equal(names, []string{"billing", "payments"}) {
		t.Fatalf("ListRoles = %v, %v", names, err)
	}
	if err := e.svc.DeleteRole(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct {
		name string
		err  error
	}{
		{"GetRole", func() error { _, err := e.svc.GetRole(ctx, "payments"); return err }()},
		{"DeleteRole", e.svc.DeleteRole(ctx, "payments")},
		{"GenerateSecretID", func() error { _, _, _, err := e.svc.GenerateSecretID(ctx, "payments", nil, nil); return err }()},
		{"ListSecretIDAccessors", func() error { _, err := e.svc.ListSecretIDAccessors(ctx, "payments"); return err }()},
	} {
		if !errors.Is(op.err, ErrNotFound) {
			t.Errorf("%s(deleted role) = %v, want ErrNotFound", op.name, op.err)
		}
	}
	if ks := keys(t, e, roleIDPrefix); len(ks) != 1 {
		t.Errorf("role_id index has %d entries after deleting one of two roles, want 1", len(ks))
	}
}

func TestDeleteRoleKillsSecretIDs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := mustPutRole(t, e.svc, Role{Name: "ci"})
	var ids []issued
	for range pageSize + 5 { // more than one page
		ids = append(ids, mustGenerate(t, e.svc, "ci", nil))
	}
	other := mustPutRole(t, e.svc, Role{Name: "ci-other"}) // shares a name prefix
	otherID := mustGenerate(t, e.svc, "ci-other", nil)

	if err := e.svc.DeleteRole(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, r.RoleID, ids[0].secretID, netipAddr(t, "10.0.0.1")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login after DeleteRole = %v, want ErrInvalidCredentials", err)
	}
	for _, p := range []string{secretPrefix + "ci/", accessorPrefix + "ci/"} {
		if ks := keys(t, e, p); len(ks) != 0 {
			t.Errorf("%d keys left under %s", len(ks), p)
		}
	}
	if _, err := e.svc.Login(ctx, other.RoleID, otherID.secretID, netipAddr(t, "10.0.0.1")); err != nil {
		t.Fatalf("Login to a role with a similar name = %v", err)
	}
}

// TestRecreatedRoleIgnoresOldSecretIDs checks that secret_ids left behind
// by an interrupted DeleteRole never work for a new role of the same name.
func TestRecreatedRoleIgnoresOldSecretIDs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := mustPutRole(t, e.svc, Role{Name: "batch"})
	old := mustGenerate(t, e.svc, "batch", nil)
	// Delete only the role, as a DeleteRole interrupted before cleanup would.
	err := e.store.Update(ctx, func(tx storage.Tx) error { return tx.Delete(roleKey("batch")) })
	if err != nil {
		t.Fatal(err)
	}
	r := mustPutRole(t, e.svc, Role{Name: "batch"})
	if _, err := e.svc.Login(ctx, r.RoleID, old.secretID, netipAddr(t, "10.0.0.1")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login with a secret_id of the earlier role = %v, want ErrInvalidCredentials", err)
	}
	if infos, _ := e.svc.ListSecretIDAccessors(ctx, "batch"); len(infos) != 0 {
		t.Fatalf("ListSecretIDAccessors shows the earlier role's secret_ids: %+v", infos)
	}
	fresh := mustGenerate(t, e.svc, "batch", nil)
	if _, err := e.svc.Login(ctx, first.RoleID, fresh.secretID, netipAddr(t, "10.0.0.1")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login with the earlier role's role_id = %v, want ErrInvalidCredentials", err)
	}
	if n, err := e.svc.TidyExpired(ctx); err != nil || n != 1 {
		t.Fatalf("TidyExpired = %d, %v, want the 1 orphan removed", n, err)
	}
	if _, err := e.svc.Login(ctx, r.RoleID, fresh.secretID, netipAddr(t, "10.0.0.1")); err != nil {
		t.Fatalf("Login with the new role's secret_id after tidy = %v", err)
	}
}
