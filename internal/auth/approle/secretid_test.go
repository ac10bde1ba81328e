package approle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
)

func TestGenerateSecretIDValidation(t *testing.T) {
	e := newEnv(t)
	mustPutRole(t, e.svc, Role{Name: "bound", SecretIDBoundCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}})
	mustPutRole(t, e.svc, Role{Name: "free"})
	many := map[string]string{}
	for i := range MaxMetaEntries + 1 {
		many[fmt.Sprint("k", i)] = "v"
	}
	tests := []struct {
		name  string
		role  string
		meta  map[string]string
		cidrs []string
		field string // "" means accepted
	}{
		{"narrower blocks", "bound", nil, []string{"10.1.0.0/16", "2001:db8:1::/48"}, ""},
		{"same block", "bound", nil, []string{"10.0.0.0/8"}, ""},
		{"single host inside", "bound", nil, []string{"10.9.9.9"}, ""},
		{"any block on an unbound role", "free", nil, []string{"0.0.0.0/0"}, ""},
		{"metadata", "free", map[string]string{"host": "build-7", "team.name": "ci"}, nil, ""},
		{"block outside the role's", "bound", nil, []string{"192.168.0.0/16"}, "bound_cidrs"},
		{"block wider than the role's", "bound", nil, []string{"10.0.0.0/7"}, "bound_cidrs"},
		{"one of two outside", "bound", nil, []string{"10.1.0.0/16", "11.0.0.0/16"}, "bound_cidrs"},
		{"IPv6 outside", "bound", nil, []string{"2001:db9::/32"}, "bound_cidrs"},
		{"malformed block", "free", nil, []string{"10.0.0.0/40"}, "bound_cidrs"},
		{"IPv4-mapped block", "free", nil, []string{"::ffff:10.0.0.0/104"}, "bound_cidrs"},
		{"reserved role key", "free", map[string]string{"role": "admin"}, nil, "metadata"},
		{"empty key", "free", map[string]string{"": "x"}, nil, "metadata"},
		{"key with space", "free", map[string]string{"a b": "x"}, nil, "metadata"},
		{"long value", "free", map[string]string{"k": strings.Repeat("v", MaxMetaValueLen+1)}, nil, "metadata"},
		{"invalid UTF-8 value", "free", map[string]string{"k": "\xff"}, nil, "metadata"},
		{"too many entries", "free", many, nil, "metadata"},
		{"bad role name", "Free", nil, nil, "role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, acc, _, err := e.svc.GenerateSecretID(context.Background(), tt.role, tt.meta, tt.cidrs)
			if tt.field == "" {
				if err != nil || CheckSecretID(id) != nil || !isAccessor(acc) {
					t.Fatalf("GenerateSecretID = %q, %q, %v", id, acc, err)
				}
				return
			}
			var ie *auth.InputError
			if !errors.As(err, &ie) || ie.Field != tt.field {
				t.Fatalf("GenerateSecretID(%v, %v) = %v, want an InputError on %s", tt.meta, tt.cidrs, err, tt.field)
			}
		})
	}
}

