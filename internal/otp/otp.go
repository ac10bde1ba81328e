// Package otp protects a generated root token in transit: the operator who
// starts a generate-root attempt gets a one-time pad, the server answers
// the quorum with the token XORed with that pad, and only the operator can
// decode it. Key holders who present their shares, and anything that logs
// the answer, see only the encoded form. Vault's generate-root works the
// same way.
package otp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// Size is the pad length in bytes; it bounds the length of what Encode can
// protect (Coffer tokens are at most 64 bytes).
const Size = 64

// ErrMalformed means an encoded value or a pad is not what this package made.
var ErrMalformed = errors.New("malformed one-time pad or encoded token")

var enc = base64.RawURLEncoding

// New returns a fresh pad, printable.
func New() (string, error) {
	pad := make([]byte, Size)
	if _, err := rand.Read(pad); err != nil {
		return "", err
	}
	return enc.EncodeToString(pad), nil
}

func decodePad(pad string) ([]byte, error) {
	p, err := enc.DecodeString(pad)
	if err != nil || len(p) != Size {
		return nil, ErrMalformed
	}
	return p, nil
}

// Encode returns secret XORed with pad, printable.
func Encode(secret, pad string) (string, error) {
	p, err := decodePad(pad)
	if err != nil {
		return "", err
	}
	if len(secret) > Size {
		return "", fmt.Errorf("otp: secret longer than %d bytes", Size)
	}
	out := make([]byte, len(secret))
	subtle.XORBytes(out, []byte(secret), p[:len(secret)])
	return enc.EncodeToString(out), nil
}

// Decode reverses Encode.
func Decode(encoded, pad string) (string, error) {
	p, err := decodePad(pad)
	if err != nil {
		return "", err
	}
	e, err := enc.DecodeString(encoded)
	if err != nil || len(e) > Size {
		return "", ErrMalformed
	}
	out := make([]byte, len(e))
	subtle.XORBytes(out, e, p[:len(e)])
	return string(out), nil
}
