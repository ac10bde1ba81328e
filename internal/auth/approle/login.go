package approle

import (
	"context"
	"crypto/subtle"
	"errors"
	"maps"
	"net/netip"
	"slices"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Login checks a role_id and secret_id presented from source and returns
// what the token service needs. source is the client's address; pass the
// zero Addr when it is unknown, which fails any CIDR binding.
//
// The secret_id must belong to the role, be unexpired, and source must lie
// within both the role's secret_id_bound_cidrs and the secret_id's own
// blocks. A successful login spends one use; the last use deletes the
// secret_id. Check and spend are one transaction, so a secret_id with n
// uses serves exactly n logins under any concurrency. An expired secret_id
// is deleted when presented.
//
// Every refusal is ErrInvalidCredentials, which matches
// auth.ErrUnauthenticated and does not tell which check failed, so an
// attacker learns neither which role_ids exist nor that a stolen secret_id
// is bound to other networks. Other errors come from storage or ctx.
//
// Credentials are found by their SHA-256 digest, so the lookup's timing
// depends only on a digest, which tells nothing about the credential; the
// role_id is then also compared in constant time.
func (s *Service) Login(ctx context.Context, roleID, secretID string, source netip.Addr) (*auth.Login, error) {
	if roleID == "" || len(roleID) > maxCredentialLen || CheckSecretID(secretID) != nil {
		return nil, ErrInvalidCredentials
	}
	ridKey, sum := roleIDKey(roleID), digest(secretID)
	var login *auth.Login
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		login = nil
		name, err := tx.Get(ridKey)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		role, err := readRole(tx.Get, string(name))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(role.RoleID), []byte(roleID)) != 1 {
			return nil
		}
		key := secretKey(role.Name, sum)
		var rec secretRecord
		err = readJSON(tx.Get, key, &rec)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if rec.RoleUID != role.UID {
			return nil // left behind by an earlier role of this name
		}
		if rec.expired(s.now()) {
			// Returning nil commits the delete; the caller still gets a refusal.
			return deleteSecret(tx, role.Name, sum, rec.Accessor)
		}
		if !allowed(role.SecretIDBoundCIDRs, source) || !allowed(rec.CIDRs, source) {
			return nil
		}
		switch {
		case rec.UsesLeft == 1:
			if err := deleteSecret(tx, role.Name, sum, rec.Accessor); err != nil {
				return err
			}
		case rec.UsesLeft > 1:
			rec.UsesLeft--
			if err := putJSON(tx, key, &rec); err != nil {
				return err
			}
		}
		login = loginFor(role, &rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if login == nil {
		return nil, ErrInvalidCredentials
	}
	return login, nil
}

func loginFor(role *roleRecord, rec *secretRecord) *auth.Login {
	meta := maps.Clone(rec.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaKeyRole] = role.Name
	tok := role.TokenSettings
	tok.Policies = slices.Clone(role.Policies)
	return &auth.Login{
		Method:     Method,
		Name:       Method + "/" + role.Name,
		IdentityID: Method + ":" + role.Name,
		Meta:       meta,
		Token:      tok,
	}
}
