// Package secret is the versioned secret store: secrets with numbered
// versions, stages that label versions (current, previous, pending and
// custom labels), soft delete with a recovery window, restore, destroy and
// pruning. It stores through the barrier, so everything it writes is
// encrypted; a version and its secret's metadata always commit together.
package secret

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const (
	metaPrefix  = "secret/m/" // + name -> record
	dataPrefix  = "secret/d/" // + id + "/" + version -> value
	purgePrefix = "secret/purge/"
)

var (
	// ErrNotFound means no secret has that name.
	ErrNotFound = errors.New("secret not found")
	// ErrVersionNotFound means the secret has no such version or no version holds the stage.
	ErrVersionNotFound = errors.New("version not found")
	// ErrDeleted means the secret is scheduled for deletion; restore it first.
	ErrDeleted = errors.New("secret is deleted; restore it to use it")
	// ErrNotDeleted is returned by Restore for a secret that is not deleted.
	ErrNotDeleted = errors.New("secret is not deleted")
	// ErrExpired means the secret's expires_at has passed.
	ErrExpired = errors.New("secret has expired; update expires_at to use it")
	// ErrDestroyed means the requested version's value was destroyed.
	ErrDestroyed = errors.New("version is destroyed")
	// ErrCASMismatch means a check-and-set precondition failed.
	ErrCASMismatch = errors.New("check-and-set failed: the latest version differs from cas")
	// ErrIdempotencyConflict means an idempotency token was reused with a different value.
	ErrIdempotencyConflict = errors.New("idempotency token already used with a different value")
	// ErrStageConflict means a stage operation would break an invariant.
	ErrStageConflict = errors.New("stage conflict")
)

// Content types of a version's value.
const (
	TypeText   = "text"
	TypeJSON   = "json"
	TypeBinary = "binary"
)

// Metadata describes a secret without its values.
type Metadata struct {
	Name          string            `json:"name"`
	ID            string            `json:"id"`
	Description   string            `json:"description,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	CreatedBy     string            `json:"created_by,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
	ExpiresAt     *time.Time        `json:"expires_at,omitempty"`
	DeletedAt     *time.Time        `json:"deleted_at,omitempty"`
	PurgeAt       *time.Time        `json:"purge_at,omitempty"`
	MaxVersions   int               `json:"max_versions"`
	LatestVersion int               `json:"latest_version"`
	Stages        map[string]int    `json:"stages"`
	Versions      []Version         `json:"versions"`
	// PrunedTokens are the idempotency tokens of versions that max_versions
	// pruned (the latest maxPrunedTokens): a late retry with one of them is
	// refused instead of writing the old value again as a new version.
	PrunedTokens []string `json:"pruned_idempotency_tokens,omitempty"`
}

// Version describes one version of a secret.
type Version struct {
	Number           int       `json:"version"`
	CreatedAt        time.Time `json:"created_at"`
	CreatedBy        string    `json:"created_by,omitempty"`
	Type             string    `json:"type"`
	Size             int       `json:"size"`
	Destroyed        bool      `json:"destroyed,omitempty"`
	IdempotencyToken string    `json:"idempotency_token,omitempty"`
	Stages           []string  `json:"stages,omitempty"` // derived from Metadata.Stages
}

// CurrentVersion returns the number of the version holding current, or 0.
func (m *Metadata) CurrentVersion() int { return m.Stages[StageCurrent] }

// version returns the version numbered n, or nil.
func (m *Metadata) version(n int) *Version {
	i := sort.Search(len(m.Versions), func(i int) bool { return m.Versions[i].Number >= n })
	if i < len(m.Versions) && m.Versions[i].Number == n {
		return &m.Versions[i]
	}
	return nil
}

