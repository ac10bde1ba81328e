package approle

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// SecretIDPrefix starts every secret_id, so leak scanners can recognise one.
const SecretIDPrefix = "cofsid_"

const (
	secretIDBodyLen = 64 // lowercase hex of 32 random bytes
	secretIDSumLen  = 8  // lowercase hex of the body's CRC-32
	// SecretIDLen is the length of a secret_id.
	SecretIDLen = len(SecretIDPrefix) + secretIDBodyLen + secretIDSumLen
	accessorLen = 32 // lowercase hex of 16 random bytes
)

// ErrMalformedSecretID means a string is not shaped like a secret_id or its
// checksum does not match. It says nothing about whether one exists.
var ErrMalformedSecretID = errors.New("not a well-formed secret_id")

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func secretIDChecksum(body string) string {
	return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(body)))
}

// newSecretID returns a new secret_id: the prefix, 256 random bits in hex
// and a CRC-32 of them.
func newSecretID() (string, error) {
	body, err := randomHex(secretIDBodyLen / 2)
	if err != nil {
		return "", err
	}
	return SecretIDPrefix + body + secretIDChecksum(body), nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckSecretID reports whether s is shaped like a secret_id with a valid
// checksum, or returns ErrMalformedSecretID. The checksum lets Login and
// leak scanners discard typos and look-alikes without a lookup; it is not
// a secret and proves nothing.
func CheckSecretID(s string) error {
	body, ok := strings.CutPrefix(s, SecretIDPrefix)
	if !ok || len(s) != SecretIDLen || !isLowerHex(body) {
		return ErrMalformedSecretID
	}
	if secretIDChecksum(body[:secretIDBodyLen]) != body[secretIDBodyLen:] {
		return ErrMalformedSecretID
	}
	return nil
}

// newRoleID returns a random (version 4) UUID. A role_id names a role the
// way a username names a person: it is half of the credential, readable by
// admins, and useless without a secret_id.
func newRoleID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func newAccessor() (string, error) { return randomHex(accessorLen / 2) }

func isAccessor(s string) bool { return len(s) == accessorLen && isLowerHex(s) }

// digest is the hex SHA-256 under which a role_id or secret_id is
// indexed. A plain hash suffices because both carry at least 122 random
// bits: nobody can find an input for a digest read from storage, so the
// salt, key or slow hash that protect low-entropy passwords would add
// nothing. It also keeps the credentials out of storage key names, which
// the barrier does not encrypt.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
