// Package barrier encrypts everything Coffer stores. Every value passes
// through AES-256-GCM with a random 96-bit nonce before it reaches the
// storage backend, bound to its storage key as additional authenticated data
// so that swapping two records on disk makes both fail to decrypt.
//
// Data keys live in a keyring of numbered terms. New writes use the active
// term; older terms stay readable until Rewrap re-encrypts what they
// protect. The keyring itself is stored under KeyringPath, encrypted with the
// root key that the seal provides. A sealed barrier holds no key in memory
// and refuses every operation with ErrSealed.
package barrier

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
)

// KeyringPath is where the encrypted keyring is stored.
const KeyringPath = "core/keyring"

// PlaintextPrefix marks storage keys the barrier never handles: the seal's
// own configuration, which must be readable while sealed.
const PlaintextPrefix = "core/plain/"

// KeySize is the size in bytes of the root key and of every data key.
const KeySize = 32

const (
	formatV1   = 1
	headerSize = 1 + 4 // format byte, term
	nonceSize  = 12
)

var (
	// ErrSealed is returned by every data operation while the barrier is sealed.
	ErrSealed = errors.New("barrier is sealed")
	// ErrNotInitialized is returned by Unseal before Initialize.
	ErrNotInitialized = errors.New("barrier is not initialized")
	// ErrAlreadyInitialized is returned by Initialize when a keyring exists.
	ErrAlreadyInitialized = errors.New("barrier is already initialized")
	// ErrInvalidRootKey is returned by Unseal when the root key does not open the keyring.
	ErrInvalidRootKey = errors.New("root key does not open the keyring")
	// ErrDecrypt is returned when a record fails authentication: it was
	// corrupted, tampered with, or moved to another key.
	ErrDecrypt = errors.New("record failed authentication")
	// ErrReservedKey is returned for writes to keys the barrier manages itself.
	ErrReservedKey = errors.New("key is reserved for the barrier")
	// ErrKeyringChanged is returned by Rewrap when the barrier's keys were
	// replaced while it ran (rotated, reloaded, or sealed and unsealed):
	// it stops, and a new Rewrap continues with the current keys.
	ErrKeyringChanged = errors.New("keyring changed during rewrap; run it again")
)

// Barrier is the encryption layer over a storage.Backend. Its methods are
// safe for concurrent use.
type Barrier struct {
	backend storage.Backend
	now     func() time.Time

	keys atomic.Pointer[keyset] // nil while sealed

	rotateMu sync.Mutex // serializes Rotate and Initialize
}

// keyset is an immutable snapshot of the unsealed keyring.
type keyset struct {
	active  uint32
	aeads   map[uint32]cipher.AEAD
	ring    keyring
	rootKey []byte // wraps the keyring; needed to rewrite it on Rotate
}

type keyring struct {
	Active uint32     `json:"active"`
	Terms  []termInfo `json:"terms"`
}

type termInfo struct {
	Term      uint32    `json:"term"`
	Key       []byte    `json:"key"`
	Installed time.Time `json:"installed"`
}

// New returns a sealed barrier over backend. now may be nil for time.Now.
func New(backend storage.Backend, now func() time.Time) *Barrier {
	if now == nil {
		now = time.Now
	}
	return &Barrier{backend: backend, now: now}
}

// Initialized reports whether a keyring exists in storage.
func (b *Barrier) Initialized(ctx context.Context) (bool, error) {
	_, err := b.backend.Get(ctx, KeyringPath)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("read keyring: %w", err)
	}
}

// Initialize creates a keyring with one term, encrypted under rootKey, and
// leaves the barrier sealed.
func (b *Barrier) Initialize(ctx context.Context, rootKey []byte) error {
	b.rotateMu.Lock()
	defer b.rotateMu.Unlock()
	if len(rootKey) != KeySize {
		return fmt.Errorf("root key must be %d bytes", KeySize)
	}
	key, err := randomKey()
	if err != nil {
		return err
	}
	ring := keyring{Active: 1, Terms: []termInfo{{Term: 1, Key: key, Installed: b.now().UTC()}}}
	return b.backend.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(KeyringPath); err == nil {
			return ErrAlreadyInitialized
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return writeKeyring(tx, rootKey, ring)
	})
}

