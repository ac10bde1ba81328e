package userpass

import (
	"context"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: those every authenticator app supports (RFC 6238 with
// SHA-1, 6 digits, 30-second steps) and a 160-bit secret (RFC 4226's
// recommended length).
const (
	totpPeriod     = 30 // seconds
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20 // bytes
)

func totpOpts() totp.ValidateOpts {
	return totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}
}

// matchTOTP reports whether code is valid for secret at now, allowing one
// step of clock skew either way, and returns the time step it belongs to
// (the latest, should it match more than one). All three steps are always
// checked, so timing does not tell which one matched.
func matchTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	if len(code) != int(totpDigits) {
		return 0, false
	}
	cur := now.Unix() / totpPeriod
	for st := cur - 1; st <= cur+1; st++ {
		valid, err := totp.ValidateCustom(code, secret, time.Unix(st*totpPeriod, 0), totpOpts())
		if err == nil && valid {
			step, ok = st, true
		}
	}
	return step, ok
}

// EnrollTOTP starts (or restarts) TOTP enrolment: it makes a new secret,
// keeps it as pending, and returns it in base32 and as an otpauth:// URL
// (for a QR code) labelled issuer:username; issuer "" means "Coffer". The
// pending secret becomes active only when ConfirmTOTP sees a valid code
// from it; until then a secret already enrolled stays in force, so this
// also serves to move to a new device. The caller must show the secret
// only to the user and must not log it.
func (s *Service) EnrollTOTP(ctx context.Context, username, issuer string) (secret, otpauthURL string, err error) {
	if err := ValidateUsername(username); err != nil {
		return "", "", err
	}
	if issuer == "" {
		issuer = DefaultIssuer
	}
	if err := validateIssuer(issuer); err != nil {
		return "", "", err
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: username,
		Period:      totpPeriod,
		SecretSize:  totpSecretSize,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", "", fmt.Errorf("generate TOTP secret: %w", err)
	}
	_, err = s.update(ctx, username, func(r *record, _ time.Time) error {
		r.PendingTOTP = key.Secret()
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return key.Secret(), key.URL(), nil
}

// ConfirmTOTP activates the pending secret if code is valid for it, and
// marks the code used so it cannot also serve for a login. Errors:
// ErrNoPendingTOTP, ErrInvalidTOTPCode, ErrNotFound. A wrong code here does
// not count towards lockout: the caller is already authenticated and holds
// the secret.
func (s *Service) ConfirmTOTP(ctx context.Context, username, code string) error {
	_, err := s.update(ctx, username, func(r *record, now time.Time) error {
		if r.PendingTOTP == "" {
			return ErrNoPendingTOTP
		}
		step, ok := matchTOTP(r.PendingTOTP, code, now)
		if !ok {
			return ErrInvalidTOTPCode
		}
		r.TOTPSecret, r.PendingTOTP = r.PendingTOTP, ""
		r.LastTOTPStep = max(r.LastTOTPStep, step)
		return nil
	})
	return err
}

// DisableTOTP removes the user's TOTP secret and any pending enrolment.
// Disabling when nothing is enrolled is not an error. If the user has
// MFARequired, later logins carry MFA=false until they enrol again.
func (s *Service) DisableTOTP(ctx context.Context, username string) error {
	_, err := s.update(ctx, username, func(r *record, _ time.Time) error {
		r.TOTPSecret, r.PendingTOTP = "", ""
		return nil
	})
	return err
}
