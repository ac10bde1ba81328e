package dbrotate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/coffer-dev/coffer/internal/sqlquote"
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
	lit, err := sqlquote.PostgresPassword(pw)
	if err != nil {
		return err
	}
	_, err = c.(pgConn).c.Exec(ctx, "ALTER ROLE CURRENT_USER WITH PASSWORD "+lit)
	return err
}

// pgPrivileged finds roles an administrator connection must not reset:
// those that can administer the server or other roles themselves, or that
// are members of a superuser role.
const pgPrivileged = `SELECT r.rolsuper OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls
	OR EXISTS (SELECT 1 FROM pg_roles s WHERE s.rolsuper AND s.oid <> r.oid AND pg_has_role(r.oid, s.oid, 'MEMBER'))
	FROM pg_roles r WHERE r.rolname = $1`

func (pgDialect) setPassword(ctx context.Context, c conn, user, pw string, mustExist bool) error {
	pc := c.(pgConn).c
	var privileged bool
	err := pc.QueryRow(ctx, pgPrivileged, user).Scan(&privileged)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && mustExist:
		return fmt.Errorf("role %s does not exist: create it with the same privileges as the other user of the pair (see docs/rotation.md)", user)
	case errors.Is(err, pgx.ErrNoRows):
		return nil // nothing to revoke
	case err != nil:
		return err
	case privileged:
		return fmt.Errorf("role %s is a superuser, has CREATEROLE, REPLICATION or BYPASSRLS, or is a member of a superuser role: Coffer does not rotate administrators with the alternating strategy", user)
	}
	lit, err := sqlquote.PostgresPassword(pw)
	if err != nil {
		return err
	}
	_, err = pc.Exec(ctx, "ALTER ROLE "+pgx.Identifier{user}.Sanitize()+" WITH LOGIN PASSWORD "+lit)
	return err
}
