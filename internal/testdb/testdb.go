// Package testdb gives tests a real PostgreSQL or MariaDB/MySQL server.
//
// The server comes from COFFER_TEST_POSTGRES_URL / COFFER_TEST_MYSQL_URL when
// set; otherwise from the conventional local server (127.0.0.1:5432 as
// postgres, 127.0.0.1:3306 as root) when one answers; otherwise a throwaway
// server is started from the installed binaries (initdb/pg_ctl,
// mariadb-install-db/mariadbd) in a temporary directory on a free port. Each
// test gets its own freshly created database, dropped when the test ends.
//
// When no server can be had the test is skipped, unless COFFER_REQUIRE_DB=1,
// in which case it fails: CI sets it so a skipped database test fails CI.
//
// Packages that may start throwaway servers call testdb.Main from TestMain so
// the servers stop when the tests end.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Main runs the tests and then stops every throwaway server this process
// started. Use it as: func TestMain(m *testing.M) { testdb.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	stopAll()
	os.Exit(code)
}

var (
	mu      sync.Mutex
	started []*Server
	pgOnce  sync.Once
	pgBase  string // admin URL of the shared PostgreSQL server, "" if none
	pgErr   error
	myOnce  sync.Once
	myBase  string // admin DSN of the shared MySQL server
	myErr   error
)

func stopAll() {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range started {
		s.Stop()
	}
	started = nil
}

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("COFFER_REQUIRE_DB") == "1" {
		t.Fatalf("%s is required (COFFER_REQUIRE_DB=1) but unavailable: %v", what, err)
	}
	t.Skipf("%s unavailable: %v", what, err)
}

func randName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Postgres returns the URL of a new, empty PostgreSQL database for this test,
// connecting as a superuser. The database is dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() { pgBase, pgErr = findPostgres() })
	if pgErr != nil {
		unavailable(t, "PostgreSQL", pgErr)
	}
	return createPostgresDB(t, pgBase)
}

// PostgresAdminURL returns the URL of the shared PostgreSQL server's
// maintenance database (for tests that create roles).
func PostgresAdminURL(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() { pgBase, pgErr = findPostgres() })
	if pgErr != nil {
		unavailable(t, "PostgreSQL", pgErr)
	}
	return pgBase
}

func createPostgresDB(t testing.TB, base string) string {
	t.Helper()
	return withPath(base, createDB(t, "pgx", base, " WITH (FORCE)"))
}

// createDB creates a database with a random name on the server admin
// reaches through driver, drops it (DROP DATABASE ... dropSuffix) when the
// test ends, and returns its name.
func createDB(t testing.TB, driver, admin, dropSuffix string) string {
	t.Helper()
	exec := func(stmt string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open(driver, admin)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, stmt)
		return err
	}
	name := randName("coffer_test_")
	if err := exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { _ = exec("DROP DATABASE IF EXISTS " + name + dropSuffix) })
	return name
}

func withPath(base, db string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = "/" + db
	return u.String()
}

func pingPostgres(u string) error { return ping("pgx", u) }

func pingMySQL(dsn string) error { return ping("mysql", dsn) }

