package dbcred

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlDialect is the MySQL and MariaDB dialect.
type mysqlDialect struct{}

func (mysqlDialect) name() string { return PluginMySQL }

// maxUserLen is MySQL's limit; MariaDB allows 80.
func (mysqlDialect) maxUserLen() int { return 32 }

// transactional is false: CREATE USER and GRANT commit implicitly.
func (mysqlDialect) transactional() bool { return false }

// quoteIdent quotes with backticks, embedded ones doubled.
func (mysqlDialect) quoteIdent(s string) (string, error) {
	if s == "" || len(s) > 80 || strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("identifier must be 1 to 80 bytes without NUL")
	}
	return "`" + strings.ReplaceAll(s, "`", "``") + "`", nil
}

// quoteLiteral quotes with single quotes doubled. Backslashes are refused:
// they escape unless NO_BACKSLASH_ESCAPES is set, so no single quoting is
// right in both modes.
func (mysqlDialect) quoteLiteral(s string) (string, error) { return quoteLiteral(s) }

// retryable: deadlocks and lock wait timeouts.
func (mysqlDialect) retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

func (mysqlDialect) formatExpiration(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05")
}

func (mysqlDialect) defaultRenew() []string { return nil }

// parse accepts a go-sql-driver DSN (user:pass@tcp(host:3306)/db?tls=true)
// or a mysql://user:pass@host:3306/db?tls=true URL, whose query is read as
// the DSN's parameters. Parameters that weaken authentication or reach
// beyond the connection are refused (see checkMySQLParams).
func (mysqlDialect) parse(raw string) (*mysql.Config, error) {
	raw = placeholders(raw)
	bad := &InputError{Field: "connection_url", Msg: "not a valid MySQL DSN (user@tcp(host:3306)/db) or mysql:// URL"}
	var cfg *mysql.Config
	if strings.HasPrefix(raw, "mysql://") {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.Fragment != "" || strings.ContainsAny(u.Host, "()@/") ||
			strings.Contains(u.RawQuery, "/") {
			return nil, bad
		}
		dsn := "tcp(" + u.Host + ")/" + url.PathEscape(strings.TrimPrefix(u.Path, "/"))
		if u.RawQuery != "" {
			dsn += "?" + u.RawQuery
		}
		if cfg, err = mysql.ParseDSN(dsn); err != nil {
			return nil, bad
		}
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	} else {
		var err error
		if cfg, err = mysql.ParseDSN(raw); err != nil {
			return nil, bad
		}
	}
	if err := checkMySQLParams(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkMySQLParams refuses settings that would let a connection's writer
// read the admin password, local files or a local socket (see errSocket):
// cleartext and old (pre-4.1)
// password authentication, falling back to plaintext when TLS fails
// (tls=preferred), LOAD DATA LOCAL from any file, and unknown parameters,
// which the driver sends as session variables.
func checkMySQLParams(cfg *mysql.Config) error {
	refuse := func(what string) error {
		return &InputError{Field: "connection_url", Msg: what + " is not allowed: it would weaken how the admin password is sent or reach beyond the connection"}
	}
	switch {
	case cfg.AllowCleartextPasswords:
		return refuse("allowCleartextPasswords")
	case cfg.AllowOldPasswords:
		return refuse("allowOldPasswords")
	case cfg.AllowFallbackToPlaintext:
		return refuse("tls=preferred (or allowFallbackToPlaintext)")
	case cfg.AllowAllFiles:
		return refuse("allowAllFiles")
	case len(cfg.Params) > 0:
		keys := make([]string, 0, len(cfg.Params))
		for k := range cfg.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return refuse("parameter " + truncate(strings.Join(keys, ", "), 200))
	case cfg.Net == "unix":
		return errSocket
	case cfg.Net != "tcp" && cfg.Net != "tcp4" && cfg.Net != "tcp6":
		return refuse("network " + truncate(cfg.Net, 32))
	}
	return nil
}

func (d mysqlDialect) checkURL(raw string) error {
	cfg, err := d.parse(raw)
	if err != nil {
		return err
	}
	if cfg.Passwd != "" && cfg.Passwd != passSentinel {
		return &InputError{Field: "connection_url", Msg: "must not contain a password: give it in the password field (or write {{password}}) so it is stored apart and never shown"}
	}
	return nil
}

// identity is what and how the admin password is sent to: the address,
// the TLS setting, the authentication settings, the user and the database.
func (d mysqlDialect) identity(raw, user string) (string, error) {
	cfg, err := d.parse(raw)
	if err != nil {
		return "", err
	}
	if user == "" {
		user = cfg.User
	}
	return fmt.Sprintf("user=%q db=%q %s(%q)/tls=%q native=%v pubkey=%q", user, cfg.DBName, cfg.Net, cfg.Addr, cfg.TLSConfig,
		cfg.AllowNativePasswords, cfg.ServerPubKey), nil
}

func (d mysqlDialect) open(raw, user, password string) (*sql.DB, error) {
	cfg, err := d.parse(raw)
	if err != nil {
		return nil, err
	}
	if user != "" {
		cfg.User = user
	}
	if cfg.User == userSentinel || cfg.User == "" {
		return nil, &InputError{Field: "username", Msg: "is required (in the username field or the connection URL)"}
	}
	cfg.Passwd = password
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, &InputError{Field: "connection_url", Msg: "cannot be used: " + err.Error()}
	}
	return sql.OpenDB(conn), nil
}

// setPassword changes the password of the account the pool connects as.
// The account is named explicitly: MariaDB 10.11 accepts ALTER USER
// CURRENT_USER() but leaves the password unchanged.
func (d mysqlDialect) setPassword(ctx context.Context, db *sql.DB, _, password string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var account string
	if err := conn.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&account); err != nil {
		return err
	}
	i := strings.LastIndexByte(account, '@')
	if i < 0 {
		return fmt.Errorf("unexpected CURRENT_USER() %q", account)
	}
	user, err := d.quoteLiteral(account[:i])
	if err != nil {
		return err
	}
	host, err := d.quoteLiteral(account[i+1:])
	if err != nil {
		return err
	}
	lit, err := d.quoteLiteral(password)
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "ALTER USER "+user+"@"+host+" IDENTIFIED BY "+lit)
	return err
}

