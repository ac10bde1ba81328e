package dbcred_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/coffer-dev/coffer/internal/dbcred"
	"github.com/coffer-dev/coffer/internal/lease"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type clock struct {
	mu sync.Mutex
	d  time.Duration // offset from the real time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.d) }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.d += d; c.mu.Unlock() }

type fixture struct {
	svc    *dbcred.Service
	leases *lease.Manager
	clock  *clock
	store  storage.Backend
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	c := &clock{}
	store := mem.New()
	leases := lease.New(store, lease.Config{Now: c.now, RetryMin: time.Second, RetryMax: 4 * time.Second})
	svc := dbcred.New(store, leases, dbcred.Options{Now: c.now})
	f := &fixture{svc: svc, leases: leases, clock: c, store: store}
	t.Cleanup(func() {
		// Drop every user a test left behind: the servers are shared.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if res, err := leases.RevokePrefix(ctx, "db/"); err != nil || res.Pending > 0 {
			ids, _, _ := leases.List(ctx, "db/", "", 10)
			for _, id := range ids {
				l, _ := leases.Lookup(ctx, id)
				t.Logf("pending %s: %+v", id, l.Revocation)
			}
			t.Errorf("cleanup: revoke leases = %+v, %v", res, err)
		}
		svc.Reset()
	})
	return f
}

func open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func pgUserURL(t testing.TB, base, user, password string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// canLogin reports whether a fresh connection as user succeeds and can run a query.
func canLogin(t testing.TB, driver, dsn string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var n int
	return db.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n)
}

var userRE = regexp.MustCompile(`^v_[a-z0-9_]+$`)

const pgCreate = `CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}};`

func setupPostgres(t testing.TB, f *fixture, name, dbURL string) {
	t.Helper()
	ctx := context.Background()
	admin := open(t, "pgx", dbURL)
	if _, err := admin.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS items (id int); INSERT INTO items VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: name, Plugin: dbcred.PluginPostgres,
		ConnectionURL: dbURL, AllowedRoles: []string{"*"}}); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "readonly", DBName: name, CreationStatements: []string{pgCreate},
		DefaultTTL: time.Minute, MaxTTL: time.Hour}); err != nil {
		t.Fatalf("PutRole: %v", err)
	}
}

func TestPostgresLifecycle(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	f := newFixture(t)
	setupPostgres(t, f, "pg", dbURL)

	creds, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "approle/payments", Accessor: "acc_test"})
	if err != nil {
		t.Fatalf("Creds: %v", err)
	}
	if !userRE.MatchString(creds.Username) || !strings.HasPrefix(creds.Username, "v_payments_readonly_") {
		t.Errorf("username = %q", creds.Username)
	}
	if !strings.HasPrefix(creds.Lease.ID, "db/creds/readonly/") || !creds.Lease.Renewable || creds.Lease.TTL != time.Minute {
		t.Errorf("lease = %+v", creds.Lease)
	}
	userURL := pgUserURL(t, dbURL, creds.Username, creds.Password)
	if err := canLogin(t, "pgx", userURL); err != nil {
		t.Fatalf("login while leased: %v", err)
	}

	// Renewal moves VALID UNTIL along with the lease.
	admin := open(t, "pgx", dbURL)
	f.clock.advance(10 * time.Second)
	renewed, err := f.leases.Renew(ctx, creds.Lease.ID, 30*time.Minute)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	var validUntil time.Time
	if err := admin.QueryRowContext(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", creds.Username).Scan(&validUntil); err != nil {
		t.Fatal(err)
	}
	if d := validUntil.Sub(renewed.ExpiresAt); d < -time.Second || d > time.Second {
		t.Errorf("VALID UNTIL = %v, lease expires %v", validUntil, renewed.ExpiresAt)
	}

	// An open session ends on revoke, and no new one can start.
	held := open(t, "pgx", userURL)
	held.SetMaxOpenConns(1)
	conn, err := held.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := f.leases.Revoke(ctx, creds.Lease.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Error("the user's open session survived revocation")
	}
	if err := canLogin(t, "pgx", userURL); err == nil {
		t.Error("login after revoke succeeded")
	}
	var n int
	admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", creds.Username).Scan(&n)
	if n != 0 {
		t.Error("role still exists after revoke")
	}
	if _, err := f.leases.Lookup(ctx, creds.Lease.ID); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("lease after revoke: %v", err)
	}
}

func TestPostgresExpiryAndTokenRevoke(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	f := newFixture(t)
	setupPostgres(t, f, "pg", dbURL)

	short, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "a", TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	long, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "b", Accessor: "acc_tok"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*dbcred.Creds{short, long} {
		if err := canLogin(t, "pgx", pgUserURL(t, dbURL, c.Username, c.Password)); err != nil {
			t.Fatalf("login: %v", err)
		}
	}
	f.clock.advance(6 * time.Second)
	res, err := f.leases.ExpireDue(ctx)
	if err != nil || res.Revoked != 1 {
		t.Fatalf("ExpireDue = %+v, %v", res, err)
	}
	if err := canLogin(t, "pgx", pgUserURL(t, dbURL, short.Username, short.Password)); err == nil {
		t.Error("login after expiry succeeded")
	}
	if err := canLogin(t, "pgx", pgUserURL(t, dbURL, long.Username, long.Password)); err != nil {
		t.Errorf("unexpired user cannot log in: %v", err)
	}
	// Revoking the token (the token service calls this) revokes its lease.
	if err := f.leases.RevokeByToken(ctx, "acc_tok"); err != nil {
		t.Fatal(err)
	}
	if err := canLogin(t, "pgx", pgUserURL(t, dbURL, long.Username, long.Password)); err == nil {
		t.Error("login after token revocation succeeded")
	}
}