// ping reports whether a server answers at dsn within a few seconds.
func ping(driver, dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

func findPostgres() (string, error) {
	if u := os.Getenv("COFFER_TEST_POSTGRES_URL"); u != "" {
		return u, pingPostgres(u)
	}
	local := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if pingPostgres(local) == nil {
		return local, nil
	}
	s, err := StartPostgres()
	if err != nil {
		return "", err
	}
	return s.URL, nil
}

// Server is a throwaway database server this process started.
type Server struct {
	Kind string // "postgresql" or "mysql"
	URL  string // admin URL (PostgreSQL) or DSN (MySQL)
	Port int
	dir  string
	cmd  *exec.Cmd
	uid  *syscall.Credential
	// exited is closed when the process started last has been waited for.
	exited chan struct{}
}

// StartPostgres starts a throwaway PostgreSQL server in a temporary
// directory on a free port. It is stopped by Stop or by Main.
func StartPostgres() (*Server, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "coffer-pg-")
	if err != nil {
		return nil, err
	}
	cred, err := unprivileged(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: "postgresql", Port: port, dir: dir, uid: cred,
		URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir, "-c", "fsync=off",
		"-c", "max_connections=300")
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start (re)starts the server process and waits until it answers.
func (s *Server) Start() error {
	cmd := exec.Command(s.cmd.Path, s.cmd.Args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.uid, Setpgid: true}
	log, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	mu.Lock()
	registered := false
	for _, o := range started {
		registered = registered || o == s
	}
	if !registered {
		started = append(started, s)
	}
	mu.Unlock()
	ping := pingPostgres
	if s.Kind == "mysql" {
		ping = pingMySQL
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ping(s.URL)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("%s did not start: %v: %s", s.Kind, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the server process (fast shutdown) and waits for it to exit.
// The data directory stays, so Start can bring the same server back.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	sig := syscall.SIGINT // PostgreSQL's fast shutdown
	if s.Kind == "mysql" {
		sig = syscall.SIGTERM // mariadbd ignores SIGINT
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	// The port is released once the process is gone.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

// Remove stops the server and deletes its directory.
func (s *Server) Remove() {
	s.Stop()
	mu.Lock()
	for i, o := range started {
		if o == s {
			started = append(started[:i], started[i+1:]...)
			break
		}
	}
	mu.Unlock()
	_ = os.RemoveAll(s.dir)
}

func pgBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", fmt.Errorf("no PostgreSQL server binaries (initdb) found")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// unprivileged returns the credential servers run as: PostgreSQL refuses to
// run as root, so as root the server runs as the postgres (or nobody) user,
// which is given the directory.
func unprivileged(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "mysql", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and no unprivileged user to run the database as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// MySQL returns a DSN (go-sql-driver/mysql form) for a new, empty database
// on a MariaDB or MySQL server, connecting as an administrator. The database
// is dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	base := MySQLAdminDSN(t)
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = createDB(t, "mysql", base, "")
	return cfg.FormatDSN()
}

// MySQLAdminDSN returns the DSN of the shared MySQL server, without a database.
func MySQLAdminDSN(t testing.TB) string {
	t.Helper()
	myOnce.Do(func() { myBase, myErr = findMySQL() })
	if myErr != nil {
		unavailable(t, "MariaDB/MySQL", myErr)
	}
	return myBase
}

func findMySQL() (string, error) {
	if u := os.Getenv("COFFER_TEST_MYSQL_URL"); u != "" {
		dsn, err := MySQLDSN(u)
		if err != nil {
			return "", err
		}
		return dsn, pingMySQL(dsn)
	}
	local := "root@tcp(127.0.0.1:3306)/"
	if pingMySQL(local) == nil {
		return local, nil
	}
	s, err := StartMySQL()
	if err != nil {
		return "", err
	}
	return s.URL, nil
}

// MySQLDSN accepts either a go-sql-driver DSN or a mysql:// URL and returns a DSN.
func MySQLDSN(s string) (string, error) {
	if !strings.HasPrefix(s, "mysql://") {
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	return cfg.FormatDSN(), nil
}

// StartMySQL starts a throwaway MariaDB server in a temporary directory on a
// free port. It is stopped by Stop or by Main.
func StartMySQL() (*Server, error) {
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		return nil, fmt.Errorf("no mariadb-install-db: %v", err)
	}
	server := "/usr/sbin/mariadbd"
	if p, err := exec.LookPath("mariadbd"); err == nil {
		server = p
	}
	dir, err := os.MkdirTemp("", "coffer-mysql-")
	if err != nil {
		return nil, err
	}
	cred, err := unprivileged(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if cred != nil {
		u, _ := user.LookupId(strconv.Itoa(int(cred.Uid)))
		if u != nil {
			args = append(args, "--user="+u.Username)
		}
	}
	ins := exec.Command(install, args...)
	if out, err := ins.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	if cred != nil {
		_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
			return os.Chown(p, int(cred.Uid), int(cred.Gid))
		})
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: "mysql", Port: port, dir: dir, uid: cred,
		URL: fmt.Sprintf("root@tcp(127.0.0.1:%d)/", port)}
	s.cmd = exec.Command(server, "--no-defaults", "--datadir="+data, "--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--socket="+filepath.Join(dir, "mysql.sock"),
		"--pid-file="+filepath.Join(dir, "mysql.pid"), "--innodb-flush-log-at-trx-commit=0")
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}
