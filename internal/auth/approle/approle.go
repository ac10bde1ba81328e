// Package approle authenticates machines with a role_id and a secret_id.
//
// A role carries the token settings its logins get and the rules for its
// secret_ids: lifetime, number of uses, and the networks logins may come
// from. The role_id is generated, stable and readable by admins; secret_ids
// are generated on demand, shown once, and stored only as SHA-256 digests.
// Each secret_id also has an accessor that names it for listing and
// destruction without granting anything.
//
// Login checks and consumes a secret_id in one storage transaction, so a
// secret_id with n uses serves exactly n logins however many race for it.
package approle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier. Role names cannot contain "/", so
// role-scoped keys split unambiguously.
const (
	rolePrefix     = "auth/approle/role/" // + name -> roleRecord
	roleIDPrefix   = "auth/approle/rid/"  // + digest(role_id) -> role name
	secretPrefix   = "auth/approle/sid/"  // + name + "/" + digest(secret_id) -> secretRecord
	accessorPrefix = "auth/approle/acc/"  // + name + "/" + accessor -> digest(secret_id)
	pageSize       = 100                  // keys per transaction in scans
)

// Method is the auth method name in logins.
const Method = "approle"

// authError is a login failure: its message is what the caller may be
// told, and it matches auth.ErrUnauthenticated.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return auth.ErrUnauthenticated }

var (
	// ErrNotFound means no role has that name.
	ErrNotFound = errors.New("role not found")
	// ErrSecretIDNotFound means the role has no secret_id with that accessor.
	ErrSecretIDNotFound = errors.New("secret_id not found")
	// ErrInvalidCredentials is Login's only refusal: an unknown role_id, an
	// unknown, expired, used-up or destroyed secret_id, a secret_id of
	// another role, or a source address outside the bound CIDRs. It never
	// says which. It matches auth.ErrUnauthenticated.
	ErrInvalidCredentials error = &authError{"invalid role_id or secret_id"}
)