// TestPostgresDownRevocationRetried stops the database, revokes (which
// fails and is scheduled), starts it again and lets the retry succeed.
func TestPostgresDownRevocationRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a throwaway PostgreSQL server")
	}
	ctx := context.Background()
	srv, err := testdb.StartPostgres()
	if err != nil {
		t.Skipf("cannot start a throwaway PostgreSQL: %v", err)
	}
	t.Cleanup(srv.Remove)
	f := newFixture(t)
	setupPostgres(t, f, "throwaway", srv.URL)
	creds, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err = f.leases.Revoke(ctx, creds.Lease.ID)
	var pe *lease.PendingError
	if !errors.As(err, &pe) {
		t.Fatalf("Revoke with the database down = %v, want PendingError", err)
	}
	var de *dbcred.DBError
	if !errors.As(err, &de) {
		t.Errorf("cause = %T %v, want DBError", pe.Err, pe.Err)
	}
	// Still down at the first retry: rescheduled again, not dropped.
	f.clock.advance(2 * time.Second)
	if res, err := f.leases.ExpireDue(ctx); err != nil || res.Pending != 1 {
		t.Fatalf("ExpireDue while down = %+v, %v", res, err)
	}
	l, err := f.leases.Lookup(ctx, creds.Lease.ID)
	if err != nil || l.Revocation.Attempts != 2 || l.Revocation.LastError == "" {
		t.Fatalf("lease while down = %+v, %v", l, err)
	}
	if strings.Contains(l.Revocation.LastError, creds.Password) {
		t.Error("the stored error holds the password")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(5 * time.Second)
	if res, err := f.leases.ExpireDue(ctx); err != nil || res.Revoked != 1 {
		t.Fatalf("ExpireDue after restart = %+v, %v", res, err)
	}
	if err := canLogin(t, "pgx", pgUserURL(t, srv.URL, creds.Username, creds.Password)); err == nil {
		t.Error("login after the retried revocation succeeded")
	}
}

func mysqlUserDSN(t testing.TB, base, user, password string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, password
	return cfg.FormatDSN()
}

func setupMySQL(t testing.TB, f *fixture, name, dsn string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin := open(t, "mysql", dsn)
	if _, err := admin.ExecContext(ctx, "CREATE TABLE items (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: name, Plugin: dbcred.PluginMySQL,
		ConnectionURL: dsn, AllowedRoles: []string{"readonly"}}); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	create := "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}; GRANT SELECT ON `" + cfg.DBName + "`.* TO {{name}}@'%'"
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "readonly", DBName: name, CreationStatements: []string{create},
		DefaultTTL: time.Minute, MaxTTL: time.Hour}); err != nil {
		t.Fatalf("PutRole: %v", err)
	}
}

func TestMySQLLifecycle(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.MySQL(t)
	f := newFixture(t)
	setupMySQL(t, f, "maria", dsn)

	creds, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "userpass/alice", Accessor: "acc_a", TTL: 10 * time.Second})
	if err != nil {
		t.Fatalf("Creds: %v", err)
	}
	if !userRE.MatchString(creds.Username) || len(creds.Username) > 32 {
		t.Errorf("username = %q", creds.Username)
	}
	userDSN := mysqlUserDSN(t, dsn, creds.Username, creds.Password)
	if err := canLogin(t, "mysql", userDSN); err != nil {
		t.Fatalf("login while leased: %v", err)
	}
	if err := canLogin(t, "mysql", mysqlUserDSN(t, dsn, creds.Username, creds.Password+"x")); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	held := open(t, "mysql", userDSN)
	conn, err := held.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := f.leases.Revoke(ctx, creds.Lease.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Error("the user's open session survived revocation")
	}
	if err := canLogin(t, "mysql", userDSN); err == nil {
		t.Error("login after revoke succeeded")
	}

	// Expiry.
	c2, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "bob", TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := canLogin(t, "mysql", mysqlUserDSN(t, dsn, c2.Username, c2.Password)); err != nil {
		t.Fatalf("login: %v", err)
	}
	f.clock.advance(6 * time.Second)
	if res, err := f.leases.ExpireDue(ctx); err != nil || res.Revoked != 1 {
		t.Fatalf("ExpireDue = %+v, %v", res, err)
	}
	if err := canLogin(t, "mysql", mysqlUserDSN(t, dsn, c2.Username, c2.Password)); err == nil {
		t.Error("login after expiry succeeded")
	}
	// Roles not in allowed_roles get nothing.
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "other", DBName: "maria", CreationStatements: []string{"CREATE USER {{name}}@'%'"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Creds(ctx, "other", dbcred.CredsInput{}); !errors.Is(err, dbcred.ErrRoleNotAllowed) {
		t.Errorf("Creds for a role not allowed = %v", err)
	}
}

// TestMySQLDownRevocationRetried locks Coffer's admin account: revocation
// fails and is kept; unlocking it lets the retry drop the user. (Pointing
// the connection elsewhere is refused while leases are live.)
func TestMySQLDownRevocationRetried(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.MySQL(t)
	root := open(t, "mysql", dsn)
	adminUser := "coffer_dwn_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	for _, q := range []string{"CREATE USER '" + adminUser + "'@'%' IDENTIFIED BY 'initial'",
		"GRANT ALL PRIVILEGES ON *.* TO '" + adminUser + "'@'%' WITH GRANT OPTION"} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { root.ExecContext(context.Background(), "DROP USER IF EXISTS '"+adminUser+"'@'%'") })
	cfg, _ := mysql.ParseDSN(dsn)
	cfg.User, cfg.Passwd = "{{username}}", ""
	pw := "initial"
	f := newFixture(t)
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "maria", Plugin: dbcred.PluginMySQL, ConnectionURL: cfg.FormatDSN(),
		Username: adminUser, Password: &pw, AllowedRoles: []string{"readonly"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "readonly", DBName: "maria",
		CreationStatements: []string{"CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}; GRANT SELECT ON `" + cfg.DBName + "`.* TO {{name}}@'%'"}}); err != nil {
		t.Fatal(err)
	}
	creds, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.ExecContext(ctx, "ALTER USER '"+adminUser+"'@'%' ACCOUNT LOCK"); err != nil {
		t.Fatal(err)
	}
	f.svc.Reset() // open sessions outlive the lock
	var pe *lease.PendingError
	if err := f.leases.Revoke(ctx, creds.Lease.ID); !errors.As(err, &pe) {
		t.Fatalf("Revoke with the admin locked out = %v", err)
	}
	if err := canLoginNoTableMySQL(mysqlUserDSN(t, dsn, creds.Username, creds.Password)); err != nil {
		t.Fatalf("user gone although revocation failed? %v", err)
	}
	if _, err := root.ExecContext(ctx, "ALTER USER '"+adminUser+"'@'%' ACCOUNT UNLOCK"); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(5 * time.Second)
	if res, err := f.leases.ExpireDue(ctx); err != nil || res.Revoked != 1 {
		t.Fatalf("ExpireDue after unlocking = %+v, %v", res, err)
	}
	if err := canLoginNoTableMySQL(mysqlUserDSN(t, dsn, creds.Username, creds.Password)); err == nil {
		t.Error("login after the retried revocation succeeded")
	}
}

