package dbrotate

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/coffer-dev/coffer/internal/sqlquote"
)

type myDialect struct{}

func (myDialect) engine() string   { return "mysql" }
func (myDialect) defaultPort() int { return 3306 }
func (myDialect) maxUserLen() int  { return 32 }

type myConn struct{ db *sql.DB }

func (m myConn) Close() error { return m.db.Close() }

func (myDialect) login(ctx context.Context, v *Value) (conn, error) {
	mode, err := mysqlTLS(v.TLS)
	if err != nil {
		return nil, err
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = v.Username, v.Password
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", net.JoinHostPort(v.Host, strconv.Itoa(int(v.Port))), v.DBName
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = connectTimeout, connectTimeout, connectTimeout
	cfg.TLSConfig = mode
	// Normalise through the DSN form, which resolves the tls setting.
	cfg, err = mysql.ParseDSN(cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("connection settings: %v", err)
	}
	cn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %v", err)
	}
	db := sql.OpenDB(cn)
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return myConn{db}, nil
}

func (myDialect) setOwnPassword(ctx context.Context, c conn, pw string) error {
	lit, err := sqlquote.Literal(pw)
	if err != nil {
		return err
	}
	db := c.(myConn).db
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return err
	}
	if strings.Contains(strings.ToLower(version), "mariadb") {
		// MariaDB's ALTER USER needs the CREATE USER privilege even for
		// oneself; SET PASSWORD does not.
		_, err = db.ExecContext(ctx, "SET PASSWORD = PASSWORD("+lit+")")
		return err
	}
	_, err = db.ExecContext(ctx, "ALTER USER CURRENT_USER() IDENTIFIED BY "+lit)
	return err
}

func (myDialect) setPassword(ctx context.Context, c conn, user, pw string, mustExist bool) error {
	db := c.(myConn).db
	// SUPER, CREATE USER and GRANT OPTION let a user administer the
	// server or other users: not a password to hand to an application.
	rows, err := db.QueryContext(ctx, "SELECT Host, Super_priv = 'Y' OR Create_user_priv = 'Y' OR Grant_priv = 'Y' FROM mysql.user WHERE User = ?", user)
	if err != nil {
		return err
	}
	var hosts []string
	privileged := false
	for rows.Next() {
		var h string
		var p bool
		if err := rows.Scan(&h, &p); err != nil {
			rows.Close()
			return err
		}
		hosts = append(hosts, h)
		privileged = privileged || p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(hosts) == 0 {
		if !mustExist {
			return nil // nothing to revoke
		}
		return fmt.Errorf("user %s does not exist: create it with the same privileges as the other user of the pair (see docs/rotation.md)", user)
	}
	if privileged {
		return fmt.Errorf("user %s has SUPER, CREATE USER or GRANT OPTION: Coffer does not rotate administrators with the alternating strategy", user)
	}
	lit, err := sqlquote.Literal(pw)
	if err != nil {
		return err
	}
	u, err := sqlquote.Literal(user)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		hq, err := sqlquote.Literal(h)
		if err != nil {
			return fmt.Errorf("user %s has an unusable host name", user)
		}
		if _, err := db.ExecContext(ctx, "ALTER USER "+u+"@"+hq+" IDENTIFIED BY "+lit); err != nil {
			return err
		}
	}
	return nil
}
