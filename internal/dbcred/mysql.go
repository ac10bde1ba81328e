package dbcred

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
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
func (mysqlDialect) quoteLiteral(s string) (string, error) {
	if strings.ContainsAny(s, "\x00\\") {
		return "", errUnquotable
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}

// retryable: deadlocks and lock wait timeouts.
func (mysqlDialect) retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

func (mysqlDialect) formatExpiration(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05")
}

func (mysqlDialect) defaultRenew() []string { return nil }

// parse accepts a go-sql-driver DSN (user:pass@tcp(host:3306)/db) or a
// mysql://user:pass@host:3306/db URL.
func (mysqlDialect) parse(raw string) (*mysql.Config, error) {
	raw = placeholders(raw)
	bad := &InputError{Field: "connection_url", Msg: "not a valid MySQL DSN (user@tcp(host:3306)/db) or mysql:// URL"}
	if strings.HasPrefix(raw, "mysql://") {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, bad
		}
		cfg := mysql.NewConfig()
		cfg.Net, cfg.Addr = "tcp", u.Host
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		return cfg, nil
	}
	cfg, err := mysql.ParseDSN(raw)
	if err != nil {
		return nil, bad
	}
	return cfg, nil
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
