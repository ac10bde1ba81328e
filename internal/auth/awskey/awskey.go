// Package awskey issues AWS-style access keys to identities, so that
// applications can reach Coffer's AWS Secrets Manager API with the official
// AWS SDKs and their usual credential chain.
//
// An access key is a pair: an access key ID that names the key (not a
// secret: it appears in every signed request) and a secret access key. AWS
// Signature Version 4 derives its signing key from the secret itself, so the
// server must be able to read the secret back; unlike Coffer tokens, which are
// kept only as keyed hashes, the secret is stored as is, under the barrier,
// which encrypts every record at rest and binds it to its storage key. The
// secret is shown to its holder once, by Create, and never returned again.
package awskey

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const keyPrefix = "auth/awskey/" // + access key ID -> record

// Formats and bounds.
const (
	// IDPrefix starts every access key ID Coffer issues, the way AWS's start
	// with AKIA; leak scanners can look for it.
	IDPrefix = "CFRK"
	// IDLen is the length of an access key ID, as with AWS.
	IDLen = 20
	// SecretLen is the length of a secret access key, as with AWS.
	SecretLen = 40
	// MaxTTL bounds a key's lifetime; 0 means the key does not expire.
	MaxTTL = 10 * 365 * 24 * time.Hour
	// MaxKeys bounds how many keys List returns and the server holds.
	MaxKeys = 10000
	// Method is the auth method name in principals and audit records.
	Method = "awskey"
)

var (
	// ErrNotFound means no key has that access key ID.
	ErrNotFound = errors.New("access key not found")
	// ErrExpired means the key's lifetime has passed.
	ErrExpired = errors.New("access key has expired")

	nameRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,128}$`)
	// base32 without padding: 10 random bytes make exactly 16 characters.
	idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// Key describes an access key. It never holds the secret.
type Key struct {
	AccessKeyID string     `json:"access_key_id"`
	Name        string     `json:"name"`
	Policies    []string   `json:"policies"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"` // nil: never
}

// Principal returns the caller a request signed with this key acts as.
func (k *Key) Principal() *auth.Principal {
	return &auth.Principal{
		Name:       "aws/" + k.Name,
		Accessor:   k.AccessKeyID,
		Policies:   slices.Clone(k.Policies),
		Meta:       map[string]string{"name": k.Name, "access_key_id": k.AccessKeyID},
		IdentityID: Method + ":" + k.Name,
		Method:     Method,
		// In templates an access key stands for its name, as it did.
		IdentityName: k.Name,
		IdentityMeta: map[string]string{"name": k.Name, "access_key_id": k.AccessKeyID},
	}
}

// Expired reports whether the key's lifetime has passed at now.
func (k *Key) Expired(now time.Time) bool {
	return k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)
}

// record is what storage holds: the key and its secret.
type record struct {
	Key
	Secret string `json:"secret_access_key"`
}

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Service creates, looks up and deletes access keys. It is safe for
// concurrent use.
type Service struct {
	store Store
	now   func() time.Time
}

// New returns a Service over store. now may be nil for time.Now.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Input describes a key to create.
type Input struct {
	// Name identifies the holder, e.g. "payments-api"; several keys may
	// share a name (to rotate them without downtime, as with AWS).
	Name     string
	Policies []string
	// TTL is the key's lifetime; 0 means it does not expire.
	TTL time.Duration
	// CreatedBy names the principal that created the key, for the record.
	CreatedBy string
}

func (in *Input) validate() error {
	if !nameRE.MatchString(in.Name) {
		return &auth.InputError{Field: "name", Msg: "must be 1 to 128 characters from [A-Za-z0-9_.@-]"}
	}
	if len(in.Policies) > 64 {
		return &auth.InputError{Field: "policies", Msg: "at most 64 policies"}
	}
	for _, p := range in.Policies {
		if p == "root" {
			return &auth.InputError{Field: "policies", Msg: "an access key cannot carry the root policy"}
		}
		if p == "" || len(p) > 128 {
			return &auth.InputError{Field: "policies", Msg: "policy names must be 1 to 128 characters"}
		}
	}
	if in.TTL < 0 || in.TTL > MaxTTL {
		return &auth.InputError{Field: "ttl", Msg: "must be between 0 (no expiry) and 87600h"}
	}
	return nil
}

