package userpass

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Method is the auth method name in logins.
const Method = "userpass"

// Login checks a username, a password and, when the user has enrolled
// TOTP, a code, and returns what the token service needs.
//
// The second factor: when the user has enrolled and MFARequired is set, a
// valid code is mandatory. When the user has enrolled without
// MFARequired, a code is optional, but one that is given must be valid.
// A valid code sets Login.MFA. A code is accepted for the current 30-second
// step and one step on either side, and only once: a code of a step at or
// before that of the last accepted code is refused. When MFARequired is set
// but the user has not enrolled, the password alone succeeds with MFA
// false and Meta["mfa_enrollment_required"] = "true", so the user can
// reach the enrolment endpoints and nothing else that demands MFA.
//
// Errors: ErrInvalidCredentials for an unknown user, a wrong password or a
// wrong, missing or replayed code; a *LockedError (matching ErrLocked) for
// a locked account, even with the right password. Both match
// auth.ErrUnauthenticated. Anything else is a storage or context error.
//
// An unknown user costs the same argon2 computation as a known one.
func (s *Service) Login(ctx context.Context, username, password, code string) (*auth.Login, error) {
	if ValidateUsername(username) != nil || len(password) > MaxPasswordLen {
		// No account can match, and the caller knows the input is malformed,
		// so skipping the hash tells nothing.
		return nil, ErrInvalidCredentials
	}
	r, err := s.read(ctx, username)
	if errors.Is(err, ErrNotFound) {
		// Spend what a real check would, so timing does not tell whether
		// the user exists.
		if err := s.withHashSlot(ctx, func() { derive(password, make([]byte, s.argon2.SaltLen), s.argon2) }); err != nil {
			return nil, err
		}
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	if lerr := r.lockedAt(s.now()); lerr != nil {
		return nil, lerr
	}

	// argon2 runs outside the transaction; the transaction then checks
	// that the hash it judged is still the stored one.
	var pwOK, stale bool
	var verr error
	if err := s.withHashSlot(ctx, func() { pwOK, stale, verr = verifyPassword(r.PasswordHash, password, s.argon2) }); err != nil {
		return nil, err
	}
	if verr != nil {
		return nil, verr
	}
	judged, rehash := r.PasswordHash, ""
	if pwOK && stale {
		if rehash, err = s.hash(ctx, password); err != nil {
			return nil, err
		}
	}

	var (
		login    *auth.Login
		loginErr error
	)
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		login, loginErr = nil, ErrInvalidCredentials
		r, err := readRecord(tx.Get, username)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		now := s.now().UTC()
		if lerr := r.lockedAt(now); lerr != nil {
			loginErr = lerr // locked by a concurrent attempt
			return nil
		}
		if r.PasswordHash != judged {
			return nil // the password changed while we hashed: our verdict is stale
		}
		ok, mfa, step := pwOK, false, int64(0)
		if ok && r.TOTPSecret != "" && (r.MFARequired || code != "") {
			step, mfa = matchTOTP(r.TOTPSecret, code, now)
			if !mfa || step <= r.LastTOTPStep {
				ok, mfa = false, false
			}
		}
		if !ok {
			loginErr = s.recordFailure(r, now)
			return writeRecord(tx, r)
		}
		changed := r.FailedLogins != 0 || r.LockedUntil != nil || mfa || rehash != ""
		r.FailedLogins, r.LockedUntil = 0, nil
		if mfa {
			r.LastTOTPStep = step
		}
		if rehash != "" {
			r.PasswordHash = rehash
		}
		login, loginErr = loginFor(r, mfa), nil
		if !changed {
			return nil
		}
		return writeRecord(tx, r)
	})
	if err != nil {
		return nil, err
	}
	return login, loginErr
}

// recordFailure counts a failed login on r and locks it when the count
// reaches the limit. It returns the error for the caller. The count
// restarts at the lock, so when the lock expires the user gets a full set
// of attempts and another set of failures locks again.
func (s *Service) recordFailure(r *record, now time.Time) error {
	r.FailedLogins++
	if s.maxFailures < 0 || r.FailedLogins < s.maxFailures {
		return ErrInvalidCredentials
	}
	until := now.Add(s.lockout).UTC()
	r.FailedLogins, r.LockedUntil = 0, &until
	return r.lockedAt(now)
}

func loginFor(r *record, mfa bool) *auth.Login {
	meta := map[string]string{"username": r.Username}
	if r.MFARequired && r.TOTPSecret == "" {
		meta["mfa_enrollment_required"] = "true"
	}
	tok := r.Token
	tok.Policies = slices.Clone(r.Token.Policies)
	return &auth.Login{
		Method:     Method,
		Name:       Method + "/" + r.Username,
		IdentityID: Method + ":" + r.Username,
		Meta:       meta,
		MFA:        mfa,
		Token:      tok,
	}
}
