package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"time"
)

// Secret is one version of a secret with its value.
type Secret struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Stages    []string  `json:"stages"`
	Type      string    `json:"type"` // text, json or binary
	Data      []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// Text returns the value as a string.
func (s *Secret) Text() string { return string(s.Data) }

// Decode unmarshals a JSON value into v.
func (s *Secret) Decode(v any) error { return json.Unmarshal(s.Data, v) }

// Selector picks a version: Current(), Version(n) or Stage(s).
type Selector struct {
	version int
	stage   string
}

// Current selects the version holding the current stage.
func Current() Selector { return Selector{} }

// Version selects version n.
func Version(n int) Selector { return Selector{version: n} }

// Stage selects the version holding stage (current, previous, pending or a custom label).
func Stage(s string) Selector { return Selector{stage: s} }

// Get reads a secret's value. With Config.CacheTTL set, it may answer
// from the cache: a value this Client read at most CacheTTL ago, unless
// this Client changed the secret since (changes made elsewhere show once
// the entry expires, or after InvalidateCache). The caller owns the
// returned Secret.
func (c *Client) Get(ctx context.Context, name string, sel Selector) (*Secret, error) {
	if c.cache == nil {
		return c.get(ctx, name, sel)
	}
	if s := c.cache.get(name, sel); s != nil {
		return s, nil
	}
	gen := c.cache.generation()
	s, err := c.get(ctx, name, sel)
	if err != nil {
		return nil, err
	}
	c.cache.put(gen, name, sel, s)
	return s, nil
}

// get reads a secret's value from the server.
func (c *Client) get(ctx context.Context, name string, sel Selector) (*Secret, error) {
	q := url.Values{}
	if sel.version != 0 {
		q.Set("version", strconv.Itoa(sel.version))
	}
	if sel.stage != "" {
		q.Set("stage", sel.stage)
	}
	var w struct {
		Secret
		Value       json.RawMessage `json:"value"`
		ValueBase64 string          `json:"value_base64"`
	}
	if err := c.do(ctx, "GET", "/v1/secrets/"+name, q, nil, &w); err != nil {
		return nil, err
	}
	s := w.Secret
	switch w.Type {
	case "text":
		var t string
		if err := json.Unmarshal(w.Value, &t); err != nil {
			return nil, errors.New("decode response: text value is not a string")
		}
		s.Data = []byte(t)
	case "json":
		s.Data = []byte(w.Value)
	default:
		b, err := base64.StdEncoding.DecodeString(w.ValueBase64)
		if err != nil {
			return nil, errors.New("decode response: bad base64 value")
		}
		s.Data = b
	}
	return &s, nil
}

// PutInput is a new version. Set exactly one of Text, JSON and Bytes.
type PutInput struct {
	Text  *string
	JSON  json.RawMessage
	Bytes []byte

	CAS              *int // the latest version number the write expects (0: must not exist)
	IdempotencyToken string
	Stages           []string // default: current

	// Used only when the put creates the secret.
	Description string
	Tags        map[string]string
	MaxVersions int
	ExpiresAt   *time.Time
}

// PutResult tells which version a put produced.
type PutResult struct {
	Name    string   `json:"name"`
	Version int      `json:"version"`
	Stages  []string `json:"stages"`
	Created bool     `json:"created"`
	Replay  bool     `json:"replay"`
}

// Put writes a new version.
func (c *Client) Put(ctx context.Context, name string, in PutInput) (*PutResult, error) {
	body := map[string]any{}
	n := 0
	if in.Text != nil {
		body["value"], n = *in.Text, n+1
	}
	if in.JSON != nil {
		body["value"], n = in.JSON, n+1
	}
	if in.Bytes != nil {
		body["value_base64"], n = base64.StdEncoding.EncodeToString(in.Bytes), n+1
	}
	if n != 1 {
		return nil, errors.New("set exactly one of Text, JSON and Bytes")
	}
	if in.CAS != nil {
		body["cas"] = *in.CAS
	}
	if in.IdempotencyToken != "" {
		body["idempotency_token"] = in.IdempotencyToken
	}
	if len(in.Stages) > 0 {
		body["stages"] = in.Stages
	}
	if in.Description != "" {
		body["description"] = in.Description
	}
	if len(in.Tags) > 0 {
		body["tags"] = in.Tags
	}
	if in.MaxVersions != 0 {
		body["max_versions"] = in.MaxVersions
	}
	if in.ExpiresAt != nil {
		body["expires_at"] = in.ExpiresAt
	}
	var r PutResult
	defer c.InvalidateCache(name)
	return &r, c.do(ctx, "PUT", "/v1/secrets/"+name, nil, body, &r)
}

// PutText writes a text value as the new current version.
func (c *Client) PutText(ctx context.Context, name, value string) (*PutResult, error) {
	return c.Put(ctx, name, PutInput{Text: &value})
}

// Metadata describes a secret and its versions, never values.
type Metadata struct {
	Name          string            `json:"name"`
	ID            string            `json:"id"`
	Description   string            `json:"description"`
	Tags          map[string]string `json:"tags"`
	CreatedAt     time.Time         `json:"created_at"`
	CreatedBy     string            `json:"created_by"`
	UpdatedAt     time.Time         `json:"updated_at"`
	ExpiresAt     *time.Time        `json:"expires_at"`
	DeletedAt     *time.Time        `json:"deleted_at"`
	PurgeAt       *time.Time        `json:"purge_at"`
	MaxVersions   int               `json:"max_versions"`
	LatestVersion int               `json:"latest_version"`
	Stages        map[string]int    `json:"stages"`
	Versions      []VersionInfo     `json:"versions"`
}

