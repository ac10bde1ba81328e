package dbrotate

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5"
)

type pgDialect struct{}

func (pgDialect) engine() string   { return "postgresql" }
func (pgDialect) defaultPort() int { return 5432 }
func (pgDialect) maxUserLen() int  { return 63 }

type pgConn struct{ c *pgx.Conn }

func (p pgConn) Close() error { return p.c.Close(context.Background()) }

func (pgDialect) login(ctx context.Context, v *Value) (conn, error) {
	db := v.DBName
	if db == "" {
		db = "postgres"
	}
	mode := v.SSLMode
	if mode == "" {
		mode = "prefer"
	}
	switch mode {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return nil, fmt.Errorf("sslmode %q: want disable, prefer, require, verify-ca or verify-full", mode)
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(v.Host, strconv.Itoa(int(v.Port))), Path: "/" + db,
		RawQuery: url.Values{"sslmode": {mode}}.Encode()}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("connection settings: %v", err)
	}
	cfg.User, cfg.Password = v.Username, v.Password
	cfg.ConnectTimeout = connectTimeout
	cfg.Fallbacks = nil // exactly the host given
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Ping(ctx); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	return pgConn{c}, nil
}

func (pgDialect) setOwnPassword(ctx context.Context, c conn, pw string) error {
	lit, err := pgPassword(pw)
	if err != nil {
		return err
	}
	_, err = c.(pgConn).c.Exec(ctx, "ALTER ROLE CURRENT_USER WITH PASSWORD "+lit)
	return err
}

func (pgDialect) setPassword(ctx context.Context, c conn, user, pw, template string) error {
	pc := c.(pgConn).c
	var n int
	if err := pc.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", user).Scan(&n); err != nil {
		return err
	}
	lit, err := pgPassword(pw)
	if err != nil {
		return err
	}
	ident := pgx.Identifier{user}.Sanitize()
	switch {
	case n > 0:
		_, err = pc.Exec(ctx, "ALTER ROLE "+ident+" WITH LOGIN PASSWORD "+lit)
	case template == "":
		return nil // nothing to revoke
	default:
		// A member of the current user's role holds its privileges, and
		// objects the current user owns stay usable by both.
		_, err = pc.Exec(ctx, "CREATE ROLE "+ident+" WITH LOGIN PASSWORD "+lit+" IN ROLE "+pgx.Identifier{template}.Sanitize())
	}
	return err
}

// pgPassword returns the SQL literal that sets pw: its SCRAM-SHA-256
// verifier, computed here, so the password itself never reaches the server
// (nor its statement log), and no quoting of it is needed.
func pgPassword(pw string) (string, error) {
	for i := 0; i < len(pw); i++ {
		if pw[i] < 0x20 || pw[i] > 0x7e {
			// SASLprep is the identity on printable ASCII only.
			return "", fmt.Errorf("generated passwords for PostgreSQL must be printable ASCII")
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
