package dbcred

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/sqlquote"
)

// Plugins: the database kinds Coffer issues users on.
const (
	PluginPostgres = "postgresql"
	PluginMySQL    = "mysql" // MySQL and MariaDB
)

// Sentinel strings stand in for {{username}} and {{password}} in a
// connection URL while it is parsed; the real values are set on the
// parsed configuration, never spliced into the text.
const (
	userSentinel = "coffer-username-placeholder"
	passSentinel = "coffer-password-placeholder"
)

// dialect is what differs between the databases.
type dialect interface {
	name() string
	// quoteIdent and quoteLiteral quote a value for SQL text; they refuse
	// values that cannot be quoted safely in every server mode.
	quoteIdent(s string) (string, error)
	quoteLiteral(s string) (string, error)
	maxUserLen() int
	formatExpiration(t time.Time) string
	// open parses a connection URL (with sentinels in place of the
	// placeholders) and opens a pool as user/password.
	open(url, user, password string) (*sql.DB, error)
	// checkURL rejects URLs that carry a password inline.
	checkURL(url string) error
	// identity describes where a connection sends the admin password:
	// hosts, ports, TLS settings, user (user, or the URL's) and database.
	// The stored password is kept across a write only while it is unchanged.
	identity(url, user string) (string, error)
	// transactional reports whether DDL can run in one transaction.
	transactional() bool
	// retryable reports whether a failed transaction may simply be run again.
	retryable(err error) bool
	// revoke ends the user's sessions and removes it, with the given
	// statements (nil: the default removal). It succeeds if the user does
	// not exist.
	revoke(ctx context.Context, db *sql.DB, user string, custom []string) error
	// defaultRenew returns the renewal statements used when a role has none.
	defaultRenew() []string
	// setPassword changes the connected user's password.
	setPassword(ctx context.Context, db *sql.DB, user, password string) error
}

func dialectFor(plugin string) (dialect, error) {
	switch plugin {
	case PluginPostgres:
		return postgres{}, nil
	case PluginMySQL:
		return mysqlDialect{}, nil
	}
	return nil, &InputError{Field: "plugin", Msg: fmt.Sprintf("must be %s or %s", PluginPostgres, PluginMySQL)}
}

// errUnquotable is returned for values no quoting can make safe in every
// server mode. Generated names and passwords never contain such bytes.
var errUnquotable = sqlquote.ErrUnquotable

// quoteLiteral quotes a string literal the same way for both dialects (see
// sqlquote.Literal).
func quoteLiteral(s string) (string, error) { return sqlquote.Literal(s) }

// placeholders replaces {{username}} and {{password}} in a connection URL
// with sentinels.
func placeholders(url string) string {
	r := strings.NewReplacer("{{username}}", userSentinel, "{{password}}", passSentinel, "{{ username }}", userSentinel, "{{ password }}", passSentinel)
	return r.Replace(url)
}

// execAll runs statements in one transaction where the database allows
// DDL in transactions, one after another otherwise. A transaction that
// lost a race with a concurrent one (PostgreSQL updates a table's ACL in
// place, so two GRANTs or DROP OWNEDs on one table collide) is retried.
func execAll(ctx context.Context, d dialect, db *sql.DB, sts []string) error {
	var err error
	for attempt := range 8 {
		if err = execOnce(ctx, d, db, sts); err == nil || !d.retryable(err) {
			return err
		}
		var b [1]byte
		_, _ = rand.Read(b[:])
		wait := time.Duration(attempt+1)*10*time.Millisecond + time.Duration(b[0])*time.Millisecond/4
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	return err
}

func execOnce(ctx context.Context, d dialect, db *sql.DB, sts []string) error {
	if !d.transactional() {
		for i, st := range sts {
			if _, err := db.ExecContext(ctx, st); err != nil {
				return fmt.Errorf("statement %d: %w", i+1, err)
			}
		}
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, st := range sts {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	return tx.Commit()
}
