package userpass

import (
	"fmt"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/internal/auth"
)

// Input limits.
const (
	MaxUsernameLen = 128  // bytes
	MinPasswordLen = 8    // characters
	MaxPasswordLen = 1024 // bytes
	MaxIssuerLen   = 64   // bytes
	DefaultIssuer  = "Coffer"
)

func invalid(field, format string, args ...any) error {
	return &auth.InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ValidateUsername checks a username: 1 to 128 characters from
// [a-z0-9._@-]. Usernames are lowercase so that two spellings never name
// two accounts.
func ValidateUsername(name string) error {
	if name == "" || len(name) > MaxUsernameLen {
		return invalid("username", "must be 1 to %d characters", MaxUsernameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-') {
			return invalid("username", "has a character outside [a-z0-9._@-] at offset %d", i)
		}
	}
	return nil
}

// validatePassword checks a new password's length and encoding. Its errors
// never quote the password.
func validatePassword(pw string) error {
	switch {
	case len(pw) > MaxPasswordLen:
		return invalid("password", "must be at most %d bytes", MaxPasswordLen)
	case !utf8.ValidString(pw):
		return invalid("password", "must be valid UTF-8")
	case utf8.RuneCountInString(pw) < MinPasswordLen:
		return invalid("password", "must be at least %d characters", MinPasswordLen)
	}
	return nil
}

// validateIssuer checks the issuer shown by authenticator apps. A colon
// would split the otpauth label in the wrong place.
func validateIssuer(issuer string) error {
	if issuer == "" || len(issuer) > MaxIssuerLen {
		return invalid("issuer", "must be 1 to %d characters", MaxIssuerLen)
	}
	for _, r := range issuer {
		if r == ':' || r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return invalid("issuer", "must be printable text without ':'")
		}
	}
	return nil
}
