// Package exposure records reports that a secret's value was exposed: found
// by a repository scanner, pasted into a ticket, printed in a CI log. A
// report is evidence for the incident and the trigger for its response
// (rotating the secret); its count is the reference's M6 indicator.
//
// Reports never hold the exposed value, only where it was seen.
package exposure

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/storage"
)

// Sources a report may name. The set is closed so the metric that counts
// reports by source keeps a bounded cardinality.
var Sources = []string{"scanner", "log", "repository", "chat", "ticket", "other"}

// Limits on a report.
const (
	MaxLocation  = 512
	MaxNote      = 1024
	MaxPerSecret = 100 // older reports of a secret are dropped beyond this
)

// ErrNotFound is returned by Get for an unknown report.
var ErrNotFound = errors.New("exposure report not found")

// Report is one exposure of a secret.
type Report struct {
	ID         string    `json:"id"`
	Secret     string    `json:"secret"`
	Version    int       `json:"version,omitempty"` // 0 when the reporter does not know
	Source     string    `json:"source"`
	Location   string    `json:"location,omitempty"`
	Note       string    `json:"note,omitempty"`
	ReportedBy string    `json:"reported_by"`
	ReportedAt time.Time `json:"reported_at"`
}

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Storage layout: one record per report, keyed by secret then time, so a
// secret's reports list in order. Reports outlive the secret: they are
// evidence of an incident.
const prefix = "exposure/"

// Service records and lists reports. It is safe for concurrent use.
type Service struct {
	store Store
	now   func() time.Time
}

// New returns a Service over store. now may be nil.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

func invalid(field, format string, args ...any) error {
	return &auth.InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func validText(field, v string, max int) error {
	if len(v) > max {
		return invalid(field, "is %d bytes; the limit is %d", len(v), max)
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' }) {
		return invalid(field, "must be printable UTF-8 text on one line")
	}
	return nil
}

func (r *Report) validate() error {
	if r.Source == "" {
		r.Source = "other"
	}
	known := false
	for _, s := range Sources {
		known = known || s == r.Source
	}
	if !known {
		return invalid("source", "must be one of %s", strings.Join(Sources, ", "))
	}
	if r.Version < 0 {
		return invalid("version", "must not be negative")
	}
	if err := validText("location", r.Location, MaxLocation); err != nil {
		return err
	}
	return validText("note", r.Note, MaxNote)
}

// secretPrefix ends in "|", which no secret name holds, so the reports of
// "a" and of "a/b" never share a prefix.
func secretPrefix(name string) string { return prefix + name + "|" }

// key orders a secret's reports by time; the id breaks ties.
func key(r *Report) string {
	return fmt.Sprintf("%s%020d-%s", secretPrefix(r.Secret), r.ReportedAt.UnixNano(), r.ID)
}

// Add stores a report about in.Secret, which the caller has checked exists.
// ID, ReportedAt are set here.
func (s *Service) Add(ctx context.Context, in Report) (*Report, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	in.ID = hex.EncodeToString(id)
	in.ReportedAt = s.now().UTC()
	raw, err := json.Marshal(&in)
	if err != nil {
		return nil, err
	}
	old, err := s.store.List(ctx, secretPrefix(in.Secret), "", 0)
	if err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		// Keep the newest MaxPerSecret: drop the oldest beyond it.
		for i := 0; i+MaxPerSecret <= len(old); i++ {
			if err := tx.Delete(old[i]); err != nil {
				return err
			}
		}
		return tx.Put(key(&in), raw)
	})
	if err != nil {
		return nil, err
	}
	return &in, nil
}

// List returns the reports about a secret, oldest first.
func (s *Service) List(ctx context.Context, name string) ([]*Report, error) {
	return s.list(ctx, secretPrefix(name), 0)
}

// ListAll returns up to limit reports about secrets whose names start with
// namePrefix, in name then time order, starting after the cursor a previous
// page returned (empty: from the start). next is empty on the last page.
func (s *Service) ListAll(ctx context.Context, namePrefix, cursor string, limit int) (reps []*Report, next string, err error) {
	after := ""
	if cursor != "" {
		after = prefix + cursor
	}
	fetch := 0 // every report
	if limit > 0 {
		fetch = limit + 1 // one more tells whether there is a next page
	}
	keys, err := s.store.List(ctx, prefix+namePrefix, after, fetch)
	if err != nil {
		return nil, "", err
	}
	if limit > 0 && len(keys) > limit {
		keys, next = keys[:limit], strings.TrimPrefix(keys[limit-1], prefix)
	}
	reps, err = s.read(ctx, keys)
	return reps, next, err
}

func (s *Service) list(ctx context.Context, p string, limit int) ([]*Report, error) {
	keys, err := s.store.List(ctx, p, "", limit)
	if err != nil {
		return nil, err
	}
	return s.read(ctx, keys)
}

func (s *Service) read(ctx context.Context, keys []string) ([]*Report, error) {
	out := make([]*Report, 0, len(keys))
	for _, k := range keys {
		raw, err := s.store.Get(ctx, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue // removed since the list
		}
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("exposure report %s: %w", k, err)
		}
		out = append(out, &r)
	}
	return out, nil
}
