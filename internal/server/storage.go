package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/bolt"
	"github.com/coffer-dev/coffer/internal/storage/postgres"
)

// OpenStorage opens the configured backend: the bolt file (creating its
// directory), or the postgres database, applying schema migrations.
func (c *Config) OpenStorage(ctx context.Context, log *slog.Logger) (storage.Backend, error) {
	switch st := c.Storage; st.Type {
	case "bolt":
		if err := os.MkdirAll(filepath.Dir(st.Path), 0o700); err != nil {
			return nil, err
		}
		return bolt.Open(st.Path)
	case "postgres":
		timeout, _ := time.ParseDuration(st.Timeout)
		return postgres.Open(ctx, postgres.Config{URL: st.PostgresURL(), Timeout: timeout, MaxConns: int32(st.MaxConns), Logger: log})
	}
	return nil, fmt.Errorf("storage %q: unsupported", c.Storage.Type)
}

// StorageName describes the storage for logs, without credentials.
func (c *Config) StorageName() string {
	if c.Storage.Type == "postgres" {
		return "postgres"
	}
	return c.Storage.Path
}

// ClusterOptions returns the cluster block's settings (zero when none).
func (c *Config) ClusterOptions() ClusterOptions {
	if c.Cluster == nil {
		return ClusterOptions{}
	}
	return ClusterOptions{NodeID: c.Cluster.NodeID, APIAddr: c.Cluster.APIAddr}
}
