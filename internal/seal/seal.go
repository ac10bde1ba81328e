// Package seal protects the root key that opens the barrier. Two seals
// exist: Shamir, where the root key is split into unseal keys and a quorum of
// operators must present theirs after every start, and a key file, where the
// root key sits in a 0600 file for single-host installs that unseal on start.
package seal

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/seal/shamir"
	"github.com/coffer-dev/coffer/internal/storage"
)

// ConfigPath is where the seal configuration is stored, in the clear.
const ConfigPath = barrier.PlaintextPrefix + "seal"

// Seal types.
const (
	TypeShamir  = "shamir"
	TypeKeyFile = "keyfile"
)

// MaxShares bounds the number of unseal keys.
const MaxShares = 32

var (
	// ErrNotInitialized is returned before Init.
	ErrNotInitialized = errors.New("server is not initialized")
	// ErrAlreadyInitialized is returned by a second Init.
	ErrAlreadyInitialized = errors.New("server is already initialized")
	// ErrBadKey is returned for a malformed unseal key.
	ErrBadKey = errors.New("unseal key is malformed: expected base64 of 33 bytes")
	// ErrInvalidKeys is returned when a full set of unseal keys does not open
	// the barrier; the progress is reset.
	ErrInvalidKeys = errors.New("unseal keys do not open the barrier; progress reset, start again")
	// ErrWrongSeal is returned by Unseal on a server with a key-file seal.
	ErrWrongSeal = errors.New("this server unseals from its key file, not from unseal keys")
)

// Config is the stored seal configuration.
type Config struct {
	Type      string `json:"type"`
	Shares    int    `json:"shares,omitempty"`
	Threshold int    `json:"threshold,omitempty"`
}

// Manager initializes the barrier and opens it with unseal keys or a key
// file. Its methods are safe for concurrent use.
type Manager struct {
	backend storage.Backend
	barrier *barrier.Barrier
	keyFile string // path of the key file; empty for the Shamir seal

	mu       sync.Mutex // guards progress and started
	progress [][]byte   // unseal key shares presented so far
	started  time.Time  // when the first of them was presented
}

// expireLocked drops unseal progress older than QuorumTimeout, so that a
// stalled unseal cannot be completed days later by a single key holder.
func (m *Manager) expireLocked() {
	if len(m.progress) > 0 && time.Since(m.started) > QuorumTimeout {
		m.progress = nil
	}
}

// New returns a Manager. keyFile selects the key-file seal when not empty.
func New(backend storage.Backend, b *barrier.Barrier, keyFile string) *Manager {
	return &Manager{backend: backend, barrier: b, keyFile: keyFile}
}

// Type returns the configured seal type.
func (m *Manager) Type() string {
	if m.keyFile != "" {
		return TypeKeyFile
	}
	return TypeShamir
}

// Config returns the stored configuration, or ErrNotInitialized.
func (m *Manager) Config(ctx context.Context) (Config, error) {
	raw, err := m.backend.Get(ctx, ConfigPath)
	if errors.Is(err, storage.ErrNotFound) {
		return Config{}, ErrNotInitialized
	}
	if err != nil {
		return Config{}, fmt.Errorf("read seal config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return Config{}, fmt.Errorf("decode seal config: %w", err)
	}
	return c, nil
}

// Init creates the root key and the barrier's keyring. With the Shamir seal
// it returns the unseal keys, shown once and never stored; with the key-file
// seal it writes the root key to the key file (0600), refusing to overwrite
// an existing one, and returns no keys. The barrier is left unsealed so the
// caller can create the root token; the caller seals it again if it wants.
func (m *Manager) Init(ctx context.Context, shares, threshold int) ([]string, error) {
	if _, err := m.Config(ctx); err == nil {
		return nil, ErrAlreadyInitialized
	} else if !errors.Is(err, ErrNotInitialized) {
		return nil, err
	}
	cfg := Config{Type: m.Type()}
	if cfg.Type == TypeShamir {
		if shares < 1 || shares > MaxShares {
			return nil, &auth.InputError{Field: "shares", Msg: fmt.Sprintf("must be between 1 and %d", MaxShares)}
		}
		if threshold < 1 || threshold > shares || (threshold == 1 && shares > 1) {
			return nil, &auth.InputError{Field: "threshold", Msg: "must be between 2 and shares (or 1 with 1 share)"}
		}
		cfg.Shares, cfg.Threshold = shares, threshold
	}
	root, err := barrier.NewRootKey()
	if err != nil {
		return nil, err
	}
	var keys []string
	if cfg.Type == TypeShamir {
		parts, err := shamir.Split(root, shares, threshold)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			keys = append(keys, base64.StdEncoding.EncodeToString(p))
		}
	} else if err := writeKeyFile(m.keyFile, root); err != nil {
		return nil, err
	}
	if err := m.barrier.Initialize(ctx, root); err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(cfg)
	if err := m.backend.Update(ctx, func(tx storage.Tx) error { return tx.Put(ConfigPath, raw) }); err != nil {
		return nil, fmt.Errorf("write seal config: %w", err)
	}
	if err := m.barrier.Unseal(ctx, root); err != nil {
		return nil, err
	}
	return keys, nil
}

