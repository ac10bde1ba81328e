package core

import (
	"context"
	"errors"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
)

// schedulePrefix + job name -> the start of the newest slot done (RFC 3339).
const schedulePrefix = "sys/schedule/"

// SlotDone reports whether the scheduled job has completed the slot that
// starts at slot (or a later one). Several nodes share this record, so a
// leader that takes over knows what its predecessor finished.
func (c *Core) SlotDone(ctx context.Context, job string, slot time.Time) (bool, error) {
	raw, err := c.barrier.Get(ctx, schedulePrefix+job)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	done, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return false, nil // unreadable: do the work again
	}
	return !done.Before(slot), nil
}

// MarkSlotDone records that the scheduled job completed the slot that
// starts at slot; an older slot never overwrites a newer one.
func (c *Core) MarkSlotDone(ctx context.Context, job string, slot time.Time) error {
	return c.barrier.Update(ctx, func(tx storage.Tx) error {
		if raw, err := tx.Get(schedulePrefix + job); err == nil {
			if done, err := time.Parse(time.RFC3339Nano, string(raw)); err == nil && !done.Before(slot) {
				return nil
			}
		}
		return tx.Put(schedulePrefix+job, []byte(slot.UTC().Format(time.RFC3339Nano)))
	})
}
