// Package sqlquote writes values into SQL text safely for PostgreSQL and
// MySQL/MariaDB, for the statements that cannot take bind parameters
// (CREATE ROLE ... PASSWORD, ALTER USER ... IDENTIFIED BY). Both the
// dynamic-credential engine (dbcred) and the database rotators use it.
package sqlquote

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrUnquotable is returned for a value holding a NUL or a backslash.
var ErrUnquotable = errors.New("value holds a NUL or a backslash, which cannot be quoted safely")

// Literal quotes s as an SQL string literal, single quotes doubled. NUL and
// backslashes are refused: a backslash escapes in MySQL unless
// NO_BACKSLASH_ESCAPES is set, and in PostgreSQL when
// standard_conforming_strings is off, so no one quoting of it is right in
// every mode. Generated names and passwords never hold either.
func Literal(s string) (string, error) {
	if strings.ContainsAny(s, "\x00\\") {
		return "", ErrUnquotable
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}

// PostgresPassword returns the SQL literal that sets pw as a PostgreSQL
// password: its SCRAM-SHA-256 verifier, computed here, so the password
// itself never reaches the server (nor its statement log) and needs no
// quoting.
func PostgresPassword(pw string) (string, error) {
	for i := 0; i < len(pw); i++ {
		if pw[i] < 0x20 || pw[i] > 0x7e {
			// SASLprep is the identity on printable ASCII only.
			return "", fmt.Errorf("passwords set as SCRAM verifiers must be printable ASCII")
		}
	}
	return "'" + scramVerifier(pw) + "'", nil
}

// scramVerifier computes a PostgreSQL SCRAM-SHA-256 verifier (RFC 5802,
// RFC 7677) with a random salt and 4096 iterations, PostgreSQL's default:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
func scramVerifier(pw string) string {
	const iterations = 4096
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	salted, err := pbkdf2.Key(sha256.New, pw, salt, iterations, sha256.Size)
	if err != nil {
		panic(err) // only for invalid parameters, which these are not
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(server))
}
