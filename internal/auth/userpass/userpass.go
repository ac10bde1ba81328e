// Package userpass authenticates people with a username, a password and,
// once they enrol an authenticator app, a TOTP code.
//
// Passwords are stored only as argon2id hashes. TOTP secrets are stored as
// they are, because checking a code needs them; like every record they are
// encrypted by the barrier. Neither ever leaves the package: User, the view
// callers get, has no field for them.
//
// Consecutive failed logins (a wrong password or a wrong, missing or
// replayed code) lock an account for a while. The count and the lock live
// in the user's record, written in the same transaction that decides the
// login, so concurrent attempts cannot race past the limit and a restart
// does not reset it.
package userpass

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const userPrefix = "auth/userpass/u/" // + username -> record

// Defaults for Options.
const (
	DefaultMaxFailures     = 5
	DefaultLockoutDuration = 15 * time.Minute
)

// authError is a login failure: its message is what the caller may be
// told, and it matches auth.ErrUnauthenticated.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return auth.ErrUnauthenticated }

var (
	// ErrNotFound means no user has that name. Login never returns it.
	ErrNotFound = errors.New("user not found")

	// ErrInvalidCredentials is Login's answer to an unknown user, a wrong
	// password, and a wrong, missing or replayed TOTP code alike, so that
	// it tells an attacker neither which users exist nor whether a guessed
	// password was right. It matches auth.ErrUnauthenticated.
	ErrInvalidCredentials error = &authError{"invalid username or password"}

	// ErrLocked is matched (errors.Is) by the *LockedError Login returns
	// while an account is locked. It matches auth.ErrUnauthenticated.
	ErrLocked error = &authError{"account is locked"}

	// ErrNoPendingTOTP is returned by ConfirmTOTP when EnrollTOTP has not
	// been called since the last confirmation.
	ErrNoPendingTOTP = errors.New("no pending TOTP enrolment; enrol first")

	// ErrInvalidTOTPCode is returned by ConfirmTOTP for a code that does
	// not match the pending secret.
	ErrInvalidTOTPCode = errors.New("invalid TOTP code")
)