func TestListAndDestroySecretIDs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := mustPutRole(t, e.svc, Role{Name: "app", SecretIDTTL: auth.Duration(time.Hour), SecretIDNumUses: 5})
	first := mustGenerate(t, e.svc, "app", map[string]string{"host": "a"}, "10.0.0.0/24")
	e.clock.advance(time.Minute)
	second := mustGenerate(t, e.svc, "app", nil)
	mustPutRole(t, e.svc, Role{Name: "other"})
	mustGenerate(t, e.svc, "other", nil)

	infos, err := e.svc.ListSecretIDAccessors(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Accessor != first.accessor || infos[1].Accessor != second.accessor {
		t.Fatalf("ListSecretIDAccessors = %+v, want the two secret_ids oldest first", infos)
	}
	i := infos[0]
	if !maps.Equal(i.Meta, map[string]string{"host": "a"}) || !slices.Equal(i.CIDRs, []string{"10.0.0.0/24"}) ||
		i.UsesLeft != 5 || i.ExpiresAt == nil || !i.ExpiresAt.Equal(*first.expiresAt) || !i.ExpiresAt.Equal(i.CreatedAt.Add(time.Hour)) {
		t.Fatalf("first SecretIDInfo = %+v", i)
	}
	out, _ := json.Marshal(infos)
	for _, secret := range []string{first.secretID, second.secretID, digest(first.secretID), digest(second.secretID)} {
		if strings.Contains(string(out), secret) {
			t.Fatalf("ListSecretIDAccessors JSON %s reveals a secret_id or its digest", out)
		}
	}

	tests := []struct {
		name     string
		role     string
		accessor string
		wantErr  error
	}{
		{"destroy", "app", first.accessor, nil},
		{"destroy again", "app", first.accessor, ErrSecretIDNotFound},
		{"accessor of another role", "other", second.accessor, ErrSecretIDNotFound},
		{"unknown accessor", "app", strings.Repeat("0", accessorLen), ErrSecretIDNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.svc.DestroySecretID(ctx, tt.role, tt.accessor); !errors.Is(err, tt.wantErr) {
				t.Fatalf("DestroySecretID(%s, %s) = %v, want %v", tt.role, tt.accessor, err, tt.wantErr)
			}
		})
	}
	var ie *auth.InputError
	if err := e.svc.DestroySecretID(ctx, "app", first.secretID); !errors.As(err, &ie) {
		t.Fatalf("DestroySecretID with a secret_id for accessor = %v, want an InputError", err)
	}
	_, err = e.svc.Login(ctx, r.RoleID, first.secretID, netipAddr(t, "10.0.0.1"))
	wantRefused(t, "destroyed", err)
	if _, err := e.svc.Login(ctx, r.RoleID, second.secretID, netipAddr(t, "10.0.0.1")); err != nil {
		t.Fatalf("Login with the remaining secret_id = %v", err)
	}
	// Expired secret_ids drop out of the list before tidy removes them.
	e.clock.advance(time.Hour)
	if infos, _ := e.svc.ListSecretIDAccessors(ctx, "app"); len(infos) != 0 {
		t.Fatalf("after expiry ListSecretIDAccessors = %+v, want none", infos)
	}
}

func TestTidyExpired(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	shortRole := mustPutRole(t, e.svc, Role{Name: "short", SecretIDTTL: auth.Duration(time.Hour)})
	longRole := mustPutRole(t, e.svc, Role{Name: "long", SecretIDTTL: auth.Duration(48 * time.Hour)})
	mustPutRole(t, e.svc, Role{Name: "forever"})
	const expiring = 2*pageSize + 7 // several pages
	for range expiring {
		mustGenerate(t, e.svc, "short", nil)
	}
	e.clock.advance(30 * time.Minute)
	late := mustGenerate(t, e.svc, "short", nil) // expires 30 minutes after the others
	long := mustGenerate(t, e.svc, "long", nil)
	forever := mustGenerate(t, e.svc, "forever", nil)

	steps := []struct {
		name    string
		advance time.Duration
		want    int
	}{
		{"nothing expired yet", 0, 0},
		{"first batch expired", 30 * time.Minute, expiring},
		{"idempotent", 0, 0},
		{"the late one", 30 * time.Minute, 1},
		{"two days later", 48 * time.Hour, 1},
	}
	for _, st := range steps {
		e.clock.advance(st.advance)
		n, err := e.svc.TidyExpired(ctx)
		if err != nil || n != st.want {
			t.Fatalf("%s: TidyExpired = %d, %v, want %d", st.name, n, err, st.want)
		}
		if st.name == "first batch expired" {
			if _, err := e.svc.Login(ctx, shortRole.RoleID, late.secretID, netipAddr(t, "10.0.0.1")); err != nil {
				t.Fatalf("Login with an unexpired secret_id after tidy = %v", err)
			}
			if _, err := e.svc.Login(ctx, longRole.RoleID, long.secretID, netipAddr(t, "10.0.0.1")); err != nil {
				t.Fatalf("Login with another role's secret_id after tidy = %v", err)
			}
		}
	}
	if ks := keys(t, e, secretPrefix); len(ks) != 1 || !strings.HasPrefix(ks[0], secretPrefix+"forever/") {
		t.Fatalf("after tidy %d secret_ids are stored, want only the one without expiry", len(ks))
	}
	if ks := keys(t, e, accessorPrefix); len(ks) != 1 || !strings.HasSuffix(ks[0], "/"+forever.accessor) {
		t.Fatalf("after tidy accessors %v, want only %s", ks, forever.accessor)
	}
}