// TestInjection tries to get caller-controlled text into SQL.
func TestInjection(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	f := newFixture(t)
	setupPostgres(t, f, "pg", dbURL)
	admin := open(t, "pgx", dbURL)

	hostile := []string{
		`'; DROP TABLE items; --`,
		`"; DROP TABLE items; --`,
		`x" WITH SUPERUSER --`,
		`$$; DROP TABLE items; $$`,
		`\'; DROP TABLE items; --`,
		"a\x00b",
		strings.Repeat("é", 300),
	}
	for _, h := range hostile {
		creds, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: h})
		if err != nil {
			t.Fatalf("Creds(display %q): %v", h, err)
		}
		if !userRE.MatchString(creds.Username) {
			t.Errorf("display %q gave username %q", h, creds.Username)
		}
		var super bool
		if err := admin.QueryRowContext(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = $1", creds.Username).Scan(&super); err != nil || super {
			t.Errorf("role for display %q: super=%v err=%v", h, super, err)
		}
		// Role names are checked before anything else.
		for _, op := range []func() error{
			func() error { _, err := f.svc.Creds(ctx, h, dbcred.CredsInput{}); return err },
			func() error {
				_, err := f.svc.PutRole(ctx, dbcred.Role{Name: h, DBName: "pg", CreationStatements: []string{pgCreate}})
				return err
			},
		} {
			if err := op(); err == nil {
				t.Errorf("role name %q accepted", h)
			}
		}
	}
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatalf("items table damaged: %v", err)
	}

	// Placeholders inside quotes (other than a whole quoted placeholder) are refused.
	for _, tmpl := range []string{
		`CREATE ROLE {{name}} PASSWORD 'x{{password}}'`,
		`CREATE ROLE {{name}}; DO $$ BEGIN EXECUTE '{{password}}'; END $$`,
		`CREATE ROLE {{name}} -- {{password}}`,
		`CREATE ROLE {{name}} PASSWORD {{secret}}`,
		`CREATE ROLE x`,
		`CREATE ROLE {{name}} PASSWORD 'unterminated`,
	} {
		_, err := f.svc.PutRole(ctx, dbcred.Role{Name: "bad", DBName: "pg", CreationStatements: []string{tmpl}})
		var te *dbcred.TemplateError
		if !errors.As(err, &te) {
			t.Errorf("PutRole(%q) = %v, want a TemplateError", tmpl, err)
		}
	}
	// {{password}} in revocation statements is refused.
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "bad", DBName: "pg", CreationStatements: []string{pgCreate},
		RevocationStatements: []string{"DROP ROLE {{name}}; SELECT {{password}}"}}); err == nil {
		t.Error("{{password}} accepted in revocation_statements")
	}
	// Vault-style quoted placeholders work and are quoted by Coffer.
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "vaultstyle", DBName: "pg",
		CreationStatements: []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`}}); err != nil {
		t.Fatalf("Vault-style template: %v", err)
	}
	creds, err := f.svc.Creds(ctx, "vaultstyle", dbcred.CredsInput{})
	if err != nil {
		t.Fatalf("Creds vaultstyle: %v", err)
	}
	if err := canLoginNoTable(pgUserURL(t, dbURL, creds.Username, creds.Password)); err != nil {
		t.Errorf("vault-style user cannot log in: %v", err)
	}
}

func canLoginNoTable(dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Ping()
}

func TestConnectionSecrets(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// An inline password is refused: it would be shown on read.
	_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: dbcred.PluginPostgres,
		ConnectionURL: "postgres://admin:hunter2@127.0.0.1:5432/db", SkipVerify: true})
	var ie *dbcred.InputError
	if !errors.As(err, &ie) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("inline password = %v", err)
	}
	pw := "s3cret-pw"
	c, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: dbcred.PluginPostgres,
		ConnectionURL: "postgres://{{username}}:{{password}}@127.0.0.1:1/db", Username: "admin", Password: &pw, SkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.PasswordSet {
		t.Error("password_set false")
	}
	// A failed verification does not echo the password.
	_, err = f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: dbcred.PluginPostgres,
		ConnectionURL: "postgres://{{username}}:{{password}}@127.0.0.1:1/db", Username: "admin", Password: &pw})
	var de *dbcred.DBError
	if !errors.As(err, &de) || strings.Contains(err.Error(), pw) {
		t.Errorf("verify against a dead port = %v", err)
	}
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: "oracle", ConnectionURL: "x"}); !errors.As(err, &ie) {
		t.Errorf("unknown plugin = %v", err)
	}
}

func TestRotateRootPostgres(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	admin := open(t, "pgx", dbURL)
	// A dedicated admin role, so the superuser's password is not touched.
	adminRole := "coffer_admin_" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
	if _, err := admin.ExecContext(ctx, `CREATE ROLE `+adminRole+` WITH LOGIN CREATEROLE PASSWORD 'initial'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+adminRole) })
	f := newFixture(t)
	u, _ := url.Parse(dbURL)
	u.User = url.User("{{username}}")
	pw := "initial"
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "pg", Plugin: dbcred.PluginPostgres,
		ConnectionURL: strings.Replace(u.String(), "%7B%7Busername%7D%7D", "{{username}}", 1), Username: adminRole, Password: &pw,
		AllowedRoles: []string{"*"}}); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	var before string
	admin.QueryRowContext(ctx, "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1", adminRole).Scan(&before)
	if err := f.svc.RotateRoot(ctx, "pg"); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	var after string
	admin.QueryRowContext(ctx, "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1", adminRole).Scan(&after)
	if after == before || after == "" {
		t.Error("the admin password did not change on the server")
	}
	c, err := f.svc.Connection(ctx, "pg")
	if err != nil || c.RootRotatedAt == nil {
		t.Fatalf("Connection after rotation = %+v, %v", c, err)
	}
	// The connection still works for issuing users.
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "r", DBName: "pg", CreationStatements: []string{"CREATE ROLE {{name}} LOGIN PASSWORD {{password}}"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Creds(ctx, "r", dbcred.CredsInput{}); err != nil {
		t.Errorf("Creds after rotation: %v", err)
	}
}

func TestRotateRootMySQL(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.MySQL(t)
	root := open(t, "mysql", dsn)
	adminUser := "coffer_adm_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if _, err := root.ExecContext(ctx, "CREATE USER '"+adminUser+"'@'%' IDENTIFIED BY 'initial'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.ExecContext(context.Background(), "DROP USER IF EXISTS '"+adminUser+"'@'%'") })
	if _, err := root.ExecContext(ctx, "GRANT ALL PRIVILEGES ON *.* TO '"+adminUser+"'@'%' WITH GRANT OPTION"); err != nil {
		t.Fatal(err)
	}
	cfg, _ := mysql.ParseDSN(dsn)
	cfg.User, cfg.Passwd = "{{username}}", ""
	pw := "initial"
	f := newFixture(t)
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "m", Plugin: dbcred.PluginMySQL, ConnectionURL: cfg.FormatDSN(),
		Username: adminUser, Password: &pw}); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	if err := f.svc.RotateRoot(ctx, "m"); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	if err := canLoginNoTableMySQL(mysqlUserDSN(t, dsn, adminUser, "initial")); err == nil {
		t.Error("the old admin password still works")
	}
	// The stored (new) password works: verification on rewrite succeeds.
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "m", Plugin: dbcred.PluginMySQL, ConnectionURL: cfg.FormatDSN(),
		Username: adminUser}); err != nil {
		t.Errorf("connection after rotation: %v", err)
	}
}

