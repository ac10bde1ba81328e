package lease

import (
	"context"

	"github.com/coffer-dev/coffer/internal/storage"
)

// PutForTest stores leases in one transaction, as Create would one by one.
func PutForTest(ctx context.Context, s Store, ls []*Lease) error {
	return s.Update(ctx, func(tx storage.Tx) error {
		for _, l := range ls {
			if err := putLease(tx, nil, l); err != nil {
				return err
			}
		}
		return nil
	})
}

// MarkRevokingForTest records a revocation request without acting on it,
// as a crash right after the request would leave it.
func (m *Manager) MarkRevokingForTest(ctx context.Context, id string) error {
	_, err := m.markRevoking(ctx, []string{id}, "revoked")
	return err
}

// RandomIDForTest exposes the id generator.
var RandomIDForTest = randomID
