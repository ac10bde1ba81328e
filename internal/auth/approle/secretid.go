package approle

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
)

// SecretIDInfo describes a secret_id without revealing it.
type SecretIDInfo struct {
	Accessor string            `json:"accessor"`
	Meta     map[string]string `json:"metadata,omitempty"`
	// CIDRs narrow the role's secret_id_bound_cidrs for this secret_id.
	CIDRs     []string   `json:"bound_cidrs,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// UsesLeft is how many more logins the secret_id serves; 0 means
	// unlimited (a secret_id whose last use is spent is deleted).
	UsesLeft int `json:"uses_left"`
}

// secretRecord is what is stored for a secret_id, under its digest.
type secretRecord struct {
	SecretIDInfo
	RoleUID string `json:"role_uid"` // the roleRecord.UID it was issued under
}

func (r *secretRecord) expired(now time.Time) bool {
	return r.ExpiresAt != nil && !now.Before(*r.ExpiresAt)
}

// info returns a copy of r's public part.
func (r *secretRecord) info() SecretIDInfo {
	i := r.SecretIDInfo
	i.Meta = maps.Clone(r.Meta)
	i.CIDRs = slices.Clone(r.CIDRs)
	return i
}

func deleteSecret(tx storage.Tx, role, sum, accessor string) error {
	if err := tx.Delete(secretKey(role, sum)); err != nil {
		return err
	}
	return tx.Delete(accessorKey(role, accessor))
}

// GenerateSecretID issues a secret_id for role, with metadata that logins
// copy into their tokens and CIDR blocks that must lie within the role's
// secret_id_bound_cidrs. It returns the secret_id, which is stored only
// as a digest and cannot be shown again, its accessor, and its expiry
// (nil if none). Errors: ErrNotFound, *auth.InputError, storage errors.
func (s *Service) GenerateSecretID(ctx context.Context, role string, meta map[string]string, cidrs []string) (secretID, accessor string, expiresAt *time.Time, err error) {
	if err := ValidateRoleName(role); err != nil {
		return "", "", nil, err
	}
	if err := validateMeta(meta); err != nil {
		return "", "", nil, err
	}
	narrow, err := ParseCIDRs("bound_cidrs", cidrs)
	if err != nil {
		return "", "", nil, err
	}
	if secretID, err = newSecretID(); err != nil {
		return "", "", nil, err
	}
	if accessor, err = newAccessor(); err != nil {
		return "", "", nil, err
	}
	sum := digest(secretID)
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		r, err := readRole(tx.Get, role)
		if err != nil {
			return err
		}
		roleCIDRs, err := ParseCIDRs("secret_id_bound_cidrs", r.SecretIDBoundCIDRs)
		if err != nil {
			return err
		}
		if !within(roleCIDRs, narrow) {
			return invalid("bound_cidrs", "must lie within the role's secret_id_bound_cidrs")
		}
		now := s.now().UTC()
		rec := &secretRecord{
			SecretIDInfo: SecretIDInfo{Accessor: accessor, Meta: maps.Clone(meta), CIDRs: cidrStrings(narrow),
				CreatedAt: now, UsesLeft: r.SecretIDNumUses},
			RoleUID: r.UID,
		}
		expiresAt = nil
		if r.SecretIDTTL > 0 {
			t := now.Add(time.Duration(r.SecretIDTTL))
			rec.ExpiresAt, expiresAt = &t, &t
		}
		if err := putJSON(tx, secretKey(role, sum), rec); err != nil {
			return err
		}
		return tx.Put(accessorKey(role, accessor), []byte(sum))
	})
	if err != nil {
		return "", "", nil, err
	}
	return secretID, accessor, expiresAt, nil
}

// ListSecretIDAccessors describes the role's live secret_ids, oldest first
// (never nil). Expired ones, awaiting TidyExpired, are left out. Errors:
// ErrNotFound, storage errors.
func (s *Service) ListSecretIDAccessors(ctx context.Context, role string) ([]SecretIDInfo, error) {
	if err := ValidateRoleName(role); err != nil {
		return nil, err
	}
	get := func(k string) ([]byte, error) { return s.store.Get(ctx, k) }
	r, err := readRole(get, role)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []SecretIDInfo{}
	err = s.scan(ctx, secretPrefix+role+"/", func(keys []string) error {
		for _, k := range keys {
			var rec secretRecord
			err := readJSON(get, k, &rec)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				continue // used up or destroyed meanwhile
			case err != nil:
				return err
			case rec.RoleUID != r.UID || rec.expired(now):
				continue
			}
			out = append(out, rec.info())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b SecretIDInfo) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Accessor, b.Accessor)
	})
	return out, nil
}

// DestroySecretID deletes the role's secret_id with that accessor, or
// returns ErrSecretIDNotFound.
func (s *Service) DestroySecretID(ctx context.Context, role, accessor string) error {
	if err := ValidateRoleName(role); err != nil {
		return err
	}
	if !isAccessor(accessor) {
		return invalid("accessor", "must be %d lowercase hex characters", accessorLen)
	}
	return s.store.Update(ctx, func(tx storage.Tx) error {
		sum, err := tx.Get(accessorKey(role, accessor))
		if errors.Is(err, storage.ErrNotFound) {
			return ErrSecretIDNotFound
		}
		if err != nil {
			return err
		}
		return deleteSecret(tx, role, string(sum), accessor)
	})
}

// TidyExpired removes expired secret_ids, and those a deleted role left
// behind, a page of keys per transaction so it never holds the store for
// long. It returns how many it removed, also when it stops on an error.
func (s *Service) TidyExpired(ctx context.Context) (int, error) {
	return s.sweep(ctx, secretPrefix, func(rec *secretRecord, role *roleRecord, now time.Time) bool {
		return rec.expired(now) || orphaned(rec, role, now)
	})
}

// orphaned reports whether rec belongs to no existing role: its role is
// gone (role is nil) or was deleted and created again.
func orphaned(rec *secretRecord, role *roleRecord, _ time.Time) bool {
	return role == nil || role.UID != rec.RoleUID
}

// sweep deletes, page by page, the secret_ids under prefix for which drop
// returns true, deciding each in the transaction that deletes it.
func (s *Service) sweep(ctx context.Context, prefix string, drop func(rec *secretRecord, role *roleRecord, now time.Time) bool) (int, error) {
	n := 0
	err := s.scan(ctx, prefix, func(keys []string) error {
		removed := 0
		err := s.store.Update(ctx, func(tx storage.Tx) error {
			removed = 0
			now := s.now()
			roles := map[string]*roleRecord{} // name -> role, nil if gone
			for _, k := range keys {
				name, sum, ok := strings.Cut(strings.TrimPrefix(k, secretPrefix), "/")
				if !ok {
					continue
				}
				var rec secretRecord
				err := readJSON(tx.Get, k, &rec)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				role, seen := roles[name]
				if !seen {
					role, err = readRole(tx.Get, name)
					if err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					roles[name] = role
				}
				if !drop(&rec, role, now) {
					continue
				}
				if err := deleteSecret(tx, name, sum, rec.Accessor); err != nil {
					return err
				}
				removed++
			}
			return nil
		})
		if err != nil {
			return err
		}
		n += removed
		return nil
	})
	return n, err
}