// Create issues a key and returns its access key ID and secret access key.
// The secret is returned only here.
func (s *Service) Create(ctx context.Context, in Input) (accessKeyID, secretAccessKey string, k *Key, err error) {
	if err := in.validate(); err != nil {
		return "", "", nil, err
	}
	secret, err := newSecret()
	if err != nil {
		return "", "", nil, err
	}
	now := s.now().UTC()
	rec := record{Key: Key{Name: in.Name, Policies: slices.Clone(in.Policies), CreatedAt: now, CreatedBy: in.CreatedBy}, Secret: secret}
	if rec.Policies == nil {
		rec.Policies = []string{}
	}
	if in.TTL > 0 {
		exp := now.Add(in.TTL)
		rec.ExpiresAt = &exp
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		// 80 random bits make a collision absurdly unlikely; check anyway,
		// since overwriting someone's key would be a silent credential swap.
		for range 3 {
			id, err := newID()
			if err != nil {
				return err
			}
			_, err = tx.Get(keyPrefix + id)
			if errors.Is(err, storage.ErrNotFound) {
				rec.AccessKeyID = id
				raw, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				return tx.Put(keyPrefix+id, raw)
			}
			if err != nil {
				return err
			}
		}
		return errors.New("generate access key id: repeated collisions")
	})
	if err != nil {
		return "", "", nil, err
	}
	k = &rec.Key
	return rec.AccessKeyID, secret, k, nil
}

// ValidID reports whether id has the shape of an access key ID Coffer issues.
func ValidID(id string) bool {
	if len(id) != IDLen || !strings.HasPrefix(id, IDPrefix) {
		return false
	}
	for _, c := range id[len(IDPrefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func (s *Service) read(ctx context.Context, id string) (*record, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	raw, err := s.store.Get(ctx, keyPrefix+id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode access key: %w", err)
	}
	return &rec, nil
}

// Get returns a key, expired or not.
func (s *Service) Get(ctx context.Context, accessKeyID string) (*Key, error) {
	rec, err := s.read(ctx, accessKeyID)
	if err != nil {
		return nil, err
	}
	return &rec.Key, nil
}

// Credentials returns a live key and its secret access key, to verify a
// request signature. An expired key returns ErrExpired; callers must not
// tell the client which of ErrNotFound and ErrExpired happened.
func (s *Service) Credentials(ctx context.Context, accessKeyID string) (*Key, string, error) {
	rec, err := s.read(ctx, accessKeyID)
	if err != nil {
		return nil, "", err
	}
	if rec.Expired(s.now()) {
		return nil, "", ErrExpired
	}
	return &rec.Key, rec.Secret, nil
}

// List returns every key, expired ones included, sorted by name then
// creation time.
func (s *Service) List(ctx context.Context) ([]*Key, error) {
	out := []*Key{}
	after := ""
	for {
		keys, err := s.store.List(ctx, keyPrefix, after, 256)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			rec, err := s.read(ctx, strings.TrimPrefix(k, keyPrefix))
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile, or not a key record
			}
			if err != nil {
				return nil, err
			}
			out = append(out, &rec.Key)
			if len(out) >= MaxKeys {
				break
			}
		}
		if len(out) >= MaxKeys {
			break
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	return out, nil
}

// Delete removes a key; requests signed with it are refused from then on.
func (s *Service) Delete(ctx context.Context, accessKeyID string) error {
	if !ValidID(accessKeyID) {
		return ErrNotFound
	}
	return s.store.Update(ctx, func(tx storage.Tx) error {
		if _, err := tx.Get(keyPrefix + accessKeyID); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return ErrNotFound
			}
			return err
		}
		return tx.Delete(keyPrefix + accessKeyID)
	})
}

// TidyExpired deletes keys whose lifetime has passed and returns how many
// it deleted. The server's background jobs may call it.
func (s *Service) TidyExpired(ctx context.Context) (int, error) {
	keys, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := s.now()
	for _, k := range keys {
		if !k.Expired(now) {
			continue
		}
		if err := s.Delete(ctx, k.AccessKeyID); err != nil && !errors.Is(err, ErrNotFound) {
			return n, err
		}
		n++
	}
	return n, nil
}

func newID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate access key id: %w", err)
	}
	return IDPrefix + idEncoding.EncodeToString(b), nil
}

func newSecret() (string, error) {
	b := make([]byte, 30) // 240 bits; 40 characters of base64
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret access key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