// Unseal loads the keyring with rootKey. Unsealing an unsealed barrier
// re-checks the key and is otherwise a no-op.
func (b *Barrier) Unseal(ctx context.Context, rootKey []byte) error {
	raw, err := b.backend.Get(ctx, KeyringPath)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotInitialized
	}
	if err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	ring, err := openKeyring(rootKey, raw)
	if err != nil {
		return err
	}
	ks, err := newKeyset(ring, rootKey)
	if err != nil {
		return err
	}
	b.keys.Store(ks)
	return nil
}

// Seal forgets every key. Operations in flight may finish; new ones fail
// with ErrSealed.
func (b *Barrier) Seal() { b.keys.Store(nil) }

// Sealed reports whether the barrier is sealed.
func (b *Barrier) Sealed() bool { return b.keys.Load() == nil }

func openKeyring(rootKey, raw []byte) (keyring, error) {
	if len(rootKey) != KeySize {
		return keyring{}, ErrInvalidRootKey
	}
	aead, err := newAEAD(rootKey)
	if err != nil {
		return keyring{}, err
	}
	plain, _, err := decrypt(map[uint32]cipher.AEAD{0: aead}, KeyringPath, raw)
	if err != nil {
		return keyring{}, ErrInvalidRootKey
	}
	var ring keyring
	if err := json.Unmarshal(plain, &ring); err != nil {
		return keyring{}, fmt.Errorf("decode keyring: %w", err)
	}
	return ring, nil
}

func writeKeyring(tx storage.Tx, rootKey []byte, ring keyring) error {
	aead, err := newAEAD(rootKey)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(ring)
	if err != nil {
		return err
	}
	ct, err := encrypt(aead, 0, KeyringPath, plain)
	if err != nil {
		return err
	}
	return tx.Put(KeyringPath, ct)
}

func newKeyset(ring keyring, rootKey []byte) (*keyset, error) {
	ks := &keyset{active: ring.Active, aeads: make(map[uint32]cipher.AEAD, len(ring.Terms)), ring: ring,
		rootKey: append([]byte(nil), rootKey...)}
	for _, t := range ring.Terms {
		a, err := newAEAD(t.Key)
		if err != nil {
			return nil, fmt.Errorf("keyring term %d: %w", t.Term, err)
		}
		ks.aeads[t.Term] = a
	}
	if ks.aeads[ks.active] == nil {
		return nil, fmt.Errorf("keyring has no active term %d", ks.active)
	}
	return ks, nil
}

// Rotate adds a new term to the keyring and makes it active; the keyring is
// rewritten under the root key it was unsealed with. Existing records stay
// on their terms until Rewrap.
func (b *Barrier) Rotate(ctx context.Context) (uint32, error) {
	b.rotateMu.Lock()
	defer b.rotateMu.Unlock()
	ks := b.keys.Load()
	if ks == nil {
		return 0, ErrSealed
	}
	key, err := randomKey()
	if err != nil {
		return 0, err
	}
	var next *keyset
	err = b.backend.Update(ctx, func(tx storage.Tx) error {
		// Start from the stored keyring, not ks: another node sharing the
		// storage may have rotated since this one unsealed.
		raw, err := tx.Get(KeyringPath)
		if err != nil {
			return fmt.Errorf("read keyring: %w", err)
		}
		cur, err := openKeyring(ks.rootKey, raw)
		if err != nil {
			return err
		}
		term := cur.Active
		for _, t := range cur.Terms {
			term = max(term, t.Term)
		}
		term++
		ring := keyring{Active: term, Terms: append(append([]termInfo(nil), cur.Terms...),
			termInfo{Term: term, Key: key, Installed: b.now().UTC()})}
		if next, err = newKeyset(ring, ks.rootKey); err != nil {
			return err
		}
		return writeKeyring(tx, ks.rootKey, ring)
	})
	if err != nil {
		return 0, err
	}
	b.keys.Store(next)
	return next.active, nil
}

// Reload re-reads the keyring with the root key the barrier was unsealed
// with, to learn of a rotation made by another node sharing the storage.
// It does nothing while sealed.
func (b *Barrier) Reload(ctx context.Context) error {
	ks := b.keys.Load()
	if ks == nil {
		return nil
	}
	raw, err := b.backend.Get(ctx, KeyringPath)
	if err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	_, err = b.adopt(ks, raw)
	return err
}