// VersionInfo describes one version.
type VersionInfo struct {
	Version          int       `json:"version"`
	CreatedAt        time.Time `json:"created_at"`
	CreatedBy        string    `json:"created_by"`
	Type             string    `json:"type"`
	Size             int       `json:"size"`
	Destroyed        bool      `json:"destroyed"`
	IdempotencyToken string    `json:"idempotency_token"`
	Stages           []string  `json:"stages"`
}

// Describe returns a secret's metadata.
func (c *Client) Describe(ctx context.Context, name string) (*Metadata, error) {
	var m Metadata
	return &m, c.do(ctx, "GET", "/v1/metadata/"+name, nil, nil, &m)
}

// MetadataPatch changes metadata; nil fields stay as they are.
type MetadataPatch struct {
	Description *string           `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	SetTags     map[string]string `json:"set_tags,omitempty"`
	RemoveTags  []string          `json:"remove_tags,omitempty"`
	MaxVersions *int              `json:"max_versions,omitempty"`
	ExpiresAt   *string           `json:"expires_at,omitempty"` // RFC 3339, or "" to clear
}

// UpdateMetadata applies a patch.
func (c *Client) UpdateMetadata(ctx context.Context, name string, p MetadataPatch) (*Metadata, error) {
	var m Metadata
	defer c.InvalidateCache(name) // the expiry may have changed
	return &m, c.do(ctx, "PATCH", "/v1/metadata/"+name, nil, p, &m)
}

// ListOptions select a page.
type ListOptions struct {
	Prefix string
	// Cursor is the NextCursor of the previous page (opaque; with the same
	// Prefix and IncludeDeleted), or "" for the first page.
	Cursor         string
	Limit          int
	IncludeDeleted bool
}

// ListItem is one name in a list page.
type ListItem struct {
	Name           string     `json:"name"`
	CurrentVersion int        `json:"current_version"`
	LatestVersion  int        `json:"latest_version"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DeletedAt      *time.Time `json:"deleted_at"`
}

// ListPage is a page of names; NextCursor is empty on the last page. A page
// may hold fewer names than asked, even none, before the last one: names
// the token may not list are skipped, and the server bounds its scan.
type ListPage struct {
	Items      []ListItem `json:"items"`
	NextCursor string     `json:"next_cursor"`
}

// List returns one page of names.
func (c *Client) List(ctx context.Context, o ListOptions) (*ListPage, error) {
	q := url.Values{}
	if o.Prefix != "" {
		q.Set("prefix", o.Prefix)
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.IncludeDeleted {
		q.Set("include_deleted", "true")
	}
	var p ListPage
	return &p, c.do(ctx, "GET", "/v1/secrets", q, nil, &p)
}

// DeleteOptions control Delete.
type DeleteOptions struct {
	RecoveryDays int  // 0: the server's default (30)
	Force        bool // purge now, no recovery
}

// Delete schedules a secret for deletion, or purges it with Force. It
// returns the metadata as deleted, or nil after a forced delete.
func (c *Client) Delete(ctx context.Context, name string, o DeleteOptions) (*Metadata, error) {
	q := url.Values{}
	if o.Force {
		q.Set("force", "true")
	}
	if o.RecoveryDays != 0 {
		q.Set("recovery_days", strconv.Itoa(o.RecoveryDays))
	}
	var m Metadata
	defer c.InvalidateCache(name)
	if err := c.do(ctx, "DELETE", "/v1/secrets/"+name, q, nil, &m); err != nil {
		return nil, err
	}
	if o.Force {
		return nil, nil
	}
	return &m, nil
}

// Restore cancels a scheduled deletion.
func (c *Client) Restore(ctx context.Context, name string) (*Metadata, error) {
	var m Metadata
	defer c.InvalidateCache(name)
	return &m, c.do(ctx, "POST", "/v1/restore/"+name, nil, struct{}{}, &m)
}

// Destroy erases the values of versions; their metadata stays.
func (c *Client) Destroy(ctx context.Context, name string, versions []int) (*Metadata, error) {
	var m Metadata
	defer c.InvalidateCache(name)
	return &m, c.do(ctx, "POST", "/v1/destroy/"+name, nil, map[string]any{"versions": versions}, &m)
}

// MoveStage points stage at version; fromVersion, when not 0, must be where
// the stage is now. Moving current is a rollback or a promotion.
func (c *Client) MoveStage(ctx context.Context, name, stage string, version, fromVersion int) (*Metadata, error) {
	var m Metadata
	in := map[string]any{"stage": stage, "version": version}
	if fromVersion != 0 {
		in["from_version"] = fromVersion
	}
	defer c.InvalidateCache(name)
	return &m, c.do(ctx, "POST", "/v1/stages/"+name, nil, in, &m)
}

// RemoveStage takes a label off its version; current cannot be removed.
func (c *Client) RemoveStage(ctx context.Context, name, stage string) (*Metadata, error) {
	var m Metadata
	defer c.InvalidateCache(name)
	return &m, c.do(ctx, "DELETE", "/v1/stages/"+name, url.Values{"stage": {stage}}, nil, &m)
}
