package userpass

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Defaults for Argon2Params: OWASP's recommended minimum for argon2id
// (19 MiB of memory, 2 passes, 1 lane), a 32-byte key and a 16-byte salt.
const (
	DefaultArgon2Time    = 2
	DefaultArgon2Memory  = 19 * 1024 // KiB
	DefaultArgon2Threads = 1
	DefaultArgon2KeyLen  = 32
	DefaultArgon2SaltLen = 16
)

// Bounds on argon2id parameters, for new hashes and for stored ones. The
// upper bounds keep a corrupted or hostile record from making one login
// allocate gigabytes or run for minutes.
const (
	minArgon2Memory  = 8       // KiB per lane, argon2's own minimum
	maxArgon2Memory  = 1 << 21 // KiB: 2 GiB
	maxArgon2Time    = 64      // passes
	minArgon2KeyLen  = 16      // bytes
	maxArgon2KeyLen  = 128     // bytes
	minArgon2SaltLen = 8       // bytes
	maxArgon2SaltLen = 64      // bytes
	argon2Prefix     = "$argon2id$v=19$"
)

// Argon2Params are the argon2id cost parameters of new password hashes.
// Zero fields take the defaults above. A stored hash records its own
// parameters, so changing them never locks anybody out: the old hash still
// verifies, and the next successful login replaces it with one made with
// the current parameters.
type Argon2Params struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8  // lanes
	KeyLen  uint32 // bytes of hash
	SaltLen uint32 // bytes of random salt
}

// withDefaults fills zero fields with the defaults.
func (p Argon2Params) withDefaults() Argon2Params {
	if p.Time == 0 {
		p.Time = DefaultArgon2Time
	}
	if p.Memory == 0 {
		p.Memory = DefaultArgon2Memory
	}
	if p.Threads == 0 {
		p.Threads = DefaultArgon2Threads
	}
	if p.KeyLen == 0 {
		p.KeyLen = DefaultArgon2KeyLen
	}
	if p.SaltLen == 0 {
		p.SaltLen = DefaultArgon2SaltLen
	}
	return p
}

// Validate checks the parameters, after filling zero fields with the
// defaults, against the bounds every stored hash must also meet.
func (p Argon2Params) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Time > maxArgon2Time:
		return fmt.Errorf("argon2 time must be at most %d", maxArgon2Time)
	case p.Memory < minArgon2Memory*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("argon2 memory must be between %d KiB per thread and %d KiB", minArgon2Memory, maxArgon2Memory)
	case p.KeyLen < minArgon2KeyLen || p.KeyLen > maxArgon2KeyLen:
		return fmt.Errorf("argon2 key length must be between %d and %d bytes", minArgon2KeyLen, maxArgon2KeyLen)
	case p.SaltLen < minArgon2SaltLen || p.SaltLen > maxArgon2SaltLen:
		return fmt.Errorf("argon2 salt length must be between %d and %d bytes", minArgon2SaltLen, maxArgon2SaltLen)
	}
	return nil
}

// errBadHash means a stored password hash is not a well-formed argon2id
// PHC string within the bounds. It never quotes the hash.
var errBadHash = errors.New("stored password hash is malformed")

// passwordHash is a parsed argon2id PHC string:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, with salt and
// hash in unpadded standard base64.
type passwordHash struct {
	params Argon2Params // KeyLen and SaltLen are those of key and salt
	salt   []byte
	key    []byte
}

// String returns the PHC encoding of h.
func (h *passwordHash) String() string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", argon2Prefix,
		h.params.Memory, h.params.Time, h.params.Threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// parseHash parses a PHC string. It accepts only the canonical encoding
// String produces, with parameters inside the bounds of Validate.
func parseHash(s string) (*passwordHash, error) {
	rest, ok := strings.CutPrefix(s, argon2Prefix)
	if !ok {
		return nil, errBadHash
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return nil, errBadHash
	}
	var h passwordHash
	for i, kv := range strings.Split(parts[0], ",") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || i > 2 || name != "mtp"[i:i+1] {
			return nil, errBadHash
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return nil, errBadHash
		}
		switch name {
		case "m":
			h.params.Memory = uint32(n)
		case "t":
			h.params.Time = uint32(n)
		case "p":
			if n == 0 || n > 255 {
				return nil, errBadHash
			}
			h.params.Threads = uint8(n)
		}
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[1]); err != nil {
		return nil, errBadHash
	}
	if h.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[2]); err != nil {
		return nil, errBadHash
	}
	h.params.SaltLen, h.params.KeyLen = uint32(len(h.salt)), uint32(len(h.key))
	// Zero parameters would take defaults in Validate; a stored hash must
	// name every one of them.
	if h.params.Time == 0 || h.params.Memory == 0 || h.params.Threads == 0 || h.params.Validate() != nil {
		return nil, errBadHash
	}
	// Only the canonical form: no leading zeros, no missing fields.
	if h.String() != s {
		return nil, errBadHash
	}
	return &h, nil
}

// derive runs argon2id over password with salt and p.
func derive(password string, salt []byte, p Argon2Params) []byte {
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// hashPassword returns a new PHC string for password under p, which must
// have its defaults filled in.
func hashPassword(p Argon2Params, password string) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generate salt: %w", err)
	}
	h := &passwordHash{params: p, salt: salt, key: derive(password, salt, p)}
	return h.String(), nil
}

// verifyPassword reports whether password matches the PHC string encoded,
// comparing in constant time, and whether the hash was made with
// parameters other than current (so it should be replaced).
func verifyPassword(encoded, password string, current Argon2Params) (ok, stale bool, err error) {
	h, err := parseHash(encoded)
	if err != nil {
		return false, false, err
	}
	got := derive(password, h.salt, h.params)
	return subtle.ConstantTimeCompare(got, h.key) == 1, h.params != current, nil
}