// revoke locks every account of the user (so no new session starts), kills
// its sessions, then runs the custom statements or drops the accounts.
func (d mysqlDialect) revoke(ctx context.Context, db *sql.DB, user string, custom []string) error {
	hosts, err := d.hosts(ctx, db, user)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return d.kill(ctx, db, user) // a session may outlive its account
	}
	id, err := d.quoteIdent(user)
	if err != nil {
		return err
	}
	var accounts []string
	for _, h := range hosts {
		lit, err := d.quoteLiteral(h)
		if err != nil {
			return err
		}
		accounts = append(accounts, id+"@"+lit)
	}
	for _, a := range accounts {
		if _, err := db.ExecContext(ctx, "ALTER USER "+a+" ACCOUNT LOCK"); err != nil {
			return err
		}
	}
	if err := d.kill(ctx, db, user); err != nil {
		return err
	}
	sts := custom
	if len(sts) == 0 {
		for _, a := range accounts {
			sts = append(sts, "DROP USER IF EXISTS "+a)
		}
	}
	return execAll(ctx, d, db, sts)
}

func (mysqlDialect) hosts(ctx context.Context, db *sql.DB, user string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT Host FROM mysql.user WHERE User = ?", user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return hosts, rows.Err()
}

// kill ends every session of the user and waits until they are gone.
func (mysqlDialect) kill(ctx context.Context, db *sql.DB, user string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, err := db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()", user)
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill sessions: %d still open", len(ids))
		}
		for _, id := range ids {
			_, err := db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
			var me *mysql.MySQLError
			if err != nil && !(errors.As(err, &me) && me.Number == 1094) { // 1094: unknown thread id (already gone)
				return fmt.Errorf("kill session: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
