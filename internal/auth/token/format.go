package token

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"strings"
)

// Prefix starts every Coffer token, so leak scanners can recognise one.
const Prefix = "cof_"

const (
	bodyLen     = 43 // base62 of 32 random bytes
	checksumLen = 6  // base62 of a CRC-32 of the body
	// Len is the length of a token.
	Len = len(Prefix) + bodyLen + checksumLen
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrMalformed means a string is not shaped like a Coffer token or its
// checksum does not match.
var ErrMalformed = errors.New("not a well-formed coffer token")

func encode62(b []byte, width int) string {
	n := new(big.Int).SetBytes(b)
	out := make([]byte, width)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := width - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62[mod.Int64()]
	}
	return string(out)
}

func checksum(body string) string {
	var out [checksumLen]byte
	return string(checksumTo(&out, body))
}

// checksumTo writes the base62 CRC-32 of body into out, without
// allocating: every request checks its token's checksum.
func checksumTo(out *[checksumLen]byte, body string) []byte {
	var buf [bodyLen]byte
	c := uint64(crc32.ChecksumIEEE(buf[:copy(buf[:], body)]))
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = base62[c%62]
		c /= 62
	}
	return out[:]
}

// Generate returns a new random token: "cof_", 43 base62 characters of
// entropy (256 bits) and a 6-character checksum.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	body := encode62(b, bodyLen)
	return Prefix + body + checksum(body), nil
}

// Check reports whether s is shaped like a Coffer token with a valid
// checksum. It says nothing about whether the token exists.
func Check(s string) error {
	if len(s) != Len || !strings.HasPrefix(s, Prefix) {
		return ErrMalformed
	}
	for i := len(Prefix); i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return ErrMalformed
		}
	}
	body := s[len(Prefix) : len(Prefix)+bodyLen]
	var sum [checksumLen]byte
	if string(checksumTo(&sum, body)) != s[len(Prefix)+bodyLen:] {
		return ErrMalformed
	}
	return nil
}