func canLoginNoTableMySQL(dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Ping()
}

// TestPostgresConcurrent issues and revokes users in parallel. GRANTs and
// DROP OWNEDs on one table update its ACL in place, so concurrent ones
// collide ("tuple concurrently updated"); they are retried.
func TestPostgresConcurrent(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	f := newFixture(t)
	setupPostgres(t, f, "pg", dbURL)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "c", Accessor: "acc_" + string(rune('a'+i%2))})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Creds: %v", err)
		}
	}
	var wg2 sync.WaitGroup
	for _, acc := range []string{"acc_a", "acc_b"} {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			if err := f.leases.RevokeByToken(ctx, acc); err != nil {
				t.Errorf("RevokeByToken: %v", err)
			}
		}()
	}
	wg2.Wait()
	if ids, _, _ := f.leases.List(ctx, "db/", "", 0); len(ids) != 0 {
		t.Errorf("%d leases left after concurrent revocation", len(ids))
	}
	admin := open(t, "pgx", dbURL)
	var left int
	admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v\\_c\\_readonly\\_%'").Scan(&left)
	if left != 0 {
		t.Errorf("%d users left", left)
	}
}

// TestPostgresExpiryThroughput measures how fast expired users are dropped
// from the real PostgreSQL (each with a grant to clean up).
func TestPostgresExpiryThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	ctx := context.Background()
	dbURL := testdb.Postgres(t)
	f := newFixture(t)
	setupPostgres(t, f, "pg", dbURL)
	const n = 200
	start := time.Now()
	for range n {
		if _, err := f.svc.Creds(ctx, "readonly", dbcred.CredsInput{DisplayName: "tp", TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("issued %d PostgreSQL users in %v (%.0f/s)", n, time.Since(start), n/time.Since(start).Seconds())
	f.clock.advance(2 * time.Minute)
	start = time.Now()
	res, err := f.leases.ExpireDue(ctx)
	if err != nil || res.Revoked != n {
		t.Fatalf("ExpireDue = %+v, %v", res, err)
	}
	t.Logf("expired %d PostgreSQL users in %v (%.0f/s)", n, time.Since(start), n/time.Since(start).Seconds())
}

// TestRotateRootDueMySQL: a connection with root_rotation_period has its
// admin password rotated once the period has passed, not before; the old
// password is then refused. A failing rotation is kept on the connection
// and retried at the next pass.
func TestRotateRootDueMySQL(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.MySQL(t)
	root := open(t, "mysql", dsn)
	adminUser := "coffer_sch_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if _, err := root.ExecContext(ctx, "CREATE USER '"+adminUser+"'@'%' IDENTIFIED BY 'initial'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.ExecContext(context.Background(), "DROP USER IF EXISTS '"+adminUser+"'@'%'") })
	if _, err := root.ExecContext(ctx, "GRANT ALL PRIVILEGES ON *.* TO '"+adminUser+"'@'%' WITH GRANT OPTION"); err != nil {
		t.Fatal(err)
	}
	cfg, _ := mysql.ParseDSN(dsn)
	cfg.User, cfg.Passwd = "{{username}}", "{{password}}"
	pw := "initial"
	f := newFixture(t)
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "m", Plugin: dbcred.PluginMySQL, ConnectionURL: cfg.FormatDSN(),
		Username: adminUser, Password: &pw, RootRotationPeriod: 24 * time.Hour}); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "bad", Plugin: dbcred.PluginMySQL, ConnectionURL: cfg.FormatDSN(),
		Username: adminUser, RootRotationPeriod: 24 * time.Hour}); err == nil || !strings.Contains(err.Error(), "root_rotation_period") {
		t.Fatalf("a period without a stored password: %v", err)
	}
	res, err := f.svc.RotateRootDue(ctx)
	if err != nil || len(res.Rotated)+len(res.Failed) != 0 {
		t.Fatalf("before the period: %+v %v", res, err)
	}
	f.clock.advance(25 * time.Hour)
	res, err = f.svc.RotateRootDue(ctx)
	if err != nil || len(res.Rotated) != 1 || len(res.Failed) != 0 {
		t.Fatalf("after the period: %+v %v", res, err)
	}
	if err := canLoginNoTableMySQL(mysqlUserDSN(t, dsn, adminUser, "initial")); err == nil {
		t.Error("the old admin password still works")
	}
	if res, _ = f.svc.RotateRootDue(ctx); len(res.Rotated) != 0 {
		t.Fatalf("rotated again right away: %+v", res)
	}

	// The database refuses the admin (its password changed behind
	// Coffer's back): the scheduled rotation fails, says so, and retries.
	if _, err := root.ExecContext(ctx, "ALTER USER '"+adminUser+"'@'%' IDENTIFIED BY 'changed-by-hand'"); err != nil {
		t.Fatal(err)
	}
	f.svc.Reset()
	f.clock.advance(25 * time.Hour)
	res, err = f.svc.RotateRootDue(ctx)
	if err != nil || len(res.Failed) != 1 {
		t.Fatalf("rotation with a wrong admin password: %+v %v", res, err)
	}
	c, _ := f.svc.Connection(ctx, "m")
	if c.RootRotationError == "" || strings.Contains(c.RootRotationError, "changed-by-hand") {
		t.Fatalf("root rotation error = %q", c.RootRotationError)
	}

	// Failures back off (1 minute, doubling), so a refusing database is not
	// sent a failing admin login at every pass.
	for i, delay := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		c, _ = f.svc.Connection(ctx, "m")
		if c.RootRotationFailures != i+1 || c.RootRotationFailedAt == nil || c.RootRotationRetryAt == nil ||
			c.RootRotationRetryAt.Sub(*c.RootRotationFailedAt) != delay {
			t.Fatalf("after %d failures: failures=%d failed_at=%v retry_at=%v, want a %s backoff",
				i+1, c.RootRotationFailures, c.RootRotationFailedAt, c.RootRotationRetryAt, delay)
		}
		if res, err = f.svc.RotateRootDue(ctx); err != nil || len(res.Failed)+len(res.Rotated) != 0 {
			t.Fatalf("pass during the %s backoff: %+v %v", delay, res, err)
		}
		f.clock.advance(delay - 10*time.Second)
		if res, err = f.svc.RotateRootDue(ctx); err != nil || len(res.Failed)+len(res.Rotated) != 0 {
			t.Fatalf("pass just before the %s backoff ends: %+v %v", delay, res, err)
		}
		f.clock.advance(10 * time.Second)
		if res, err = f.svc.RotateRootDue(ctx); err != nil || len(res.Failed) != 1 {
			t.Fatalf("pass after the %s backoff: %+v %v", delay, res, err)
		}
	}

	// Giving the right password again resets the backoff; the next pass rotates.
	pw = "changed-by-hand"
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "m", Plugin: dbcred.PluginMySQL, ConnectionURL: cfg.FormatDSN(),
		Username: adminUser, Password: &pw, RootRotationPeriod: 24 * time.Hour}); err != nil {
		t.Fatalf("PutConnection with the new password: %v", err)
	}
	if res, err = f.svc.RotateRootDue(ctx); err != nil || len(res.Rotated) != 1 {
		t.Fatalf("pass after the password was fixed: %+v %v", res, err)
	}
	c, _ = f.svc.Connection(ctx, "m")
	if c.RootRotationError != "" || c.RootRotationFailures != 0 || c.RootRotationFailedAt != nil || c.RootRotationRetryAt != nil {
		t.Fatalf("after a successful rotation: %+v", c)
	}
}

func TestRootRetryDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute,
		9: 256 * time.Minute, 10: 6 * time.Hour, 11: 6 * time.Hour, 1000: 6 * time.Hour} {
		if got := dbcred.RootRetryDelayForTest(n); got != want {
			t.Errorf("delay after %d failures = %s, want %s", n, got, want)
		}
	}
}

// pwAdmin creates a superuser admin with password "initial" on a
// PostgreSQL server that checks passwords, then the fixture with a
// connection "pg" as it, allowed for role "r". The admin is dropped after
// the fixture's cleanup. It returns the fixture, the postgres superuser's
// handle on the database, and the admin's name.
func pwAdmin(t *testing.T, dbURL string) (*fixture, *sql.DB, string) {
	t.Helper()
	ctx := context.Background()
	super := open(t, "pgx", dbURL)
	adminRole := "coffer_rr_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if _, err := super.ExecContext(ctx, "CREATE ROLE "+adminRole+" WITH LOGIN SUPERUSER PASSWORD 'initial'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { super.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+adminRole) })
	f := newFixture(t)
	pw := "initial"
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "pg", Plugin: dbcred.PluginPostgres,
		ConnectionURL: pgTemplateURL(t, dbURL), Username: adminRole, Password: &pw, AllowedRoles: []string{"r"}}); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "r", DBName: "pg",
		CreationStatements: []string{"CREATE ROLE {{name}} LOGIN PASSWORD {{password}}"}}); err != nil {
		t.Fatal(err)
	}
	return f, super, adminRole
}

// pgTemplateURL is dbURL with {{username}}:{{password}} as its user part.
func pgTemplateURL(t testing.TB, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = nil
	return strings.Replace(u.String(), "://", "://{{username}}:{{password}}@", 1)
}

// usable checks, from a fresh start (no cached pool), that Coffer still
// holds the admin password the database has.
func usable(t *testing.T, f *fixture) {
	t.Helper()
	f.svc.Reset()
	if _, err := f.svc.Creds(context.Background(), "r", dbcred.CredsInput{}); err != nil {
		t.Fatalf("Creds after rotation: %v", err)
	}
}

// TestRotateRootAnswerLost: the database commits the new admin password
// but Coffer never hears so. The next rotation (after a restart, with no
// pool cached) must settle that first, not overwrite the pending password
// the database now holds.
func TestRotateRootAnswerLost(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.PostgresWithPasswords(t)
	f, _, adminRole := pwAdmin(t, dbURL)
	if _, err := f.svc.Creds(ctx, "r", dbcred.CredsInput{}); err != nil { // caches a pool
		t.Fatal(err)
	}
	f.svc.SetAfterSetPasswordForTest(func(err error) error {
		if err == nil {
			return errors.New("connection reset by peer")
		}
		return err
	})
	// Twice in a row: the second attempt must settle the first one's
	// password before it makes (and loses) its own.
	for range 2 {
		if err := f.svc.RotateRoot(ctx, "pg"); err == nil {
			t.Fatal("RotateRoot with a lost answer = nil")
		}
		f.svc.Reset()
	}
	f.svc.SetAfterSetPasswordForTest(nil)
	if canLoginNoTable(pgUserURL(t, dbURL, adminRole, "initial")) == nil {
		t.Fatal("the database did not take the new password")
	}
	if err := f.svc.RotateRoot(ctx, "pg"); err != nil {
		t.Fatalf("RotateRoot after a lost answer: %v", err)
	}
	usable(t, f)
	// A rewrite without the password verifies with the stored one.
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "pg", Plugin: dbcred.PluginPostgres,
		ConnectionURL: pgTemplateURL(t, dbURL), Username: adminRole, AllowedRoles: []string{"r"}}); err != nil {
		t.Errorf("PutConnection after rotation: %v", err)
	}
}

// TestRotateRootCachedPoolNotUsedWhilePending: with a lost answer pending,
// ordinary use must settle it (the cached pool logged in with the old
// password would hide the change), so the password is never lost.
func TestRotateRootCachedPoolNotUsedWhilePending(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.PostgresWithPasswords(t)
	f, _, _ := pwAdmin(t, dbURL)
	if _, err := f.svc.Creds(ctx, "r", dbcred.CredsInput{}); err != nil {
		t.Fatal(err)
	}
	f.svc.SetAfterSetPasswordForTest(func(error) error { return errors.New("connection reset by peer") })
	if err := f.svc.RotateRoot(ctx, "pg"); err == nil {
		t.Fatal("RotateRoot with a lost answer = nil")
	}
	f.svc.SetAfterSetPasswordForTest(nil)
	if _, err := f.svc.Creds(ctx, "r", dbcred.CredsInput{}); err != nil {
		t.Fatalf("Creds with a pending rotation: %v", err)
	}
	usable(t, f)
}

// TestRotateRootConcurrent: overlapping rotations never both write a
// pending password; the survivor's password is the one stored.
func TestRotateRootConcurrent(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.PostgresWithPasswords(t)
	f, _, _ := pwAdmin(t, dbURL)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.svc.RotateRoot(ctx, "pg") }()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, dbcred.ErrInUse):
			t.Errorf("concurrent RotateRoot = %v, want nil or ErrInUse", err)
		}
	}
	if ok == 0 {
		t.Error("no concurrent rotation succeeded")
	}
	usable(t, f)
}

