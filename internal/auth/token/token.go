// Package token issues and checks Coffer tokens. A token is shown to its
// holder once; storage keeps only an HMAC-SHA256 of it under a key held in
// the barrier, and an accessor that names the token without granting
// anything. Lookups are served from memory and a revocation removes the
// entry from memory before it returns.
package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const (
	hmacKeyPath    = "auth/token/hmac-key"
	byHashPrefix   = "auth/token/h/"
	byAccessPrefix = "auth/token/a/"
)

// ErrNotFound means no token has that accessor.
var ErrNotFound = errors.New("token not found")

// Entry is what is stored about a token. It never holds the token.
type Entry struct {
	Accessor    string            `json:"accessor"`
	DisplayName string            `json:"display_name"`
	Policies    []string          `json:"policies"`
	Meta        map[string]string `json:"meta,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   *time.Time        `json:"expires_at,omitempty"`

	hash string // storage id; not serialized
}

// Principal returns the caller this entry authenticates.
func (e *Entry) Principal() *auth.Principal {
	return &auth.Principal{Name: e.DisplayName, Accessor: e.Accessor, Policies: e.Policies, Meta: e.Meta}
}

// Store is what the token service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Service issues, looks up and revokes tokens. It is safe for concurrent use.
type Service struct {
	store Store
	now   func() time.Time

	mu      sync.RWMutex      // guards the fields below
	hmacKey []byte            // nil until Load
	cache   map[string]*Entry // token hash -> entry, filled on lookup
}

// New returns a Service; call Load after the barrier is unsealed.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Load reads (creating on first use) the HMAC key. Call it after unseal.
func (s *Service) Load(ctx context.Context) error {
	key, err := s.store.Get(ctx, hmacKeyPath)
	if errors.Is(err, storage.ErrNotFound) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("generate token hmac key: %w", err)
		}
		err = s.store.Update(ctx, func(tx storage.Tx) error {
			if existing, err := tx.Get(hmacKeyPath); err == nil {
				key = existing
				return nil
			}
			return tx.Put(hmacKeyPath, key)
		})
	}
	if err != nil {
		return fmt.Errorf("load token hmac key: %w", err)
	}
	s.mu.Lock()
	s.hmacKey, s.cache = key, make(map[string]*Entry)
	s.mu.Unlock()
	return nil
}

// Reset forgets the key and the cache; call it on seal.
func (s *Service) Reset() {
	s.mu.Lock()
	s.hmacKey, s.cache = nil, nil
	s.mu.Unlock()
}

func (s *Service) hash(tok string) (string, error) {
	s.mu.RLock()
	key := s.hmacKey
	s.mu.RUnlock()
	if key == nil {
		return "", errors.New("token service is not loaded (sealed)")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(tok))
	return hex.EncodeToString(m.Sum(nil)), nil
}

// CreateInput describes a token to issue.
type CreateInput struct {
	DisplayName string
	Policies    []string
	Meta        map[string]string
	TTL         time.Duration // 0: no expiry
}

// Create issues a token and returns it with its entry. The token is not
// retrievable afterwards.
func (s *Service) Create(ctx context.Context, in CreateInput) (string, *Entry, error) {
	tok, err := Generate()
	if err != nil {
		return "", nil, err
	}
	h, err := s.hash(tok)
	if err != nil {
		return "", nil, err
	}
	accessor, err := Generate()
	if err != nil {
		return "", nil, err
	}
	accessor = "acc_" + accessor[len(Prefix):len(Prefix)+24]
	now := s.now().UTC()
	e := &Entry{Accessor: accessor, DisplayName: in.DisplayName, Policies: in.Policies, Meta: in.Meta, CreatedAt: now, hash: h}
	if in.TTL > 0 {
		exp := now.Add(in.TTL)
		e.ExpiresAt = &exp
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return "", nil, err
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Put(byHashPrefix+h, raw); err != nil {
			return err
		}
		return tx.Put(byAccessPrefix+accessor, []byte(h))
	})
	if err != nil {
		return "", nil, fmt.Errorf("store token: %w", err)
	}
	return tok, e, nil
}

// Lookup returns the entry of a live token, or auth.ErrUnauthenticated.
func (s *Service) Lookup(ctx context.Context, tok string) (*Entry, error) {
	if Check(tok) != nil {
		return nil, auth.ErrUnauthenticated
	}
	h, err := s.hash(tok)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	e := s.cache[h]
	s.mu.RUnlock()
	if e == nil {
		raw, err := s.store.Get(ctx, byHashPrefix+h)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, auth.ErrUnauthenticated
		}
		if err != nil {
			return nil, err
		}
		e = &Entry{hash: h}
		if err := json.Unmarshal(raw, e); err != nil {
			return nil, fmt.Errorf("decode token entry: %w", err)
		}
		s.mu.Lock()
		if s.cache != nil {
			s.cache[h] = e
		}
		s.mu.Unlock()
	}
	if e.ExpiresAt != nil && !s.now().Before(*e.ExpiresAt) {
		return nil, auth.ErrUnauthenticated
	}
	return e, nil
}

// LookupAccessor returns the entry of the token with this accessor.
func (s *Service) LookupAccessor(ctx context.Context, accessor string) (*Entry, error) {
	h, err := s.store.Get(ctx, byAccessPrefix+accessor)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	raw, err := s.store.Get(ctx, byHashPrefix+string(h))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	e := &Entry{hash: string(h)}
	if err := json.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("decode token entry: %w", err)
	}
	return e, nil
}

// Revoke deletes a token. Once Revoke returns, Lookup refuses the token.
func (s *Service) Revoke(ctx context.Context, e *Entry) error {
	s.mu.Lock()
	delete(s.cache, e.hash)
	s.mu.Unlock()
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Delete(byHashPrefix + e.hash); err != nil {
			return err
		}
		return tx.Delete(byAccessPrefix + e.Accessor)
	})
	// A lookup racing the delete may have re-cached the entry; drop it again.
	s.mu.Lock()
	delete(s.cache, e.hash)
	s.mu.Unlock()
	return err
}