// adopt installs the keyring raw if it differs from ks's, unless the
// barrier was sealed or changed meanwhile, and returns the keyset to use.
func (b *Barrier) adopt(ks *keyset, raw []byte) (*keyset, error) {
	ring, err := openKeyring(ks.rootKey, raw)
	if err != nil {
		return ks, err
	}
	if ring.Active == ks.active && len(ring.Terms) == len(ks.ring.Terms) {
		return ks, nil
	}
	next, err := newKeyset(ring, ks.rootKey)
	if err != nil {
		return ks, err
	}
	if !b.keys.CompareAndSwap(ks, next) {
		if cur := b.keys.Load(); cur != nil {
			return cur, nil
		}
		return nil, ErrSealed
	}
	return next, nil
}

// newerTerm reports whether raw is a record on a term ks does not know yet
// (written by another node after a rotation this one has not loaded).
func newerTerm(ks *keyset, raw []byte) bool {
	term, ok := recordTerm(raw)
	return ok && ks.aeads[term] == nil && term > ks.active
}

// KeyStatus describes the keyring without revealing keys.
type KeyStatus struct {
	Term      uint32    `json:"term"`
	Installed time.Time `json:"installed"`
	Terms     int       `json:"terms"`
}

// Status returns the active term, when it was installed and how many terms exist.
func (b *Barrier) Status() (KeyStatus, error) {
	ks := b.keys.Load()
	if ks == nil {
		return KeyStatus{}, ErrSealed
	}
	st := KeyStatus{Term: ks.active, Terms: len(ks.ring.Terms)}
	for _, t := range ks.ring.Terms {
		if t.Term == ks.active {
			st.Installed = t.Installed
		}
	}
	return st, nil
}

// Get returns the decrypted value of key, or storage.ErrNotFound.
func (b *Barrier) Get(ctx context.Context, key string) ([]byte, error) {
	ks := b.keys.Load()
	if ks == nil {
		return nil, ErrSealed
	}
	raw, err := b.backend.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if newerTerm(ks, raw) {
		if ring, err := b.backend.Get(ctx, KeyringPath); err == nil {
			if next, err := b.adopt(ks, ring); err == nil {
				ks = next
			}
		}
	}
	plain, _, err := decrypt(ks.aeads, key, raw)
	return plain, err
}

// List lists keys like storage.Backend.List. Keys are not secret and are
// stored in the clear; values never are.
func (b *Barrier) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if b.keys.Load() == nil {
		return nil, ErrSealed
	}
	return b.backend.List(ctx, prefix, after, limit)
}

// Update runs fn in an atomic, durable write transaction whose Get decrypts
// and whose Put encrypts under the active term.
func (b *Barrier) Update(ctx context.Context, fn func(storage.Tx) error) error {
	ks := b.keys.Load()
	if ks == nil {
		return ErrSealed
	}
	return b.backend.Update(ctx, func(tx storage.Tx) error {
		return fn(&encTx{tx: tx, ks: ks, b: b})
	})
}

type encTx struct {
	tx storage.Tx
	ks *keyset
	b  *Barrier // to adopt a keyring rotated by another node
}

func (t *encTx) Get(key string) ([]byte, error) {
	raw, err := t.tx.Get(key)
	if err != nil {
		return nil, err
	}
	if newerTerm(t.ks, raw) && t.b != nil {
		if ring, err := t.tx.Get(KeyringPath); err == nil {
			if next, err := t.b.adopt(t.ks, ring); err == nil && next != nil {
				t.ks = next
			}
		}
	}
	plain, _, err := decrypt(t.ks.aeads, key, raw)
	return plain, err
}

func (t *encTx) Put(key string, value []byte) error {
	if reserved(key) {
		return ErrReservedKey
	}
	ct, err := encrypt(t.ks.aeads[t.ks.active], t.ks.active, key, value)
	if err != nil {
		return err
	}
	return t.tx.Put(key, ct)
}

func (t *encTx) Delete(key string) error {
	if reserved(key) {
		return ErrReservedKey
	}
	return t.tx.Delete(key)
}

func reserved(key string) bool {
	return key == KeyringPath || strings.HasPrefix(key, PlaintextPrefix)
}

