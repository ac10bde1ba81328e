package jwt

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
)

func TestRoleCRUD(t *testing.T) {
	s := newTestService(t, newTestClock(testEpoch()), nil)
	ctx := t.Context()

	if names, err := s.ListRoles(ctx); err != nil || len(names) != 0 {
		t.Fatalf("ListRoles on empty store = %v, %v, want [], nil", names, err)
	}
	k8s := kubernetesRole()
	mustPutRole(t, s, k8s)
	mustPutRole(t, s, githubRole())
	minimal := Role{Name: "a-minimal_role", BoundAudiences: []string{"x"}}
	mustPutRole(t, s, minimal)

	got, err := s.GetRole(ctx, k8s.Name)
	if err != nil || !reflect.DeepEqual(*got, k8s) {
		t.Fatalf("GetRole(%q) = %+v, %v, want %+v", k8s.Name, got, err, k8s)
	}
	got, err = s.GetRole(ctx, minimal.Name)
	if err != nil || got.UserClaim != DefaultUserClaim {
		t.Fatalf("GetRole(%q) = %+v, %v, want user_claim %q", minimal.Name, got, err, DefaultUserClaim)
	}
	names, err := s.ListRoles(ctx)
	if want := []string{"a-minimal_role", "deploy", "payments-api"}; err != nil || !slices.Equal(names, want) {
		t.Fatalf("ListRoles = %v, %v, want %v", names, err, want)
	}

	if err := s.DeleteRole(ctx, "deploy"); err != nil {
		t.Fatalf("DeleteRole(deploy) = %v", err)
	}
	if err := s.DeleteRole(ctx, "deploy"); !errors.Is(err, ErrRoleNotFound) {
		t.Errorf("DeleteRole(deploy) twice = %v, want %v", err, ErrRoleNotFound)
	}
	if _, err := s.GetRole(ctx, "deploy"); !errors.Is(err, ErrRoleNotFound) {
		t.Errorf("GetRole(deleted) = %v, want %v", err, ErrRoleNotFound)
	}
	if _, err := s.GetRole(ctx, "Bad/Name"); !errors.Is(err, ErrRoleNotFound) {
		t.Errorf("GetRole(invalid name) = %v, want %v", err, ErrRoleNotFound)
	}
}

func TestRoleJSONNames(t *testing.T) {
	r := Role{Name: "r", BoundAudiences: []string{"a"}, UserClaim: "sub", LeewaySeconds: 30, MaxAgeSeconds: 600,
		TokenSettings: auth.TokenSettings{Policies: []string{"p"}, TTL: auth.Duration(time.Minute)}}
	b, err := jsonMarshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"name"`, `"bound_audiences"`, `"user_claim"`, `"token_policies"`, `"token_ttl"`, `"leeway"`, `"max_age"`} {
		if !strings.Contains(b, field) {
			t.Errorf("json.Marshal(Role) = %s, lacks %s", b, field)
		}
	}
}

func TestRoleValidate(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(r *Role)
		wantField string // "" means valid
	}{
		{name: "kubernetes role", edit: func(*Role) {}},
		{name: "name of 128", edit: func(r *Role) { r.Name = strings.Repeat("a", 128) }},
		{name: "no leeway", edit: func(r *Role) { r.LeewaySeconds = -1 }},
		{name: "max leeway", edit: func(r *Role) { r.LeewaySeconds = MaxLeewaySeconds }},
		{name: "escaped pointer", edit: func(r *Role) { r.BoundClaims = map[string][]string{"/a~1b/c~0d": {"*"}} }},

		{name: "empty name", edit: func(r *Role) { r.Name = "" }, wantField: "name"},
		{name: "name of 129", edit: func(r *Role) { r.Name = strings.Repeat("a", 129) }, wantField: "name"},
		{name: "uppercase name", edit: func(r *Role) { r.Name = "Payments" }, wantField: "name"},
		{name: "slash in name", edit: func(r *Role) { r.Name = "a/b" }, wantField: "name"},
		{name: "no audiences", edit: func(r *Role) { r.BoundAudiences = nil }, wantField: "bound_audiences"},
		{name: "empty audience", edit: func(r *Role) { r.BoundAudiences = []string{""} }, wantField: "bound_audiences"},
		{name: "empty pointer segment", edit: func(r *Role) { r.BoundClaims = map[string][]string{"/a//b": {"x"}} }, wantField: "bound_claims"},
		{name: "bad pointer escape", edit: func(r *Role) { r.BoundClaims = map[string][]string{"/a~2": {"x"}} }, wantField: "bound_claims"},
		{name: "no bound values", edit: func(r *Role) { r.BoundClaims = map[string][]string{"repository": {}} }, wantField: "bound_claims"},
		{name: "empty bound value", edit: func(r *Role) { r.BoundClaims = map[string][]string{"repository": {""}} }, wantField: "bound_claims"},
		{name: "reserved meta key", edit: func(r *Role) { r.ClaimMappings = map[string]string{"sub": "role"} }, wantField: "claim_mappings"},
		{name: "duplicate meta key", edit: func(r *Role) { r.ClaimMappings = map[string]string{"sub": "x", "iss": "x"} }, wantField: "claim_mappings"},
		{name: "bad meta key", edit: func(r *Role) { r.ClaimMappings = map[string]string{"sub": "a b"} }, wantField: "claim_mappings"},
		{name: "bad user claim", edit: func(r *Role) { r.UserClaim = "/" }, wantField: "user_claim"},
		{name: "root policy", edit: func(r *Role) { r.Policies = []string{"root"} }, wantField: "token"},
		{name: "leeway too large", edit: func(r *Role) { r.LeewaySeconds = MaxLeewaySeconds + 1 }, wantField: "leeway"},
		{name: "leeway below -1", edit: func(r *Role) { r.LeewaySeconds = -2 }, wantField: "leeway"},
		{name: "negative max age", edit: func(r *Role) { r.MaxAgeSeconds = -1 }, wantField: "max_age"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := kubernetesRole()
			tc.edit(&r)
			err := r.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.wantField {
				t.Fatalf("Validate() = %v, want a ValidationError of %s", err, tc.wantField)
			}
			s := newTestService(t, newTestClock(testEpoch()), nil)
			if err := s.PutRole(t.Context(), r); !errors.As(err, &ve) {
				t.Errorf("PutRole = %v, want a ValidationError", err)
			}
		})
	}
}