// setPending writes a pending admin password into the stored connection,
// as another node's rotation in flight leaves it.
func setPending(t *testing.T, f *fixture, name, password, by string, since time.Time) {
	t.Helper()
	err := f.store.Update(context.Background(), func(tx storage.Tx) error {
		raw, err := tx.Get("dbcred/config/" + name)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		m["pending_password"], m["pending_by"], m["pending_since"] = password, by, since
		m["version"] = m["version"].(float64) + 1
		raw, _ = json.Marshal(m)
		return tx.Put("dbcred/config/"+name, raw)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRotateRootPendingElsewhere: a pending password another node wrote a
// moment ago (its ALTER not yet run) is left alone; once it is old it is
// settled. Meanwhile credentials are still issued.
func TestRotateRootPendingElsewhere(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.PostgresWithPasswords(t)
	f, _, _ := pwAdmin(t, dbURL)
	setPending(t, f, "pg", "A1a-not-on-the-database-yet", "othernode", f.clock.now())
	if err := f.svc.RotateRoot(ctx, "pg"); !errors.Is(err, dbcred.ErrInUse) {
		t.Fatalf("RotateRoot while another node rotates = %v, want ErrInUse", err)
	}
	if _, err := f.svc.Creds(ctx, "r", dbcred.CredsInput{}); err != nil {
		t.Fatalf("Creds while another node rotates: %v", err)
	}
	f.clock.advance(5 * time.Minute)
	if err := f.svc.RotateRoot(ctx, "pg"); err != nil {
		t.Fatalf("RotateRoot after the other rotation's window: %v", err)
	}
	usable(t, f)
}

// TestRotateRootLostAnswerOldRecord: the state a lost answer leaves,
// written directly (the database holds the pending password, the record
// still the old one). A rotation must adopt the pending password rather
// than overwrite it.
func TestRotateRootLostAnswerOldRecord(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.PostgresWithPasswords(t)
	f, super, adminRole := pwAdmin(t, dbURL)
	const p1 = "A1a-committed-but-unacknowledged"
	if _, err := super.ExecContext(ctx, "ALTER ROLE "+adminRole+" PASSWORD '"+p1+"'"); err != nil {
		t.Fatal(err)
	}
	setPending(t, f, "pg", p1, "", f.clock.now().Add(-time.Hour))
	if err := f.svc.RotateRoot(ctx, "pg"); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	usable(t, f)
}

// slowProxy forwards TCP connections to a PostgreSQL server. A connection
// accepted while the proxy holds logs in normally, but its first query
// (the ping after login) waits until the hold is released.
type slowProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	hold    chan struct{} // non-nil: connections accepted now wait for it to close
	waiting chan struct{} // gets a value when a connection starts waiting
}

func newSlowProxy(t testing.TB, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, waiting: make(chan struct{}, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			hold := p.hold
			p.mu.Unlock()
			go p.serve(c, target, hold)
		}
	}()
	return p
}

func (p *slowProxy) serve(c net.Conn, target string, hold chan struct{}) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	go io.Copy(c, up)
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 && hold != nil && (buf[0] == 'Q' || buf[0] == 'P') {
			p.waiting <- struct{}{}
			<-hold
			hold = nil
		}
		if n > 0 {
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *slowProxy) setHold(ch chan struct{}) { p.mu.Lock(); p.hold = ch; p.mu.Unlock() }

// TestPutConnectionDuringRotation: a rewrite without a password whose
// verification overlaps a root rotation must not store the password it
// read before the rotation.
func TestPutConnectionDuringRotation(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.PostgresWithPasswords(t)
	u, _ := url.Parse(dbURL)
	proxy := newSlowProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	f, _, adminRole := pwAdmin(t, u.String())

	release := make(chan struct{})
	proxy.setHold(release)
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "pg", Plugin: dbcred.PluginPostgres,
			ConnectionURL: pgTemplateURL(t, u.String()), Username: adminRole, AllowedRoles: []string{"r", "other"}})
		done <- err
	}()
	<-proxy.waiting // the rewrite is verifying
	proxy.setHold(nil)
	if err := f.svc.RotateRoot(ctx, "pg"); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, dbcred.ErrInUse) {
		t.Errorf("PutConnection overlapping a rotation = %v, want ErrInUse", err)
	}
	usable(t, f)
}

type noopRevoker struct{}

func (noopRevoker) Revoke(context.Context, *lease.Lease) error { return nil }

