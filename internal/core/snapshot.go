package core

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/coffer-dev/coffer/internal/seal"
	"github.com/coffer-dev/coffer/internal/snapshot"
	"github.com/coffer-dev/coffer/internal/storage"
)

// ErrNoSnapshots means the storage backend cannot take consistent snapshots.
var ErrNoSnapshots = errors.New("this storage backend cannot take snapshots")

// ErrRestoreInitialized means a snapshot can only be restored into a server
// that was never initialized.
var ErrRestoreInitialized = errors.New("snapshots are restored into a fresh, uninitialized server")

// Snapshot writes a consistent backup of all storage to w.
func (c *Core) Snapshot(ctx context.Context, w io.Writer) (int, error) {
	s, ok := c.backend.(storage.Snapshotter)
	if !ok {
		return 0, ErrNoSnapshots
	}
	return snapshot.Write(ctx, s, w)
}

// restoreBatch is how many records one restore transaction writes.
const restoreBatch = 500

// Restore loads a snapshot into a fresh server. The server is then
// initialized and sealed: unseal it with the snapshot's unseal keys (or its
// key file, which must be in place).
func (c *Core) Restore(ctx context.Context, data []byte) (int, error) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	if st.Initialized {
		return 0, ErrRestoreInitialized
	}
	// Check the whole snapshot before writing anything: a bad one (or one
	// without a seal configuration) leaves the server as fresh as it was.
	hasSeal := false
	if _, err := snapshot.Parse(data, func(k string, _ []byte) error {
		hasSeal = hasSeal || k == seal.ConfigPath
		return nil
	}); err != nil {
		return 0, err
	}
	if !hasSeal {
		return 0, fmt.Errorf("%w: it holds no seal configuration", snapshot.ErrCorrupt)
	}
	type rec struct {
		k string
		v []byte
	}
	var batch []rec
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.backend.Update(ctx, func(tx storage.Tx) error {
			for _, r := range batch {
				if err := tx.Put(r.k, r.v); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	// The seal configuration marks the server initialized: write it last,
	// so an interrupted restore leaves a server that is still fresh.
	var sealRec *rec
	n, err := snapshot.Parse(data, func(k string, v []byte) error {
		if k == seal.ConfigPath {
			sealRec = &rec{k, v}
			return nil
		}
		batch = append(batch, rec{k, v})
		if len(batch) == restoreBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && sealRec == nil {
		err = fmt.Errorf("%w: it holds no seal configuration", snapshot.ErrCorrupt)
	}
	if err == nil {
		batch = append(batch, *sealRec)
		err = flush()
	}
	if err != nil {
		return 0, err
	}
	c.log.Info("snapshot restored", "records", n)
	if c.seal.Type() == seal.TypeKeyFile {
		// The key file of the snapshot's server may already be in place.
		if err := c.seal.AutoUnseal(ctx); err == nil && !c.barrier.Sealed() {
			if err := c.afterUnsealLocked(ctx); err != nil {
				c.log.Warn("unseal after restore failed", "error", err)
			}
		} else {
			c.log.Warn("the key file does not open the restored snapshot; put its server's key file in place and restart", "error", err)
			c.seal.Seal()
		}
	}
	return n, nil
}