// LockedError is returned by Login for a locked account, whatever the
// password: the lock is on the account, not on wrong guesses. It matches
// ErrLocked and auth.ErrUnauthenticated. Telling the caller that the
// account is locked does reveal that it exists; that is the price of a
// lockout people can understand.
type LockedError struct {
	Until      time.Time     // when the lock expires
	RetryAfter time.Duration // Until minus now, rounded up to a second
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("account is locked; try again in %s", e.RetryAfter)
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Unwrap returns auth.ErrUnauthenticated.
func (e *LockedError) Unwrap() error { return auth.ErrUnauthenticated }

// User is a user as callers see it: never the password hash or a TOTP
// secret.
type User struct {
	Username string `json:"username"`
	// MFARequired makes a valid TOTP code mandatory at login once the user
	// has enrolled. Until then the user can still log in with the password
	// alone, to reach the enrolment endpoints, but the login carries
	// MFA=false, so policies that demand MFA still refuse.
	MFARequired  bool `json:"mfa_required"`
	TOTPEnrolled bool `json:"totp_enrolled"`
	TOTPPending  bool `json:"totp_pending,omitempty"` // EnrollTOTP was called; ConfirmTOTP not yet
	auth.TokenSettings
	// FailedLogins counts consecutive failed logins since the last
	// success, unlock or lockout.
	FailedLogins int `json:"failed_logins"`
	// LockedUntil is set while the account is locked.
	LockedUntil *time.Time `json:"locked_until,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// record is what is stored for a user.
type record struct {
	Username     string             `json:"username"`
	PasswordHash string             `json:"password_hash"` // argon2id PHC string
	MFARequired  bool               `json:"mfa_required"`
	TOTPSecret   string             `json:"totp_secret,omitempty"`         // base32; "" when not enrolled
	PendingTOTP  string             `json:"pending_totp_secret,omitempty"` // base32, until ConfirmTOTP
	LastTOTPStep int64              `json:"last_totp_step,omitempty"`      // time step of the last code accepted
	Token        auth.TokenSettings `json:"token"`
	FailedLogins int                `json:"failed_logins,omitempty"`
	LockedUntil  *time.Time         `json:"locked_until,omitempty"`
	CreatedAt    time.Time          `json:"created_at"`
	UpdatedAt    time.Time          `json:"updated_at"`
}

// lockedAt returns the lock in force at now, or nil.
func (r *record) lockedAt(now time.Time) *LockedError {
	if r.LockedUntil == nil || !now.Before(*r.LockedUntil) {
		return nil
	}
	wait := r.LockedUntil.Sub(now)
	if rounded := wait.Truncate(time.Second); rounded < wait {
		wait = rounded + time.Second
	}
	return &LockedError{Until: *r.LockedUntil, RetryAfter: wait}
}

// view returns the caller-visible form of r at now.
func (r *record) view(now time.Time) *User {
	u := &User{
		Username:     r.Username,
		MFARequired:  r.MFARequired,
		TOTPEnrolled: r.TOTPSecret != "",
		TOTPPending:  r.PendingTOTP != "",
		TokenSettings: auth.TokenSettings{
			Policies: slices.Clone(r.Token.Policies), TTL: r.Token.TTL, MaxTTL: r.Token.MaxTTL,
			Period: r.Token.Period, NumUses: r.Token.NumUses,
		},
		FailedLogins: r.FailedLogins,
		CreatedAt:    r.CreatedAt,
		UpdatedAt:    r.UpdatedAt,
	}
	if r.lockedAt(now) != nil {
		t := *r.LockedUntil
		u.LockedUntil = &t
	}
	return u
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
	// MaxFailures is how many consecutive failed logins lock an account
	// (default 5). A negative value disables lockout, for deployments that
	// throttle elsewhere.
	MaxFailures int
	// LockoutDuration is how long a lock lasts (default 15 minutes).
	LockoutDuration time.Duration
	// Argon2 are the cost parameters of new password hashes. New panics if
	// they fail Argon2Params.Validate; check them first when they come
	// from configuration.
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds the argon2 computations running at once
	// (default GOMAXPROCS), since each holds Argon2.Memory; further logins
	// wait their turn, or give up when their context ends.
	MaxConcurrentHashes int
}

// Service manages users and checks their logins. It is safe for
// concurrent use.
type Service struct {
	store       Store
	now         func() time.Time
	maxFailures int // < 0: no lockout
	lockout     time.Duration
	argon2      Argon2Params  // defaults filled in
	hashSlots   chan struct{} // a token per running argon2 computation
}

// New returns a Service over store. It panics if opts.Argon2 is out of
// bounds.
func New(store Store, opts Options) *Service {
	if err := opts.Argon2.Validate(); err != nil {
		panic("userpass: " + err.Error())
	}
	s := &Service{
		store:       store,
		now:         opts.Now,
		maxFailures: opts.MaxFailures,
		lockout:     opts.LockoutDuration,
		argon2:      opts.Argon2.withDefaults(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxFailures == 0 {
		s.maxFailures = DefaultMaxFailures
	}
	if s.lockout <= 0 {
		s.lockout = DefaultLockoutDuration
	}
	n := opts.MaxConcurrentHashes
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	s.hashSlots = make(chan struct{}, n)
	return s
}

// withHashSlot runs fn once an argon2 slot is free, or returns ctx's error.
func (s *Service) withHashSlot(ctx context.Context, fn func()) error {
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashSlots }()
	fn()
	return nil
}

// hash returns a new argon2id hash of password.
func (s *Service) hash(ctx context.Context, password string) (string, error) {
	var (
		h   string
		err error
	)
	if serr := s.withHashSlot(ctx, func() { h, err = hashPassword(s.argon2, password) }); serr != nil {
		return "", serr
	}
	return h, err
}

func userKey(name string) string { return userPrefix + name }

func readRecord(get func(string) ([]byte, error), name string) (*record, error) {
	raw, err := get(userKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode user record: %w", err)
	}
	return &r, nil
}

func writeRecord(tx storage.Tx, r *record) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(userKey(r.Username), raw)
}

func (s *Service) read(ctx context.Context, name string) (*record, error) {
	return readRecord(func(k string) ([]byte, error) { return s.store.Get(ctx, k) }, name)
}

// update runs fn on the record of an existing user in one transaction and
// stores the result; it returns the user as stored.
func (s *Service) update(ctx context.Context, name string, fn func(*record, time.Time) error) (*User, error) {
	if err := ValidateUsername(name); err != nil {
		return nil, err
	}
	var out *User
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		r, err := readRecord(tx.Get, name)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		if err := fn(r, now); err != nil {
			return err
		}
		r.UpdatedAt = now
		if err := writeRecord(tx, r); err != nil {
			return err
		}
		out = r.view(now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UserInput creates or changes a user. Nil fields keep their current
// values (or take the zero value on create).
type UserInput struct {
	Username string
	// Password is required when creating a user: 8 to 1024 bytes of UTF-8,
	// at least 8 characters.
	Password      *string
	MFARequired   *bool
	TokenSettings *auth.TokenSettings
}

// PutUser creates the user or updates it. Errors are *auth.InputError for
// bad input, or storage errors.
func (s *Service) PutUser(ctx context.Context, in UserInput) (*User, error) {
	if err := ValidateUsername(in.Username); err != nil {
		return nil, err
	}
	if in.Password != nil {
		if err := validatePassword(*in.Password); err != nil {
			return nil, err
		}
	}
	if in.TokenSettings != nil {
		if err := in.TokenSettings.Validate(); err != nil {
			return nil, invalid("token", "%s", err.Error())
		}
	}
	var pwHash string
	if in.Password != nil {
		// Hash before the transaction: argon2 is slow on purpose, and the
		// store may serialize writers.
		var err error
		if pwHash, err = s.hash(ctx, *in.Password); err != nil {
			return nil, err
		}
	}
	var out *User
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		now := s.now().UTC()
		r, err := readRecord(tx.Get, in.Username)
		switch {
		case errors.Is(err, ErrNotFound):
			if pwHash == "" {
				return invalid("password", "is required when creating a user")
			}
			r = &record{Username: in.Username, CreatedAt: now}
		case err != nil:
			return err
		}
		if pwHash != "" {
			r.PasswordHash = pwHash
		}
		if in.MFARequired != nil {
			r.MFARequired = *in.MFARequired
		}
		if in.TokenSettings != nil {
			r.Token = *in.TokenSettings
			r.Token.Policies = slices.Clone(in.TokenSettings.Policies)
		}
		r.UpdatedAt = now
		if err := writeRecord(tx, r); err != nil {
			return err
		}
		out = r.view(now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetUser returns a user, or ErrNotFound.
func (s *Service) GetUser(ctx context.Context, username string) (*User, error) {
	if err := ValidateUsername(username); err != nil {
		return nil, err
	}
	r, err := s.read(ctx, username)
	if err != nil {
		return nil, err
	}
	return r.view(s.now()), nil
}

// ListUsers returns every username in byte order (never nil).
func (s *Service) ListUsers(ctx context.Context) ([]string, error) {
	const page = 1000
	names, after := []string{}, ""
	for {
		keys, err := s.store.List(ctx, userPrefix, after, page)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			names = append(names, strings.TrimPrefix(k, userPrefix))
		}
		if len(keys) < page {
			return names, nil
		}
		after = keys[len(keys)-1]
	}
}

// DeleteUser removes a user, or returns ErrNotFound. Tokens already issued
// to the user are the token service's to revoke.
func (s *Service) DeleteUser(ctx context.Context, username string) error {
	if err := ValidateUsername(username); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := readRecord(tx.Get, username); err != nil {
			return err
		}
		return tx.Delete(userKey(username))
	})
}

// SetPassword replaces a user's password. It leaves a lockout in force:
// Unlock lifts it.
func (s *Service) SetPassword(ctx context.Context, username, password string) error {
	if err := ValidateUsername(username); err != nil {
		return err
	}
	if err := validatePassword(password); err != nil {
		return err
	}
	h, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	_, err = s.update(ctx, username, func(r *record, _ time.Time) error {
		r.PasswordHash = h
		return nil
	})
	return err
}

// Unlock lifts a lockout and clears the failure count.
func (s *Service) Unlock(ctx context.Context, username string) error {
	_, err := s.update(ctx, username, func(r *record, _ time.Time) error {
		r.FailedLogins, r.LockedUntil = 0, nil
		return nil
	})
	return err
}