// TestConnectionMoveNeedsPassword: the stored admin password is never sent
// to a new host, port, user, database or TLS setting: such a rewrite needs
// the password, and is refused while leases are live.
func TestConnectionMoveNeedsPassword(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pw := "s3cret-pw"
	const base = "postgres://{{username}}:{{password}}@10.0.0.1:5432/app?sslmode=verify-full"
	put := func(connURL, user string, password *string) error {
		_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: dbcred.PluginPostgres,
			ConnectionURL: connURL, Username: user, Password: password, AllowedRoles: []string{"*"}, SkipVerify: true})
		return err
	}
	if err := put(base, "admin", &pw); err != nil {
		t.Fatal(err)
	}
	if err := put(base, "admin", nil); err != nil {
		t.Errorf("rewrite to the same place without password: %v", err)
	}
	for _, tc := range []struct{ name, url, user string }{
		{"host", strings.Replace(base, "10.0.0.1", "evil.example", 1), "admin"},
		{"port", strings.Replace(base, ":5432", ":6543", 1), "admin"},
		{"database", strings.Replace(base, "/app", "/other", 1), "admin"},
		{"tls", strings.Replace(base, "verify-full", "disable", 1), "admin"},
		{"user", base, "someone"},
		{"second host", strings.Replace(base, "10.0.0.1:5432", "10.0.0.1:5432,evil.example:5432", 1), "admin"},
		{"channel_binding", base + "&channel_binding=disable", "admin"},
		{"require_auth", base + "&require_auth=password", "admin"},
		{"sslnegotiation", base + "&sslnegotiation=direct", "admin"},
		{"target_session_attrs", base + "&target_session_attrs=read-write", "admin"},
	} {
		err := put(tc.url, tc.user, nil)
		var ie *dbcred.InputError
		if !errors.As(err, &ie) || ie.Field != "password" {
			t.Errorf("%s changed without password = %v, want an InputError for password", tc.name, err)
		}
	}
	// application_name and connect_timeout change nothing about the login.
	if err := put(base+"&application_name=coffer-x&connect_timeout=5", "admin", nil); err != nil {
		t.Errorf("application_name and connect_timeout changed without password: %v", err)
	}
	if err := put(base, "admin", nil); err != nil {
		t.Errorf("back without application_name: %v", err)
	}
	// MySQL: the authentication settings count as well.
	const mbase = "{{username}}@tcp(10.0.0.1:3306)/app?tls=true"
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "my", Plugin: dbcred.PluginMySQL, ConnectionURL: mbase,
		Username: "admin", Password: &pw, SkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{mbase + "&allowNativePasswords=false", strings.Replace(mbase, "tls=true", "tls=skip-verify", 1),
		strings.Replace(mbase, "10.0.0.1", "10.0.0.2", 1)} {
		_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "my", Plugin: dbcred.PluginMySQL, ConnectionURL: u,
			Username: "admin", SkipVerify: true})
		var ie *dbcred.InputError
		if !errors.As(err, &ie) || ie.Field != "password" {
			t.Errorf("MySQL %q without password = %v, want an InputError for password", u, err)
		}
	}
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "my", Plugin: dbcred.PluginMySQL, ConnectionURL: mbase + "&timeout=5s",
		Username: "admin", SkipVerify: true}); err != nil {
		t.Errorf("MySQL timeout changed without password: %v", err)
	}
	// With live leases even the password does not allow a move.
	f.leases.Register("test", noopRevoker{})
	if _, err := f.svc.PutRole(ctx, dbcred.Role{Name: "r", DBName: "x", CreationStatements: []string{"CREATE ROLE {{name}}"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.leases.Create(ctx, lease.Input{Kind: "test", Prefix: dbcred.LeasePrefix + "r", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	other := "other-pw"
	if err := put(strings.Replace(base, "10.0.0.1", "10.0.0.2", 1), "admin", &other); !errors.Is(err, dbcred.ErrInUse) {
		t.Errorf("move with live leases = %v, want ErrInUse", err)
	}
	if err := put(base, "admin", &other); err != nil {
		t.Errorf("new password, same place, live leases: %v", err)
	}
}

// storedField reads one field of a stored connection record.
func storedField(t *testing.T, f *fixture, name, field string) any {
	t.Helper()
	raw, err := f.store.Get(context.Background(), "dbcred/config/"+name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[field]
}

// TestConnectionMoveRefusedWhilePending: while a root rotation is
// unsettled, its pending password (which the database may hold) must not
// go anywhere new: a move is refused even with a password, and a rewrite
// to the same place keeps the pending password.
func TestConnectionMoveRefusedWhilePending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pw := "s3cret-pw"
	const base = "postgres://{{username}}:{{password}}@10.0.0.1:5432/app?sslmode=verify-full"
	put := func(connURL string, password *string) error {
		_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: dbcred.PluginPostgres,
			ConnectionURL: connURL, Username: "admin", Password: password, AllowedRoles: []string{"*"}, SkipVerify: true})
		return err
	}
	if err := put(base, &pw); err != nil {
		t.Fatal(err)
	}
	setPending(t, f, "x", "A1a-pending-admin-password", "othernode", f.clock.now().Add(-time.Hour))
	mine := "attacker-knows-this"
	for _, u := range []string{strings.Replace(base, "10.0.0.1", "evil.example", 1), base + "&channel_binding=disable"} {
		for _, p := range []*string{&mine, nil} {
			if err := put(u, p); !errors.Is(err, dbcred.ErrInUse) || !strings.Contains(err.Error(), "rotate-root") {
				t.Errorf("move to %q with a pending rotation = %v, want ErrInUse asking to settle it", u, err)
			}
		}
	}
	if err := put(base+"&application_name=x", nil); err != nil {
		t.Fatalf("rewrite in place with a pending rotation: %v", err)
	}
	if got := storedField(t, f, "x", "pending_password"); got != "A1a-pending-admin-password" {
		t.Errorf("pending password after an in-place rewrite = %v", got)
	}
}

// TestConnectionMoveCannotHarvestPending: the database holds the pending
// password of an unsettled rotation. A writer who moves the connection to
// a host of their own (here a proxy to the same server, which accepts it)
// with a password of their choosing must not get the pending password
// sent there.
func TestConnectionMoveCannotHarvestPending(t *testing.T) {
	ctx := context.Background()
	_, dbURL := testdb.PostgresWithPasswords(t)
	f, super, adminRole := pwAdmin(t, dbURL)
	const p1 = "A1a-committed-but-unacknowledged"
	if _, err := super.ExecContext(ctx, "ALTER ROLE "+adminRole+" PASSWORD '"+p1+"'"); err != nil {
		t.Fatal(err)
	}
	setPending(t, f, "pg", p1, "", f.clock.now().Add(-time.Hour))
	u, _ := url.Parse(dbURL)
	proxy := newSlowProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	guess := "not-the-password"
	_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "pg", Plugin: dbcred.PluginPostgres,
		ConnectionURL: pgTemplateURL(t, u.String()), Username: adminRole, Password: &guess, AllowedRoles: []string{"r"}})
	if !errors.Is(err, dbcred.ErrInUse) {
		t.Fatalf("move with a pending rotation = %v, want ErrInUse", err)
	}
	c, _ := f.svc.Connection(ctx, "pg")
	if strings.Contains(c.ConnectionURL, u.Host) {
		t.Fatalf("the connection moved: %s", c.ConnectionURL)
	}
	// Settling (rotate-root) clears the way.
	if err := f.svc.RotateRoot(ctx, "pg"); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	usable(t, f)
}