// Rewrap re-encrypts every record still on an older term under the active
// term, a page at a time, and returns how many it rewrote. It is safe to run
// while serving: each record is re-read inside its own transaction.
//
// Rewrap works with the keyset the barrier held when it started, and only
// while the barrier still holds that very keyset: it checks before each
// page and each record, and stops with ErrSealed once the barrier is sealed,
// or with ErrKeyringChanged once the keyset was replaced (a rotation, a
// reload, or a seal and unseal); records already rewritten stay rewritten,
// and a later Rewrap finishes the rest. So no key is used after Seal.
func (b *Barrier) Rewrap(ctx context.Context) (int, error) {
	ks := b.keys.Load()
	if ks == nil {
		return 0, ErrSealed
	}
	// Drop this call's reference to the keys when it returns (the
	// transaction closure below shares the variable).
	defer func() { ks = nil }()
	held := func() error {
		switch cur := b.keys.Load(); {
		case cur == nil:
			return ErrSealed
		case cur != ks:
			return ErrKeyringChanged
		}
		return nil
	}
	n, after := 0, ""
	for {
		if err := held(); err != nil {
			return n, err
		}
		keys, err := b.backend.List(ctx, "", after, 256)
		if err != nil {
			return n, err
		}
		if len(keys) == 0 {
			return n, nil
		}
		if err := held(); err != nil {
			return n, err
		}
		after = keys[len(keys)-1]
		var stale []string
		for _, k := range keys {
			if reserved(k) {
				continue
			}
			raw, err := b.backend.Get(ctx, k)
			if err != nil {
				continue // deleted meanwhile
			}
			if term, ok := recordTerm(raw); ok && term < ks.active {
				stale = append(stale, k)
			}
		}
		if len(stale) == 0 {
			continue
		}
		err = b.backend.Update(ctx, func(tx storage.Tx) error {
			for _, k := range stale {
				if err := held(); err != nil {
					return err // rolls back this page
				}
				raw, err := tx.Get(k)
				if err != nil {
					continue
				}
				if term, ok := recordTerm(raw); !ok || term >= ks.active {
					continue
				}
				plain, _, err := decrypt(ks.aeads, k, raw)
				if err != nil {
					return fmt.Errorf("rewrap record: %w", err)
				}
				ct, err := encrypt(ks.aeads[ks.active], ks.active, k, plain)
				clear(plain)
				if err != nil {
					return err
				}
				if err := tx.Put(k, ct); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += len(stale)
	}
}

func recordTerm(raw []byte) (uint32, bool) {
	if len(raw) < headerSize || raw[0] != formatV1 {
		return 0, false
	}
	return binary.BigEndian.Uint32(raw[1:5]), true
}

func randomKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// NewRootKey returns a fresh random root key.
func NewRootKey() ([]byte, error) { return randomKey() }

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	return cipher.NewGCM(block)
}

// encrypt returns header || nonce || GCM(plain), authenticated with the
// header and the storage key.
func encrypt(aead cipher.AEAD, term uint32, key string, plain []byte) ([]byte, error) {
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(plain)+aead.Overhead())
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:5], term)
	if _, err := rand.Read(out[headerSize:]); err != nil {
		return nil, fmt.Errorf("generate nonce: %w", err)
	}
	return aead.Seal(out, out[headerSize:], plain, aad(out[:headerSize], key)), nil
}

func decrypt(aeads map[uint32]cipher.AEAD, key string, raw []byte) ([]byte, uint32, error) {
	term, ok := recordTerm(raw)
	if !ok || len(raw) < headerSize+nonceSize {
		return nil, 0, ErrDecrypt
	}
	aead := aeads[term]
	if aead == nil {
		return nil, 0, ErrDecrypt
	}
	plain, err := aead.Open(nil, raw[headerSize:headerSize+nonceSize], raw[headerSize+nonceSize:], aad(raw[:headerSize], key))
	if err != nil {
		return nil, 0, ErrDecrypt
	}
	return plain, term, nil
}

func aad(header []byte, key string) []byte {
	a := make([]byte, 0, len(header)+len(key))
	return append(append(a, header...), key...)
}

// CheckRootKey reports whether rootKey opens the stored keyring, without
// changing the barrier's state. It returns ErrInvalidRootKey if not.
func (b *Barrier) CheckRootKey(ctx context.Context, rootKey []byte) error {
	raw, err := b.backend.Get(ctx, KeyringPath)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotInitialized
	}
	if err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	_, err = openKeyring(rootKey, raw)
	return err
}
