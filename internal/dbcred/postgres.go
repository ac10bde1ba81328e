package dbcred

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/coffer-dev/coffer/internal/sqlquote"
)

// postgres is the PostgreSQL dialect.
type postgres struct{}

func (postgres) name() string        { return PluginPostgres }
func (postgres) maxUserLen() int     { return 63 }
func (postgres) transactional() bool { return true }

// quoteIdent quotes like quote_ident: double quotes, embedded ones doubled.
func (postgres) quoteIdent(s string) (string, error) {
	if s == "" || len(s) > 63 || strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("identifier must be 1 to 63 bytes without NUL")
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`, nil
}

// quoteLiteral quotes a standard string: single quotes doubled. Values with
// a backslash are refused, since with standard_conforming_strings off a
// backslash would escape.
func (postgres) quoteLiteral(s string) (string, error) { return quoteLiteral(s) }

// retryable: serialization failures, deadlocks, and "tuple concurrently
// updated" (XX000), which concurrent GRANT/REVOKE on one object raise.
func (postgres) retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "40001" || pe.Code == "40P01" || (pe.Code == "XX000" && strings.Contains(pe.Message, "concurrently"))
}

func (postgres) formatExpiration(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05-07")
}

func (postgres) defaultRenew() []string {
	return []string{"ALTER ROLE {{name}} VALID UNTIL {{expiration}}"}
}

// pgAllowedKeys are the only keys a PostgreSQL connection string may set.
// Others are refused, above all those that make the driver read local files
// (passfile, service, servicefile, sslkey, sslcert, sslrootcert,
// sslpassword): a caller who may write a connection must not reach files
// on the server. Unknown keys, which would become session settings, are
// refused as well.
var pgAllowedKeys = []string{"host", "port", "user", "password", "dbname", "sslmode", "sslnegotiation",
	"sslsni", "connect_timeout", "application_name", "target_session_attrs", "channel_binding", "require_auth"}

func pgParse(raw string, allowed []string) (*pgx.ConnConfig, error) {
	return pgx.ParseConfigWithOptions(raw, pgx.ParseConfigOptions{
		ParseConfigOptions: pgconn.ParseConfigOptions{ConnStringAllowedKeys: allowed}})
}

// pgHas reports whether the connection string itself sets one of keys (as
// opposed to leaving it to a PG* environment variable or a default): it
// does if the string no longer parses once those keys are disallowed. The
// string must parse with pgAllowedKeys.
func pgHas(raw string, keys ...string) bool {
	rest := slices.DeleteFunc(slices.Clone(pgAllowedKeys), func(k string) bool { return slices.Contains(keys, k) })
	_, err := pgParse(raw, rest)
	return err != nil
}

// parse parses a connection URL or keyword/value string with only
// pgAllowedKeys. The host must be in the string; the user, database and
// password are taken only from the string, never from PGUSER, PGDATABASE,
// PGPASSWORD or a password file.
func (postgres) parse(url string) (*pgx.ConnConfig, error) {
	raw := placeholders(url)
	cfg, err := pgParse(raw, pgAllowedKeys)
	if err != nil {
		// pgx's message may quote the URL; keep only that it failed.
		return nil, &InputError{Field: "connection_url", Msg: "not a valid PostgreSQL connection URL or keyword/value string, " +
			"or it sets a key other than " + strings.Join(pgAllowedKeys, ", ")}
	}
	if !pgHas(raw, "host") {
		return nil, &InputError{Field: "connection_url", Msg: "must name the host (postgres://HOST:5432/DB)"}
	}
	for _, h := range pgHosts(cfg) {
		if pgSocket(h) {
			return nil, errSocket
		}
	}
	if !pgHas(raw, "user") {
		cfg.User = ""
	}
	if !pgHas(raw, "dbname") {
		cfg.Database = ""
	}
	if !pgHas(raw, "password") {
		cfg.Password = ""
	}
	return cfg, nil
}

// errSocket refuses a local Unix socket: the database authenticates a
// socket connection by the operating system user at the other end (peer,
// trust, unix_socket), which is Coffer's, so whoever may write a
// connection could get the database's admin without knowing a password.
var errSocket = &InputError{Field: "connection_url", Msg: "must name a TCP host and port: local Unix sockets " +
	"(a PostgreSQL host starting with / or @, a MySQL unix(...) address) are refused, " +
	"since the database would authenticate them as Coffer's own operating system user"}

// pgHosts is every host a parsed configuration may connect to, the first
// and the fallbacks.
func pgHosts(cfg *pgx.ConnConfig) []*pgconn.FallbackConfig {
	return append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
}

// pgSocket reports whether h is a Unix socket: a directory (/path, or
// C:\path as pgx also reads it) or, as libpq reads it, an abstract
// socket (@name). An empty host, which the driver would replace with a
// socket directory, counts as one too.
func pgSocket(h *pgconn.FallbackConfig) bool {
	network, _ := pgconn.NetworkAddress(h.Host, h.Port)
	return network != "tcp" || h.Host == "" || strings.HasPrefix(h.Host, "/") || strings.HasPrefix(h.Host, "@")
}

func (p postgres) checkURL(url string) error {
	cfg, err := p.parse(url)
	if err != nil {
		return err
	}
	if cfg.Password != "" && cfg.Password != passSentinel {
		return &InputError{Field: "connection_url", Msg: "must not contain a password: give it in the password field (or write {{password}}) so it is stored apart and never shown"}
	}
	return nil
}

// identity is what and how the admin password is sent to: every host and
// port (with its TLS settings), the user, the database, and every setting
// that bears on authentication or on which server is used
// (channel_binding, require_auth, sslnegotiation, target_session_attrs,
// protocol versions, session parameters). Only application_name and
// connect_timeout may change without the password.
func (p postgres) identity(url, user string) (string, error) {
	cfg, err := p.parse(url)
	if err != nil {
		return "", err
	}
	if user == "" {
		user = cfg.User
	}
	var b strings.Builder
	fmt.Fprintf(&b, "user=%q db=%q channel_binding=%q require_auth=%q sslnegotiation=%q sslcertmode=%q protocol=%q-%q validate=%p",
		user, cfg.Database, cfg.ChannelBinding, cfg.RequireAuth, cfg.SSLNegotiation, cfg.SSLCertMode,
		cfg.MinProtocolVersion, cfg.MaxProtocolVersion, cfg.ValidateConnect)
	params := make([]string, 0, len(cfg.RuntimeParams))
	for k, v := range cfg.RuntimeParams {
		if k != "application_name" {
			params = append(params, fmt.Sprintf("%q=%q", k, v))
		}
	}
	slices.Sort(params)
	fmt.Fprintf(&b, " params=%s", strings.Join(params, ","))
	for _, h := range pgHosts(cfg) {
		fmt.Fprintf(&b, " %q:%d/%s", h.Host, h.Port, tlsIdentity(h.TLSConfig))
	}
	return b.String(), nil
}

// tlsIdentity describes how a TLS configuration checks the server.
func tlsIdentity(c *tls.Config) string {
	if c == nil {
		return "plain"
	}
	return fmt.Sprintf("tls(skip-verify=%v,verify-peer=%v,server-name=%q,alpn=%q,roots=%v,certs=%d,min=%d)",
		c.InsecureSkipVerify, c.VerifyPeerCertificate != nil, c.ServerName, c.NextProtos, c.RootCAs != nil, len(c.Certificates), c.MinVersion)
}

func (p postgres) open(url, user, password string) (*sql.DB, error) {
	cfg, err := p.parse(url)
	if err != nil {
		return nil, err
	}
	if user != "" {
		cfg.User = user
	}
	if cfg.User == userSentinel || cfg.User == "" {
		return nil, &InputError{Field: "username", Msg: "is required (in the username field or the connection URL)"}
	}
	cfg.Password = password
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	return stdlib.OpenDB(*cfg), nil
}

func (p postgres) setPassword(ctx context.Context, db *sql.DB, user, password string) error {
	id, err := p.quoteIdent(user)
	if err != nil {
		return err
	}
	// The SCRAM verifier, not the password, so the new admin password never
	// reaches the server's statement log.
	lit, err := sqlquote.PostgresPassword(password)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "ALTER ROLE "+id+" WITH PASSWORD "+lit)
	return err
}

// revoke stops new logins, terminates the user's sessions, then runs the
// custom statements or the default removal: reassign and drop what the role
// owns in this database, then drop the role.
func (p postgres) revoke(ctx context.Context, db *sql.DB, user string, custom []string) error {
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", user).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return nil
	}
	id, err := p.quoteIdent(user)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "ALTER ROLE "+id+" NOLOGIN"); err != nil {
		return err
	}
	// An admin that is not a superuser needs membership in the role to
	// terminate its sessions and to reassign or drop what it owns (before
	// PostgreSQL 16 CREATEROLE does not grant it).
	var super bool
	if err := db.QueryRowContext(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return err
	}
	if !super {
		if _, err := db.ExecContext(ctx, "GRANT "+id+" TO CURRENT_USER"); err != nil {
			return err
		}
	}
	if err := p.terminate(ctx, db, user); err != nil {
		return err
	}
	sts := custom
	if len(sts) == 0 {
		sts = []string{
			"REASSIGN OWNED BY " + id + " TO CURRENT_USER",
			"DROP OWNED BY " + id,
			"DROP ROLE IF EXISTS " + id,
		}
	}
	return execAll(ctx, p, db, sts)
}

// terminate ends the user's sessions and waits until they are gone.
func (postgres) terminate(ctx context.Context, db *sql.DB, user string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM (
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()) t`, user).Scan(&left)
		if err != nil {
			return fmt.Errorf("terminate sessions: %w", err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("terminate sessions: %d still open", left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