// TestConnectionURLRefusals: connection URL settings that weaken how the
// admin password is sent, read local files, or let the environment choose
// where it goes are refused.
func TestConnectionURLRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGUSER", "envuser")
	pw := "pw"
	for _, tc := range []struct{ plugin, url string }{
		{dbcred.PluginMySQL, "{{username}}@tcp(10.0.0.1:3306)/app?allowCleartextPasswords=true"},
		{dbcred.PluginMySQL, "{{username}}@tcp(10.0.0.1:3306)/app?allowOldPasswords=1"},
		{dbcred.PluginMySQL, "{{username}}@tcp(10.0.0.1:3306)/app?tls=preferred"},
		{dbcred.PluginMySQL, "{{username}}@tcp(10.0.0.1:3306)/app?allowFallbackToPlaintext=true"},
		{dbcred.PluginMySQL, "{{username}}@tcp(10.0.0.1:3306)/app?allowAllFiles=true"},
		{dbcred.PluginMySQL, "{{username}}@tcp(10.0.0.1:3306)/app?sql_mode=ANSI"},
		{dbcred.PluginMySQL, "mysql://{{username}}@10.0.0.1:3306/app?allowCleartextPasswords=true"},
		{dbcred.PluginMySQL, "mysql://{{username}}@10.0.0.1:3306/app?tls=preferred"},
		{dbcred.PluginPostgres, "postgres://u@10.0.0.1/app?passfile=/etc/shadow"},
		{dbcred.PluginPostgres, "postgres://u@10.0.0.1/app?sslrootcert=/etc/shadow&sslmode=verify-full"},
		{dbcred.PluginPostgres, "postgres://u@10.0.0.1/app?sslkey=/etc/shadow&sslcert=/etc/shadow"},
		{dbcred.PluginPostgres, "postgres://u@10.0.0.1/app?servicefile=/tmp/x&service=evil"},
		{dbcred.PluginPostgres, "postgres://u@10.0.0.1/app?service=evil"},
		{dbcred.PluginPostgres, "postgres://u@10.0.0.1/app?options=-c%20log_statement%3Dall"},
		{dbcred.PluginPostgres, "host=10.0.0.1 user=u passfile=/etc/shadow"},
		{dbcred.PluginPostgres, "postgres:///app"}, // host from PGHOST
		{dbcred.PluginPostgres, "dbname=app"},
		// Local Unix sockets, where the database would authenticate Coffer's OS user.
		{dbcred.PluginPostgres, "host=/var/run/postgresql user=u dbname=app"},
		{dbcred.PluginPostgres, "postgres://u@%2Fvar%2Frun%2Fpostgresql/app"},
		{dbcred.PluginPostgres, "postgres://u@10.0.0.1/app?host=/tmp"},
		{dbcred.PluginPostgres, "postgres:///app?host=%2Ftmp"},
		{dbcred.PluginPostgres, "host=10.0.0.1,/tmp user=u dbname=app"},
		{dbcred.PluginPostgres, "host=10.0.0.1,@abstract user=u dbname=app"},
		{dbcred.PluginPostgres, "host=@abstract user=u dbname=app"},
		{dbcred.PluginPostgres, "host='' user=u dbname=app"},
		{dbcred.PluginMySQL, "{{username}}@unix(/var/run/mysqld/mysqld.sock)/app"},
		{dbcred.PluginMySQL, "{{username}}@unix/app"},
	} {
		_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: tc.plugin, ConnectionURL: tc.url,
			Password: &pw, SkipVerify: true})
		var ie *dbcred.InputError
		if !errors.As(err, &ie) || ie.Field != "connection_url" {
			t.Errorf("PutConnection(%s %q) = %v, want an InputError for connection_url", tc.plugin, tc.url, err)
		}
	}
	// The user is never taken from PGUSER.
	_, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "x", Plugin: dbcred.PluginPostgres,
		ConnectionURL: "postgres://127.0.0.1:1/app", Password: &pw})
	var ie *dbcred.InputError
	if !errors.As(err, &ie) || ie.Field != "username" {
		t.Errorf("PutConnection without a user = %v, want an InputError for username", err)
	}
	for _, ok := range []struct{ plugin, url string }{
		{dbcred.PluginMySQL, "{{username}}@tcp(10.0.0.1:3306)/app?tls=true&timeout=5s"},
		{dbcred.PluginMySQL, "mysql://{{username}}@10.0.0.1:3306/app?tls=skip-verify"},
		{dbcred.PluginPostgres, "postgres://{{username}}@10.0.0.1,10.0.0.2/app?sslmode=verify-full&target_session_attrs=read-write"},
		{dbcred.PluginPostgres, "host=10.0.0.1 user=admin dbname=app sslmode=require"},
	} {
		if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "ok", Plugin: ok.plugin, ConnectionURL: ok.url,
			Username: "admin", Password: &pw, SkipVerify: true}); err != nil {
			t.Errorf("PutConnection(%s %q) = %v", ok.plugin, ok.url, err)
		}
		if err := f.svc.DeleteConnection(ctx, "ok"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMySQLURLQueryHonoured: a mysql:// URL's query is not dropped:
// tls=true makes the admin login use TLS (which the test server refuses or
// cannot prove), tls=false connects.
func TestMySQLURLQueryHonoured(t *testing.T) {
	ctx := context.Background()
	cfg, err := mysql.ParseDSN(testdb.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	base := "mysql://" + cfg.User + "@" + cfg.Addr + "/" + cfg.DBName
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "m", Plugin: dbcred.PluginMySQL, ConnectionURL: base + "?tls=false"}); err != nil {
		t.Fatalf("mysql:// URL with tls=false: %v", err)
	}
	_, err = f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "m2", Plugin: dbcred.PluginMySQL, ConnectionURL: base + "?tls=true"})
	var de *dbcred.DBError
	if !errors.As(err, &de) {
		t.Errorf("mysql:// URL with tls=true against a server without a trusted certificate = %v, want a DBError", err)
	}
}

// TestRotateRootPostgresPasswords: on a server that checks passwords, the
// rotated admin password (sent as a SCRAM verifier) is the one that works,
// and the old one is refused.
func TestRotateRootPostgresPasswords(t *testing.T) {
	ctx := context.Background()
	adminURL, dbURL := testdb.PostgresWithPasswords(t)
	su := open(t, "pgx", adminURL)
	role := "coffer_scram_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if _, err := su.ExecContext(ctx, `CREATE ROLE `+role+` WITH LOGIN CREATEROLE PASSWORD 'initial'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { su.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+role) })
	u, _ := url.Parse(dbURL)
	withUser := func(user, pw string) string {
		v := *u
		v.User = url.UserPassword(user, pw)
		return v.String()
	}
	if err := canLoginNoTable(withUser(role, "initial")); err != nil {
		t.Fatalf("initial password refused: %v", err)
	}
	f := newFixture(t)
	pw := "initial"
	tmpl := strings.Replace(withUser("USER", "PASS"), "USER:PASS", "{{username}}:{{password}}", 1)
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "pg", Plugin: dbcred.PluginPostgres,
		ConnectionURL: tmpl, Username: role, Password: &pw}); err != nil {
		t.Fatalf("PutConnection: %v", err)
	}
	if err := f.svc.RotateRoot(ctx, "pg"); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	if err := canLoginNoTable(withUser(role, "initial")); err == nil {
		t.Error("the old admin password still works")
	}
	// Rewriting the connection without a password verifies with the stored (new) one.
	if _, err := f.svc.PutConnection(ctx, dbcred.ConnInput{Name: "pg", Plugin: dbcred.PluginPostgres,
		ConnectionURL: tmpl, Username: role}); err != nil {
		t.Errorf("the rotated password does not work: %v", err)
	}
}