// Progress returns how many unseal keys have been presented.
func (m *Manager) Progress() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked()
	return len(m.progress)
}

// Unseal presents one unseal key. It returns true once the barrier is open.
// Presenting a key twice counts once.
func (m *Manager) Unseal(ctx context.Context, key string) (bool, error) {
	if m.keyFile != "" {
		return false, ErrWrongSeal
	}
	cfg, err := m.Config(ctx)
	if err != nil {
		return false, err
	}
	if !m.barrier.Sealed() {
		return true, nil
	}
	share, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key))
	if err != nil || len(share) != barrier.KeySize+1 {
		return false, ErrBadKey
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked()
	for _, p := range m.progress {
		if subtle.ConstantTimeCompare(p, share) == 1 {
			return false, nil
		}
	}
	if len(m.progress) == 0 {
		m.started = time.Now()
	}
	m.progress = append(m.progress, share)
	if len(m.progress) < cfg.Threshold {
		return false, nil
	}
	shares := m.progress
	m.progress = nil
	root, err := shamir.Combine(shares)
	if err != nil {
		return false, ErrInvalidKeys
	}
	if err := m.barrier.Unseal(ctx, root); err != nil {
		if errors.Is(err, barrier.ErrInvalidRootKey) {
			return false, ErrInvalidKeys
		}
		return false, err
	}
	return true, nil
}

// ResetProgress discards the unseal keys presented so far.
func (m *Manager) ResetProgress() {
	m.mu.Lock()
	m.progress = nil
	m.mu.Unlock()
}

// AutoUnseal opens the barrier from the key file. It is a no-op for the
// Shamir seal or an uninitialized server.
func (m *Manager) AutoUnseal(ctx context.Context) error {
	if m.keyFile == "" {
		return nil
	}
	if _, err := m.Config(ctx); errors.Is(err, ErrNotInitialized) {
		return nil
	} else if err != nil {
		return err
	}
	root, err := ReadKeyFile(m.keyFile)
	if err != nil {
		return err
	}
	return m.barrier.Unseal(ctx, root)
}

// Seal closes the barrier and forgets any unseal progress.
func (m *Manager) Seal() {
	m.ResetProgress()
	m.barrier.Seal()
}

// ReadKeyFile reads a root key file, refusing one that group or others can
// read or write.
func ReadKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v; it must be 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(raw)))
	if err != nil || len(key) != barrier.KeySize {
		return nil, fmt.Errorf("key file %s does not hold a base64 %d-byte key", path, barrier.KeySize)
	}
	return key, nil
}

func writeKeyFile(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("key file %s already exists; refusing to overwrite it", path)
		}
		return fmt.Errorf("create key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

// Quorum collects unseal keys for an operation other than unsealing (such
// as generating a root token) and yields the root key once enough distinct
// keys are in. Its methods are safe for concurrent use.
type Quorum struct {
	m *Manager

	mu      sync.Mutex // guards shares and started
	shares  [][]byte
	started time.Time // when the first key of this attempt came in
}

// QuorumTimeout abandons an attempt whose keys do not all arrive in time,
// so a stalled attempt cannot be completed later by a single key holder.
const QuorumTimeout = 10 * time.Minute

// NewQuorum returns an empty quorum for m's seal.
func (m *Manager) NewQuorum() *Quorum { return &Quorum{m: m} }

// Progress returns how many keys have been presented.
func (q *Quorum) Progress() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.shares)
}

// Reset discards the keys presented so far.
func (q *Quorum) Reset() {
	q.mu.Lock()
	q.shares = nil
	q.mu.Unlock()
}

// Add presents one key: an unseal key for the Shamir seal, or the base64
// root key from the key file for the key-file seal. It returns the root key
// once the threshold is met and the key opens the barrier; then the quorum
// starts over.
func (q *Quorum) Add(ctx context.Context, key string) ([]byte, error) {
	cfg, err := q.m.Config(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(key))
	if err != nil {
		return nil, ErrBadKey
	}
	if cfg.Type == TypeKeyFile {
		if len(raw) != barrier.KeySize || q.m.barrier.CheckRootKey(ctx, raw) != nil {
			return nil, ErrInvalidKeys
		}
		return raw, nil
	}
	if len(raw) != barrier.KeySize+1 {
		return nil, ErrBadKey
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.shares) > 0 && time.Since(q.started) > QuorumTimeout {
		q.shares = nil
	}
	for _, s := range q.shares {
		if subtle.ConstantTimeCompare(s, raw) == 1 {
			return nil, nil
		}
	}
	if len(q.shares) == 0 {
		q.started = time.Now()
	}
	q.shares = append(q.shares, raw)
	if len(q.shares) < cfg.Threshold {
		return nil, nil
	}
	shares := q.shares
	q.shares = nil
	root, err := shamir.Combine(shares)
	if err != nil || q.m.barrier.CheckRootKey(ctx, root) != nil {
		return nil, ErrInvalidKeys
	}
	return root, nil
}