// Role is an approle role. JSON names match the API.
type Role struct {
	// Name is 1 to 128 characters from [a-z0-9_-].
	Name string `json:"name"`
	// RoleID is generated when the role is created and never changes.
	RoleID string `json:"role_id"`
	// SecretIDTTL is the lifetime of new secret_ids; 0 means no expiry.
	// Changing it does not change secret_ids already issued.
	SecretIDTTL auth.Duration `json:"secret_id_ttl"`
	// SecretIDNumUses is how many logins a new secret_id serves; 0 means
	// unlimited. Changing it does not change secret_ids already issued.
	SecretIDNumUses int `json:"secret_id_num_uses"`
	// SecretIDBoundCIDRs, when not empty, restrict the source addresses of
	// logins. It applies to every secret_id of the role, old and new.
	SecretIDBoundCIDRs []string `json:"secret_id_bound_cidrs,omitempty"`
	auth.TokenSettings
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// clone returns a deep copy of r.
func (r *Role) clone() *Role {
	c := *r
	c.SecretIDBoundCIDRs = slices.Clone(r.SecretIDBoundCIDRs)
	c.Policies = slices.Clone(r.Policies)
	return &c
}

// roleRecord is what is stored for a role.
type roleRecord struct {
	Role
	// UID names this incarnation of the role. Secret_ids record it, so
	// those of a deleted role never work for a new role of the same name,
	// even if their cleanup was interrupted.
	UID string `json:"uid"`
}

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Options configure a Service. Zero values mean defaults.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service manages roles and secret_ids and checks logins. It is safe for
// concurrent use; all its state is in the store.
type Service struct {
	store Store
	now   func() time.Time
}

// New returns a Service over store.
func New(store Store, opts Options) *Service {
	s := &Service{store: store, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func roleKey(name string) string          { return rolePrefix + name }
func roleIDKey(roleID string) string      { return roleIDPrefix + digest(roleID) }
func secretKey(role, sum string) string   { return secretPrefix + role + "/" + sum }
func accessorKey(role, acc string) string { return accessorPrefix + role + "/" + acc }

func readJSON(get func(string) ([]byte, error), key string, v any) error {
	raw, err := get(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

func putJSON(tx storage.Tx, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(key, raw)
}

// readRole returns the stored role, or ErrNotFound.
func readRole(get func(string) ([]byte, error), name string) (*roleRecord, error) {
	var r roleRecord
	err := readJSON(get, roleKey(name), &r)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// PutRole creates a role, generating its role_id, or replaces the
// settings of an existing one, keeping its role_id. in.RoleID must be
// empty or the role's current role_id; CreatedAt and UpdatedAt are
// ignored. CIDR blocks are stored in canonical form. Errors are
// *auth.InputError for bad input, or storage errors.
func (s *Service) PutRole(ctx context.Context, in Role) (*Role, error) {
	if err := ValidateRoleName(in.Name); err != nil {
		return nil, err
	}
	switch {
	case in.SecretIDTTL < 0:
		return nil, invalid("secret_id_ttl", "must not be negative")
	case in.SecretIDNumUses < 0:
		return nil, invalid("secret_id_num_uses", "must not be negative")
	}
	cidrs, err := ParseCIDRs("secret_id_bound_cidrs", in.SecretIDBoundCIDRs)
	if err != nil {
		return nil, err
	}
	if err := in.TokenSettings.Validate(); err != nil {
		return nil, invalid("token", "%s", err.Error())
	}
	roleID, err := newRoleID()
	if err != nil {
		return nil, err
	}
	uid, err := randomHex(12)
	if err != nil {
		return nil, err
	}
	var out *Role
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		now := s.now().UTC()
		r, err := readRole(tx.Get, in.Name)
		switch {
		case errors.Is(err, ErrNotFound):
			if in.RoleID != "" {
				return invalid("role_id", "is generated; leave it empty when creating a role")
			}
			r = &roleRecord{Role: Role{Name: in.Name, RoleID: roleID, CreatedAt: now}, UID: uid}
			if err := tx.Put(roleIDKey(roleID), []byte(in.Name)); err != nil {
				return err
			}
		case err != nil:
			return err
		case in.RoleID != "" && in.RoleID != r.RoleID:
			return invalid("role_id", "cannot be changed")
		}
		r.SecretIDTTL = in.SecretIDTTL
		r.SecretIDNumUses = in.SecretIDNumUses
		r.SecretIDBoundCIDRs = cidrStrings(cidrs)
		r.TokenSettings = in.TokenSettings
		r.Policies = slices.Clone(in.Policies)
		r.UpdatedAt = now
		if err := putJSON(tx, roleKey(r.Name), r); err != nil {
			return err
		}
		out = r.Role.clone()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRole returns a role, or ErrNotFound.
func (s *Service) GetRole(ctx context.Context, name string) (*Role, error) {
	if err := ValidateRoleName(name); err != nil {
		return nil, err
	}
	r, err := readRole(func(k string) ([]byte, error) { return s.store.Get(ctx, k) }, name)
	if err != nil {
		return nil, err
	}
	return &r.Role, nil
}

// ListRoles returns every role name in byte order (never nil).
func (s *Service) ListRoles(ctx context.Context) ([]string, error) {
	names := []string{}
	err := s.scan(ctx, rolePrefix, func(keys []string) error {
		for _, k := range keys {
			names = append(names, strings.TrimPrefix(k, rolePrefix))
		}
		return nil
	})
	return names, err
}

// scan calls fn with successive pages of the keys under prefix.
func (s *Service) scan(ctx context.Context, prefix string, fn func([]string) error) error {
	after := ""
	for {
		keys, err := s.store.List(ctx, prefix, after, pageSize)
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
			after = keys[len(keys)-1]
		}
		if len(keys) < pageSize {
			return nil
		}
	}
}

// DeleteRole removes a role and its secret_ids, or returns ErrNotFound.
// The role and its role_id go first, in one transaction, so no login
// succeeds once that commits; the secret_ids follow page by page. If that
// cleanup fails, DeleteRole returns the error; the remaining secret_ids
// stay unusable (they name a role incarnation that no longer exists) and
// TidyExpired removes them. A role created again under the same name
// meanwhile keeps its own secret_ids.
func (s *Service) DeleteRole(ctx context.Context, name string) error {
	if err := ValidateRoleName(name); err != nil {
		return err
	}
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		r, err := readRole(tx.Get, name)
		if err != nil {
			return err
		}
		if err := tx.Delete(roleIDKey(r.RoleID)); err != nil {
			return err
		}
		return tx.Delete(roleKey(name))
	})
	if err != nil {
		return err
	}
	if _, err := s.sweep(ctx, secretPrefix+name+"/", orphaned); err != nil {
		return fmt.Errorf("role deleted; removing its secret_ids: %w", err)
	}
	return nil
}
