package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coffer-dev/coffer/internal/storage"
)

// migrationLock is the advisory lock key that serializes migrations of
// nodes starting at once ("coffer-m" in ASCII).
const migrationLock = 0x636f666665722d6d

// migrations are applied in order, each once; never edit a released one,
// append a new one.
var migrations = []string{
	// 1: records, the cluster's node registry and the event counter.
	`CREATE TABLE coffer_kv (
		key   bytea PRIMARY KEY,
		value bytea NOT NULL
	);
	CREATE TABLE coffer_nodes (
		id         text PRIMARY KEY,
		api_addr   text NOT NULL,
		sealed     boolean NOT NULL,
		leader     boolean NOT NULL,
		version    text NOT NULL,
		started_at timestamptz NOT NULL,
		heartbeat  timestamptz NOT NULL
	);
	CREATE TABLE coffer_event_seq (
		id  int PRIMARY KEY CHECK (id = 1),
		seq bigint NOT NULL
	);
	INSERT INTO coffer_event_seq VALUES (1, 0);`,
	// 2: the backend pid of the session each node holds or tries for the
	// leader lock with, so that the registry names the leader from pg_locks
	// at once rather than from heartbeats that lag behind a fail-over.
	// NULL: a node of a build that does not write it.
	`ALTER TABLE coffer_nodes ADD COLUMN session_pid int;`,
}

// SchemaVersion is the schema version this build migrates to.
var SchemaVersion = len(migrations)

// migrate applies the migrations this database lacks, in one transaction
// under an advisory lock, so nodes starting together apply each once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	began := false
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		began = true
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("postgres migrations: lock: %w", mapErr(err))
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS coffer_schema (
			version    int PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("postgres migrations: %w", mapErr(err))
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM coffer_schema`).Scan(&have); err != nil {
			return fmt.Errorf("postgres migrations: %w", mapErr(err))
		}
		if have > len(migrations) {
			return fmt.Errorf("postgres schema version %d is newer than this build's %d: upgrade coffer", have, len(migrations))
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("postgres migration %d: %w", v, mapErr(err))
			}
			if _, err := tx.Exec(ctx, `INSERT INTO coffer_schema (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("postgres migration %d: %w", v, mapErr(err))
			}
		}
		return nil
	})
	if err != nil && !began { // no connection: the database is unreachable or refuses us
		if errors.Is(mapErr(err), storage.ErrUnavailable) {
			// Keep the cause reachable (errors.As) for Open's message.
			return fmt.Errorf("postgres migrations: %w: %w", storage.ErrUnavailable, err)
		}
		return fmt.Errorf("postgres migrations: %w", err)
	}
	return err
}
