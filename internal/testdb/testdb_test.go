package testdb

import (
	"database/sql"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func query(t *testing.T, driver, dsn string) string {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestShared(t *testing.T) {
	t.Log(query(t, "pgx", Postgres(t)))
	t.Log(query(t, "mysql", MySQL(t)))
}

// TestThrowaway starts private servers from the installed binaries, as a
// machine without running databases would, and restarts one.
func TestThrowaway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts database servers")
	}
	pg, err := StartPostgres()
	if err != nil {
		unavailable(t, "PostgreSQL binaries", err)
	}
	defer pg.Remove()
	query(t, "pgx", pg.URL)
	pg.Stop()
	if pingPostgres(pg.URL) == nil {
		t.Fatal("stopped server still answers")
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	query(t, "pgx", pg.URL)

	my, err := StartMySQL()
	if err != nil {
		unavailable(t, "MariaDB binaries", err)
	}
	defer my.Remove()
	query(t, "mysql", my.URL)
}