// stagesOf returns the sorted stages that point at version n.
func (m *Metadata) stagesOf(n int) []string {
	var out []string
	for s, v := range m.Stages {
		if v == n {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// withDerived returns m with each version's Stages filled in.
func (m *Metadata) withDerived() *Metadata {
	for i := range m.Versions {
		m.Versions[i].Stages = m.stagesOf(m.Versions[i].Number)
	}
	return m
}

// Value is one version's value.
type Value struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Stages    []string  `json:"stages"`
	Type      string    `json:"type"`
	Data      []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Service manages secrets. It is safe for concurrent use.
type Service struct {
	store Store
	now   func() time.Time
	bus   *events.Bus // nil: no events

	// Decoded metadata for Get, the hot path. Every change forgets its
	// name before it writes and again after it commits; gen counts those,
	// and a reader caches what it read only if no change began meanwhile.
	metaMu    sync.RWMutex
	metaCache map[string]*Metadata // read-only once cached
	metaGen   uint64
	metaBorn  time.Time    // when metaCache started filling
	metaAge   atomic.Int64 // nanoseconds; see SetMaxAge
}

// SetMaxAge bounds how long decoded metadata is served from memory: the
// cache starts over once it is d old. Nodes sharing storage use it so a
// change whose notification was lost takes effect within d anyway; a
// single server leaves it unset (its own changes forget what they change).
func (s *Service) SetMaxAge(d time.Duration) { s.metaAge.Store(int64(d)) }

// maxMetaCache bounds the metadata cache; when full it starts over.
const maxMetaCache = 10000

// forget drops name from the metadata cache and counts a change.
func (s *Service) forget(name string) {
	s.metaMu.Lock()
	delete(s.metaCache, name)
	s.metaGen++
	s.metaMu.Unlock()
}

// ForgetKey drops the cached metadata stored under the storage key key,
// which another node changed; other keys are ignored.
func (s *Service) ForgetKey(key string) {
	if name, ok := strings.CutPrefix(key, metaPrefix); ok {
		s.forget(name)
	}
}

// Invalidate drops every cached metadata record (for changes made by other nodes).
func (s *Service) Invalidate() {
	s.metaMu.Lock()
	s.metaCache = nil
	s.metaGen++
	s.metaMu.Unlock()
}

// cachedMeta returns name's metadata for reading only, from the cache or storage.
func (s *Service) cachedMeta(ctx context.Context, name string) (*Metadata, error) {
	s.metaMu.RLock()
	m, gen, born := s.metaCache[name], s.metaGen, s.metaBorn
	s.metaMu.RUnlock()
	if d := time.Duration(s.metaAge.Load()); d > 0 && m != nil && s.now().Sub(born) >= d {
		s.Invalidate()
		m = nil
		s.metaMu.RLock()
		gen = s.metaGen
		s.metaMu.RUnlock()
	}
	if m != nil {
		return m, nil
	}
	m, err := readMeta(func(k string) ([]byte, error) { return s.store.Get(ctx, k) }, name)
	if err != nil {
		return nil, err
	}
	s.metaMu.Lock()
	if s.metaGen == gen {
		if s.metaCache == nil || len(s.metaCache) >= maxMetaCache {
			s.metaCache = make(map[string]*Metadata)
			s.metaBorn = s.now()
		}
		s.metaCache[name] = m
	}
	s.metaMu.Unlock()
	return m, nil
}

// PublishTo makes the service publish lifecycle events to bus after each
// committed change. Call it before use.
func (s *Service) PublishTo(bus *events.Bus) { s.bus = bus }

func (s *Service) publish(typ, name string, version int, stage string) {
	if s.bus != nil {
		s.bus.Publish(events.Event{Type: typ, Name: name, Version: version, Stage: stage})
	}
}

// New returns a Service over store. now may be nil for time.Now.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

func metaKey(name string) string { return metaPrefix + name }

func dataKey(id string, n int) string {
	// As fmt.Sprintf("%s%s/%010d", dataPrefix, id, n), without fmt: every read builds one.
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(n), 10)
	b := make([]byte, 0, len(dataPrefix)+len(id)+1+max(10, len(d)))
	b = append(append(append(b, dataPrefix...), id...), '/')
	for i := len(d); i < 10; i++ {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

func readMeta(get func(string) ([]byte, error), name string) (*Metadata, error) {
	raw, err := get(metaKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var m Metadata
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode metadata: %w", err)
	}
	if m.Stages == nil {
		m.Stages = map[string]int{}
	}
	return &m, nil
}

func writeMeta(tx storage.Tx, m *Metadata) error {
	for i := range m.Versions {
		m.Versions[i].Stages = nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return tx.Put(metaKey(m.Name), raw)
}

func (s *Service) metaForUpdate(tx storage.Tx, name string) (*Metadata, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	return readMeta(tx.Get, name)
}

// usable refuses deleted and expired secrets.
func (s *Service) usable(m *Metadata) error {
	if m.DeletedAt != nil {
		return ErrDeleted
	}
	if m.ExpiresAt != nil && !s.now().Before(*m.ExpiresAt) {
		return ErrExpired
	}
	return nil
}

// PutInput is a new version and, when the secret is new, its metadata.
type PutInput struct {
	Name  string
	Value []byte
	Type  string // TypeText (default), TypeJSON or TypeBinary
	// CAS, when set, must equal the latest version number (0: the secret must not exist).
	CAS *int
	// IdempotencyToken makes retries safe: the same token with the same
	// value returns the existing version; with another value, ErrIdempotencyConflict.
	IdempotencyToken string
	// Stages for the new version; empty means [current]. Without current,
	// the new version does not become current (unless it is the first).
	Stages []string
	Actor  string

	// Applied only when the secret is created.
	Description string
	Tags        map[string]string
	MaxVersions int
	ExpiresAt   *time.Time
}

// PutResult tells which version the put produced.
type PutResult struct {
	Name    string   `json:"name"`
	Version int      `json:"version"`
	Stages  []string `json:"stages"`
	Created bool     `json:"created"` // the secret did not exist before
	Replay  bool     `json:"replay"`  // an idempotent retry: no new version
}

func (in *PutInput) validate() error {
	if err := ValidateName(in.Name); err != nil {
		return err
	}
	if len(in.Value) > MaxValueSize {
		return invalid("value", "is %d bytes; the limit is %d", len(in.Value), MaxValueSize)
	}
	switch in.Type {
	case "":
		in.Type = TypeText
	case TypeText, TypeJSON, TypeBinary:
	default:
		return invalid("type", "must be text, json or binary")
	}
	if in.Type == TypeJSON && !json.Valid(in.Value) {
		return invalid("value", "is not valid JSON")
	}
	if in.CAS != nil && *in.CAS < 0 {
		return invalid("cas", "must not be negative")
	}
	if err := validateToken(in.IdempotencyToken); err != nil {
		return err
	}
	if len(in.Stages) == 0 {
		in.Stages = []string{StageCurrent}
	}
	if len(in.Stages) > MaxStagesPerSet {
		return invalid("stages", "at most %d stages", MaxStagesPerSet)
	}
	for _, st := range in.Stages {
		if err := ValidateStage(st); err != nil {
			return err
		}
		if st == StagePrevious {
			return invalid("stages", "previous is set by Coffer when current moves")
		}
	}
	if err := validateDescription(in.Description); err != nil {
		return err
	}
	if err := validateTags(in.Tags); err != nil {
		return err
	}
	if in.MaxVersions != 0 {
		if err := validateMaxVersions(in.MaxVersions); err != nil {
			return err
		}
	}
	return nil
}

// Put writes a new version.
func (s *Service) Put(ctx context.Context, in PutInput) (*PutResult, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	var res *PutResult
	s.forget(in.Name)
	defer s.forget(in.Name)
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		res = nil
		now := s.now().UTC()
		m, err := readMeta(tx.Get, in.Name)
		created := false
		switch {
		case errors.Is(err, ErrNotFound):
			id, err := newID()
			if err != nil {
				return err
			}
			maxv := in.MaxVersions
			if maxv == 0 {
				maxv = DefaultMaxVersions
			}
			m = &Metadata{Name: in.Name, ID: id, Description: in.Description, Tags: in.Tags,
				CreatedAt: now, CreatedBy: in.Actor, ExpiresAt: in.ExpiresAt, MaxVersions: maxv,
				Stages: map[string]int{}}
			created = true
		case err != nil:
			return err
		case m.DeletedAt != nil:
			return ErrDeleted
		}
		if in.IdempotencyToken != "" {
			for _, v := range m.Versions {
				if v.IdempotencyToken != in.IdempotencyToken {
					continue
				}
				// Only the writer of the version may replay it: anyone else
				// could use replays to test guesses of its value.
				if v.Destroyed || v.CreatedBy != in.Actor {
					return ErrIdempotencyConflict
				}
				old, err := tx.Get(dataKey(m.ID, v.Number))
				if err != nil {
					return err
				}
				if v.Type != in.Type || subtle.ConstantTimeCompare(old, in.Value) != 1 {
					return ErrIdempotencyConflict
				}
				res = &PutResult{Name: m.Name, Version: v.Number, Stages: m.stagesOf(v.Number), Replay: true}
				return nil
			}
			if slices.Contains(m.PrunedTokens, in.IdempotencyToken) {
				// Its version is gone, but it was written: writing the value
				// again would make an old value current.
				return fmt.Errorf("%w: its version was written and has since been pruned (max_versions); nothing was written", ErrIdempotencyConflict)
			}
		}
		if in.CAS != nil && *in.CAS != m.LatestVersion {
			return fmt.Errorf("%w (latest is %d, cas was %d)", ErrCASMismatch, m.LatestVersion, *in.CAS)
		}
		n := m.LatestVersion + 1
		m.LatestVersion = n
		m.UpdatedAt = now
		m.Versions = append(m.Versions, Version{Number: n, CreatedAt: now, CreatedBy: in.Actor,
			Type: in.Type, Size: len(in.Value), IdempotencyToken: in.IdempotencyToken})
		stages := in.Stages
		if m.CurrentVersion() == 0 && !slices.Contains(stages, StageCurrent) {
			stages = append(slices.Clone(stages), StageCurrent)
		}
		for _, st := range stages {
			m.setStage(st, n)
		}
		if err := tx.Put(dataKey(m.ID, n), in.Value); err != nil {
			return err
		}
		if err := s.prune(tx, m); err != nil {
			return err
		}
		if err := writeMeta(tx, m); err != nil {
			return err
		}
		res = &PutResult{Name: m.Name, Version: n, Stages: m.stagesOf(n), Created: created}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !res.Replay {
		s.publish(events.VersionCreated, res.Name, res.Version, strings.Join(res.Stages, ","))
	}
	return res, nil
}

// setStage points stage at version n. Moving current hands previous to the
// version that held current.
func (m *Metadata) setStage(stage string, n int) {
	if old, ok := m.Stages[stage]; ok && old == n {
		return
	}
	if stage == StageCurrent {
		if old := m.Stages[StageCurrent]; old != 0 {
			m.Stages[StagePrevious] = old
		}
	}
	m.Stages[stage] = n
}

// maxPrunedTokens bounds how many idempotency tokens of pruned versions a
// secret remembers.
const maxPrunedTokens = 64

// prune removes the oldest versions that hold no stage until at most
// MaxVersions remain.
func (s *Service) prune(tx storage.Tx, m *Metadata) error {
	for len(m.Versions) > m.MaxVersions {
		i := slices.IndexFunc(m.Versions, func(v Version) bool { return len(m.stagesOf(v.Number)) == 0 })
		if i < 0 {
			return nil
		}
		if err := tx.Delete(dataKey(m.ID, m.Versions[i].Number)); err != nil {
			return err
		}
		if t := m.Versions[i].IdempotencyToken; t != "" {
			m.PrunedTokens = append(m.PrunedTokens, t)
			if n := len(m.PrunedTokens) - maxPrunedTokens; n > 0 {
				m.PrunedTokens = slices.Delete(m.PrunedTokens, 0, n)
			}
		}
		m.Versions = slices.Delete(m.Versions, i, i+1)
	}
	return nil
}

// Selector picks a version: by number, by stage, or (zero value) current.
type Selector struct {
	Version int
	Stage   string
}

func (sel Selector) validate() error {
	if sel.Version < 0 {
		return invalid("version", "must be positive")
	}
	if sel.Version != 0 && sel.Stage != "" {
		return invalid("stage", "give a version or a stage, not both")
	}
	if sel.Stage != "" {
		return ValidateStage(sel.Stage)
	}
	return nil
}

// Get returns a version's value; deleted and expired secrets are refused.
func (s *Service) Get(ctx context.Context, name string, sel Selector) (*Value, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := sel.validate(); err != nil {
		return nil, err
	}
	m, err := s.cachedMeta(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.usable(m); err != nil {
		return nil, err
	}
	n := sel.Version
	if n == 0 {
		stage := sel.Stage
		if stage == "" {
			stage = StageCurrent
		}
		n = m.Stages[stage]
	}
	v := m.version(n)
	if v == nil {
		return nil, ErrVersionNotFound
	}
	if v.Destroyed {
		return nil, ErrDestroyed
	}
	data, err := s.store.Get(ctx, dataKey(m.ID, n))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, ErrVersionNotFound
		}
		return nil, err
	}
	return &Value{Name: name, Version: n, Stages: m.stagesOf(n), Type: v.Type, Data: data, CreatedAt: v.CreatedAt}, nil
}

// Describe returns a secret's metadata, deleted or not.
func (s *Service) Describe(ctx context.Context, name string) (*Metadata, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	m, err := readMeta(func(k string) ([]byte, error) { return s.store.Get(ctx, k) }, name)
	if err != nil {
		return nil, err
	}
	return m.withDerived(), nil
}

// ListInput selects a page of names.
type ListInput struct {
	Prefix         string
	Cursor         string // the last name of the previous page
	Limit          int
	IncludeDeleted bool
}

// ListItem is one entry of a list page: never a value.
type ListItem struct {
	Name           string     `json:"name"`
	CurrentVersion int        `json:"current_version"`
	LatestVersion  int        `json:"latest_version"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DeletedAt      *time.Time `json:"deleted_at,omitempty"`
}

// ListPage is a page of names and the cursor of the next page ("" at the end).
type ListPage struct {
	Items      []ListItem `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// List returns names under a prefix in byte order.
func (s *Service) List(ctx context.Context, in ListInput) (*ListPage, error) {
	if err := ValidatePrefix(in.Prefix); err != nil {
		return nil, err
	}
	if in.Cursor != "" {
		if err := ValidateName(in.Cursor); err != nil {
			return nil, invalid("cursor", "is not a name from a previous page")
		}
	}
	switch {
	case in.Limit == 0:
		in.Limit = DefaultListLimit
	case in.Limit < 0 || in.Limit > MaxListLimit:
		return nil, invalid("limit", "must be between 1 and %d", MaxListLimit)
	}
	page := &ListPage{Items: []ListItem{}}
	after := ""
	if in.Cursor != "" {
		after = metaKey(in.Cursor)
	}
	get := func(k string) ([]byte, error) { return s.store.Get(ctx, k) }
	for {
		// Ask for one more than still fits, to learn whether a next page exists.
		want := in.Limit - len(page.Items) + 1
		keys, err := s.store.List(ctx, metaKey(in.Prefix), after, want)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			after = k
			m, err := readMeta(get, strings.TrimPrefix(k, metaPrefix))
			if errors.Is(err, ErrNotFound) {
				continue // purged meanwhile
			}
			if err != nil {
				return nil, err
			}
			if m.DeletedAt != nil && !in.IncludeDeleted {
				continue
			}
			if len(page.Items) == in.Limit {
				page.NextCursor = page.Items[len(page.Items)-1].Name
				return page, nil
			}
			page.Items = append(page.Items, ListItem{Name: m.Name, CurrentVersion: m.CurrentVersion(),
				LatestVersion: m.LatestVersion, UpdatedAt: m.UpdatedAt, DeletedAt: m.DeletedAt})
		}
		if len(keys) < want {
			return page, nil
		}
	}
}

// MoveStage points stage at version to. When from is not 0 the stage must
// currently be on version from. Moving current hands previous to the version
// that held current: that is how a rollback works.
func (s *Service) MoveStage(ctx context.Context, name, stage string, to, from int, actor string) (*Metadata, error) {
	if err := ValidateStage(stage); err != nil {
		return nil, err
	}
	if to < 1 {
		return nil, invalid("version", "must be positive")
	}
	if stage == StagePrevious {
		return nil, invalid("stage", "previous is set by Coffer when current moves")
	}
	m, err := s.update(ctx, name, func(tx storage.Tx, m *Metadata) error {
		if err := s.usable(m); err != nil {
			return err
		}
		v := m.version(to)
		if v == nil {
			return ErrVersionNotFound
		}
		if from != 0 && m.Stages[stage] != from {
			return fmt.Errorf("%w: %s is on version %d, not %d", ErrStageConflict, stage, m.Stages[stage], from)
		}
		if v.Destroyed && stage == StageCurrent {
			return fmt.Errorf("%w: cannot make destroyed version %d current", ErrStageConflict, to)
		}
		m.setStage(stage, to)
		return nil
	})
	if err == nil {
		s.publish(events.StageMoved, m.Name, to, stage)
	}
	return m, err
}

// RemoveStage takes stage off whatever version holds it. current cannot be
// removed, only moved.
func (s *Service) RemoveStage(ctx context.Context, name, stage string) (*Metadata, error) {
	if err := ValidateStage(stage); err != nil {
		return nil, err
	}
	if stage == StageCurrent {
		return nil, fmt.Errorf("%w: current can be moved but not removed", ErrStageConflict)
	}
	return s.update(ctx, name, func(tx storage.Tx, m *Metadata) error {
		if _, ok := m.Stages[stage]; !ok {
			return ErrVersionNotFound
		}
		delete(m.Stages, stage)
		return s.prune(tx, m)
	})
}

// update runs a read-modify-write of a secret's metadata in one transaction.
func (s *Service) update(ctx context.Context, name string, fn func(storage.Tx, *Metadata) error) (*Metadata, error) {
	s.forget(name)
	defer s.forget(name)
	var out *Metadata
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		m, err := s.metaForUpdate(tx, name)
		if err != nil {
			return err
		}
		if err := fn(tx, m); err != nil {
			return err
		}
		m.UpdatedAt = s.now().UTC()
		if err := writeMeta(tx, m); err != nil {
			return err
		}
		out = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out.withDerived(), nil
}

// DeleteInput controls Delete.
type DeleteInput struct {
	RecoveryWindow time.Duration // 0: DefaultRecoveryWindow
	Force          bool          // purge now, without recovery
}

// Delete schedules a secret for deletion after a recovery window, or with
// Force purges it and all its versions at once. It returns the metadata as
// deleted (nil after a forced delete).
func (s *Service) Delete(ctx context.Context, name string, in DeleteInput) (*Metadata, error) {
	if in.Force {
		if err := ValidateName(name); err != nil {
			return nil, err
		}
		s.forget(name)
		defer s.forget(name)
		err := s.store.Update(ctx, func(tx storage.Tx) error {
			m, err := readMeta(tx.Get, name)
			if err != nil {
				return err
			}
			return purge(tx, m)
		})
		if err == nil {
			s.publish(events.Purged, name, 0, "")
		}
		return nil, err
	}
	w := in.RecoveryWindow
	if w == 0 {
		w = DefaultRecoveryWindow
	}
	if w < MinRecoveryWindow || w > MaxRecoveryWindow {
		return nil, invalid("recovery_days", "must be between %d and %d days", int(MinRecoveryWindow/(24*time.Hour)), int(MaxRecoveryWindow/(24*time.Hour)))
	}
	m, err := s.update(ctx, name, func(tx storage.Tx, m *Metadata) error {
		if m.DeletedAt != nil {
			return ErrDeleted
		}
		now := s.now().UTC()
		purgeAt := now.Add(w)
		m.DeletedAt, m.PurgeAt = &now, &purgeAt
		return tx.Put(purgePrefix+m.Name, []byte(purgeAt.Format(time.RFC3339Nano)))
	})
	if err == nil {
		s.publish(events.Deleted, m.Name, 0, "")
	}
	return m, err
}

// Restore cancels a scheduled deletion.
func (s *Service) Restore(ctx context.Context, name string) (*Metadata, error) {
	m, err := s.update(ctx, name, func(tx storage.Tx, m *Metadata) error {
		if m.DeletedAt == nil {
			return ErrNotDeleted
		}
		m.DeletedAt, m.PurgeAt = nil, nil
		return tx.Delete(purgePrefix + m.Name)
	})
	if err == nil {
		s.publish(events.Restored, m.Name, m.CurrentVersion(), "")
	}
	return m, err
}

func purge(tx storage.Tx, m *Metadata) error {
	for _, v := range m.Versions {
		if err := tx.Delete(dataKey(m.ID, v.Number)); err != nil {
			return err
		}
	}
	if err := tx.Delete(purgePrefix + m.Name); err != nil {
		return err
	}
	return tx.Delete(metaKey(m.Name))
}

// PurgeDue permanently removes secrets whose recovery window has passed and
// returns how many it removed.
func (s *Service) PurgeDue(ctx context.Context) (int, error) {
	n, after := 0, ""
	for {
		keys, err := s.store.List(ctx, purgePrefix, after, 100)
		if err != nil || len(keys) == 0 {
			return n, err
		}
		after = keys[len(keys)-1]
		for _, k := range keys {
			name := strings.TrimPrefix(k, purgePrefix)
			s.forget(name)
			err := s.store.Update(ctx, func(tx storage.Tx) error {
				m, err := readMeta(tx.Get, name)
				if errors.Is(err, ErrNotFound) {
					return tx.Delete(k)
				}
				if err != nil {
					return err
				}
				if m.PurgeAt == nil || s.now().Before(*m.PurgeAt) {
					return errNotDue
				}
				return purge(tx, m)
			})
			s.forget(name)
			switch {
			case err == nil:
				n++
				s.publish(events.Purged, name, 0, "")
			case errors.Is(err, errNotDue):
			default:
				return n, err
			}
		}
	}
}

var errNotDue = errors.New("not due")

// Destroy erases the values of the given versions; their metadata stays.
func (s *Service) Destroy(ctx context.Context, name string, versions []int) (*Metadata, error) {
	if len(versions) == 0 || len(versions) > MaxVersionsLimit {
		return nil, invalid("versions", "give 1 to %d version numbers", MaxVersionsLimit)
	}
	m, err := s.update(ctx, name, func(tx storage.Tx, m *Metadata) error {
		for _, n := range versions {
			v := m.version(n)
			if v == nil {
				return fmt.Errorf("%w: %d", ErrVersionNotFound, n)
			}
			if err := tx.Delete(dataKey(m.ID, n)); err != nil {
				return err
			}
			v.Destroyed = true
		}
		return nil
	})
	if err == nil {
		for _, n := range versions {
			s.publish(events.Destroyed, m.Name, n, "")
		}
	}
	return m, err
}

// Patch changes a secret's metadata; nil fields are left alone.
type Patch struct {
	Description *string
	Tags        map[string]string // replaces all tags when not nil
	SetTags     map[string]string // adds or changes these tags
	RemoveTags  []string
	MaxVersions *int
	ExpiresAt   *time.Time // a zero time clears the expiry
}

// UpdateMetadata applies a Patch.
func (s *Service) UpdateMetadata(ctx context.Context, name string, p Patch) (*Metadata, error) {
	if p.Description != nil {
		if err := validateDescription(*p.Description); err != nil {
			return nil, err
		}
	}
	if p.MaxVersions != nil {
		if err := validateMaxVersions(*p.MaxVersions); err != nil {
			return nil, err
		}
	}
	m, err := s.update(ctx, name, func(tx storage.Tx, m *Metadata) error {
		if m.DeletedAt != nil {
			return ErrDeleted
		}
		if p.Description != nil {
			m.Description = *p.Description
		}
		if p.Tags != nil {
			m.Tags = p.Tags
		}
		if len(p.SetTags) > 0 && m.Tags == nil {
			m.Tags = map[string]string{}
		}
		for k, v := range p.SetTags {
			m.Tags[k] = v
		}
		for _, k := range p.RemoveTags {
			delete(m.Tags, k)
		}
		if err := validateTags(m.Tags); err != nil {
			return err
		}
		if p.ExpiresAt != nil {
			if p.ExpiresAt.IsZero() {
				m.ExpiresAt = nil
			} else {
				t := p.ExpiresAt.UTC()
				m.ExpiresAt = &t
			}
		}
		if p.MaxVersions != nil {
			m.MaxVersions = *p.MaxVersions
			return s.prune(tx, m)
		}
		return nil
	})
	if err == nil {
		s.publish(events.MetadataUpdated, m.Name, 0, "")
	}
	return m, err
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
