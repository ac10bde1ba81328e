package core

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/coffer-dev/coffer/internal/storage"
)

// cursorKeyPath holds the key that seals list cursors, inside the barrier,
// so that every node of a cluster opens the cursors of the others.
const cursorKeyPath = "sys/list/cursor-key"

// ErrBadCursor means a list cursor did not come from a previous page.
var ErrBadCursor = errors.New("cursor is not from a previous page of this list")

// SealCursor turns the position where a list page stopped into an opaque
// cursor for the next page. The position is the last name the server
// examined, which may be one the caller is not allowed to see: sealed
// (AES-256-GCM under a key in the barrier, bound to kind), it tells the
// caller nothing. kind names the list ("secrets", "aws-list", ...), so a
// cursor of one list is refused by another. An empty position stays empty.
func (c *Core) SealCursor(ctx context.Context, kind, pos string) (string, error) {
	if pos == "" {
		return "", nil
	}
	aead, err := c.cursorAEAD(ctx)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pos)+aead.Overhead())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(pos), []byte(kind))), nil
}

// OpenCursor returns the position sealed in a cursor from SealCursor with
// the same kind, or ErrBadCursor. An empty cursor is the first page.
func (c *Core) OpenCursor(ctx context.Context, kind, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	if len(cursor) > 4096 {
		return "", ErrBadCursor
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", ErrBadCursor
	}
	aead, err := c.cursorAEAD(ctx)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", ErrBadCursor
	}
	pos, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(kind))
	if err != nil || len(pos) == 0 {
		return "", ErrBadCursor
	}
	return string(pos), nil
}

// cursorAEAD returns the cursor cipher, loading or creating its key.
func (c *Core) cursorAEAD(ctx context.Context) (cipher.AEAD, error) {
	if a := c.cursor.Load(); a != nil {
		return *a, nil
	}
	if c.barrier.Sealed() {
		return nil, ErrSealed
	}
	key, err := c.barrier.Get(ctx, cursorKeyPath)
	if errors.Is(err, storage.ErrNotFound) {
		fresh := make([]byte, 32)
		rand.Read(fresh)
		err = c.barrier.Update(ctx, func(tx storage.Tx) error {
			if existing, err := tx.Get(cursorKeyPath); err == nil {
				key = existing // another node made it first
				return nil
			}
			key = fresh
			return tx.Put(cursorKeyPath, fresh)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list cursor key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("list cursor key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	c.cursor.Store(&aead)
	return aead, nil
}
