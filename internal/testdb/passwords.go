package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	pwOnce sync.Once
	pwSrv  *Server
	pwErr  error
)

// PostgresWithPasswords returns the admin URL of a private PostgreSQL server
// that checks passwords (scram-sha-256) for every role but the postgres
// superuser, which logs in without one over TCP from 127.0.0.1. The shared
// local server trusts every login, so tests that prove an old password is
// refused need this one. It is started once per test binary (call
// testdb.Main from TestMain) and each test gets a fresh database, dropped
// when it ends; its URL is returned.
func PostgresWithPasswords(t testing.TB) (adminURL, dbURL string) {
	t.Helper()
	pwOnce.Do(func() { pwSrv, pwErr = StartPostgresWithPasswords() })
	if pwErr != nil {
		unavailable(t, "PostgreSQL server binaries", pwErr)
	}
	return pwSrv.URL, createPostgresDB(t, pwSrv.URL)
}

// StartPostgresWithPasswords starts a throwaway PostgreSQL server whose
// pg_hba.conf trusts only the postgres superuser on 127.0.0.1 and asks
// every other role for its password (scram-sha-256).
func StartPostgresWithPasswords() (*Server, error) {
	s, err := StartPostgres()
	if err != nil {
		return nil, err
	}
	hba := "# written by testdb.StartPostgresWithPasswords\n" +
		"local all all trust\n" +
		"host all postgres 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	path := filepath.Join(s.dir, "data", "pg_hba.conf")
	fi, err := os.Stat(path)
	if err != nil {
		s.Remove()
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hba), fi.Mode().Perm()); err != nil {
		s.Remove()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", s.URL)
	if err != nil {
		s.Remove()
		return nil, err
	}
	defer db.Close()
	var ok bool
	if err := db.QueryRowContext(ctx, "SELECT pg_reload_conf()").Scan(&ok); err != nil || !ok {
		s.Remove()
		return nil, fmt.Errorf("reload pg_hba.conf: %v", err)
	}
	// The reload is asynchronous: wait until a wrong password is refused.
	if _, err := db.ExecContext(ctx, "CREATE ROLE coffer_hba_probe LOGIN PASSWORD 'probe'"); err != nil {
		s.Remove()
		return nil, err
	}
	probe := fmt.Sprintf("postgres://coffer_hba_probe:wrong@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if pingPostgres(probe) != nil {
			return s, nil
		}
	}
	s.Remove()
	return nil, fmt.Errorf("pg_hba.conf was not reloaded")
}
