package vaultapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/secret"
)

// versionMeta is Vault's per-version metadata, as data reads and writes return it.
type versionMeta struct {
	CreatedTime    string            `json:"created_time"`
	CustomMetadata map[string]string `json:"custom_metadata"`
	DeletionTime   string            `json:"deletion_time"`
	Destroyed      bool              `json:"destroyed"`
	Version        int               `json:"version"`
}

// kvData is the data of a read: the value and its version's metadata.
type kvData struct {
	Data     json.RawMessage `json:"data"`
	Metadata versionMeta     `json:"metadata"`
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// findVersion returns version n of m, or nil.
func findVersion(m *secret.Metadata, n int) *secret.Version {
	i := slices.IndexFunc(m.Versions, func(v secret.Version) bool { return v.Number == n })
	if i < 0 {
		return nil
	}
	return &m.Versions[i]
}

// deletionTime is when the secret stops being readable, as Vault's
// deletion_time: when it was soft-deleted, else its expiry (which, like a
// Vault delete_version_after, may lie in the future). Coffer deletes and
// expires whole secrets, so every version shares it.
func deletionTime(m *secret.Metadata) string {
	switch {
	case m.DeletedAt != nil:
		return timeString(*m.DeletedAt)
	case m.ExpiresAt != nil:
		return timeString(*m.ExpiresAt)
	}
	return ""
}

func customMetadata(m *secret.Metadata) map[string]string {
	if len(m.Tags) == 0 {
		return nil
	}
	return m.Tags
}

func versionMetaOf(m *secret.Metadata, n int) versionMeta {
	out := versionMeta{Version: n, CustomMetadata: customMetadata(m), DeletionTime: deletionTime(m)}
	if v := findVersion(m, n); v != nil {
		out.CreatedTime, out.Destroyed = timeString(v.CreatedAt), v.Destroyed
	}
	return out
}

// vaultData presents a Coffer value as a Vault secret, which is always a
// JSON object: a JSON object as itself; text as {"value": text}; other
// JSON as {"value": json}; bytes as {"value_base64": base64}.
func vaultData(v *secret.Value) json.RawMessage {
	switch v.Type {
	case secret.TypeJSON:
		trimmed := bytes.TrimSpace(v.Data)
		if len(trimmed) > 0 && trimmed[0] == '{' {
			return trimmed
		}
		return wrapValue("value", json.RawMessage(trimmed))
	case secret.TypeText:
		return wrapValue("value", string(v.Data))
	default:
		return wrapValue("value_base64", base64.StdEncoding.EncodeToString(v.Data))
	}
}

func wrapValue(key string, v any) json.RawMessage {
	return bytes.TrimSpace(encode(map[string]any{key: v}))
}

// dataRequest is the body of a data write or patch.
type dataRequest struct {
	Data    json.RawMessage `json:"data"`
	Options *struct {
		CAS flexInt `json:"cas"`
	} `json:"options"`
}

func (in *dataRequest) cas() (int, bool) {
	if in.Options == nil || !in.Options.CAS.set {
		return 0, false
	}
	return in.Options.CAS.n, true
}

// object returns the data as compact JSON, refusing anything but an object.
func (in *dataRequest) object() ([]byte, error) {
	trimmed := bytes.TrimSpace(in.Data)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, badRequest("no data provided")
	}
	if trimmed[0] != '{' {
		return nil, badRequest("data must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		return nil, badRequest("data is not valid JSON")
	}
	return buf.Bytes(), nil
}

func (a *API) kvRead(r *request) (*reply, error) {
	var sel secret.Selector
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, badRequest("version must be a non-negative integer")
		}
		sel.Version = n // 0 is the current version, as in Vault
	}
	val, err := a.core.Secrets.Get(r.ctx, r.name, sel)
	switch {
	case errors.Is(err, secret.ErrDeleted), errors.Is(err, secret.ErrDestroyed), errors.Is(err, secret.ErrExpired):
		// Vault answers a deleted or destroyed version with 404 and its
		// metadata, so clients can tell it from a missing one.
		m, derr := a.core.Secrets.Describe(r.ctx, r.name)
		if derr != nil {
			return nil, derr
		}
		n := sel.Version
		if n == 0 {
			n = m.CurrentVersion()
		}
		if findVersion(m, n) == nil {
			return nil, errNotFound
		}
		return &reply{status: http.StatusNotFound, data: kvData{Data: json.RawMessage("null"), Metadata: versionMetaOf(m, n)}}, nil
	case err != nil:
		return nil, err
	}
	m, err := a.core.Secrets.Describe(r.ctx, r.name)
	if err != nil {
		return nil, err
	}
	return &reply{data: kvData{Data: vaultData(val), Metadata: versionMetaOf(m, val.Version)}}, nil
}

// kvWrite stores a new version. Like the native API's put, update allows
// any write and create alone allows only creating the secret.
func (a *API) kvWrite(r *request) (*reply, error) {
	denied := a.authorize(r, r.route.op, r.name, "update")
	createOnly := denied != nil
	if createOnly && a.authorize(r, "vault.kv.create", r.name, "create") != nil {
		return nil, denied
	}
	if err := secret.ValidateName(r.name); err != nil {
		return nil, err
	}
	var in dataRequest
	if err := decode(r, &in, false); err != nil {
		return nil, err
	}
	value, err := in.object()
	if err != nil {
		return nil, err
	}
	cas, hasCAS := in.cas()
	if createOnly {
		if hasCAS && cas != 0 {
			return nil, denied
		}
		cas, hasCAS = 0, true
	}
	return a.put(r, value, cas, hasCAS, createOnly)
}

func (a *API) put(r *request, value []byte, cas int, hasCAS, createOnly bool) (*reply, error) {
	in := secret.PutInput{Name: r.name, Value: value, Type: secret.TypeJSON, Actor: r.principal.Name}
	if hasCAS {
		in.CAS = &cas
	}
	res, err := a.core.Secrets.Put(r.ctx, in)
	if createOnly && errors.Is(err, secret.ErrCASMismatch) {
		return nil, fmt.Errorf("%w: the secret exists and the token may only create", auth.ErrForbidden)
	}
	if err != nil {
		return nil, err
	}
	m, err := a.core.Secrets.Describe(r.ctx, r.name)
	if err != nil {
		return nil, err
	}
	return &reply{data: versionMetaOf(m, res.Version)}, nil
}

// kvPatch applies a JSON merge patch (RFC 7386) to the current version and
// writes the result as a new version, with check-and-set on the version it
// read so that a concurrent write is never lost.
func (a *API) kvPatch(r *request) (*reply, error) {
	if err := requireMergePatch(r); err != nil {
		return nil, err
	}
	var in dataRequest
	if err := decode(r, &in, false); err != nil {
		return nil, err
	}
	patch, err := in.object()
	if err != nil {
		return nil, err
	}
	cur, err := a.core.Secrets.Get(r.ctx, r.name, secret.Selector{})
	if errors.Is(err, secret.ErrDeleted) {
		return nil, errNotFound // Vault: patching a deleted version is a 404
	}
	if err != nil {
		return nil, err
	}
	if cas, ok := in.cas(); ok && cas != cur.Version {
		return nil, secret.ErrCASMismatch
	}
	trimmed := bytes.TrimSpace(cur.Data)
	if cur.Type != secret.TypeJSON || len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, badRequest("cannot patch: the current version holds %s, not a JSON object; write the whole value instead", describeType(cur))
	}
	var base, p any
	if err := unmarshalNumber(trimmed, &base); err != nil {
		return nil, err
	}
	if err := unmarshalNumber(patch, &p); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(mergePatch(base, p)); err != nil {
		return nil, err
	}
	return a.put(r, bytes.TrimSpace(buf.Bytes()), cur.Version, true, false)
}

func describeType(v *secret.Value) string {
	if v.Type == secret.TypeJSON {
		return "JSON that is not an object"
	}
	return v.Type
}

func unmarshalNumber(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// mergePatch applies an RFC 7386 JSON merge patch to target.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// kvDelete soft-deletes the secret (Vault: deletes the latest version).
// Deleting a missing or already deleted secret succeeds, as in Vault.
func (a *API) kvDelete(r *request) (*reply, error) {
	return nil, a.softDelete(r)
}

func (a *API) softDelete(r *request) error {
	_, err := a.core.Secrets.Delete(r.ctx, r.name, secret.DeleteInput{})
	if errors.Is(err, secret.ErrDeleted) || errors.Is(err, secret.ErrNotFound) {
		return nil
	}
	return err
}

type versionsRequest struct {
	Versions intList `json:"versions"`
}

func decodeVersions(r *request) ([]int, error) {
	var in versionsRequest
	if err := decode(r, &in, false); err != nil {
		return nil, err
	}
	if len(in.Versions) == 0 {
		return nil, badRequest("no version number provided")
	}
	return in.Versions, nil
}

// kvDeleteVersions soft-deletes the whole secret when the list includes the
// current (or latest) version; Coffer cannot delete older versions alone.
func (a *API) kvDeleteVersions(r *request) (*reply, error) {
	versions, err := decodeVersions(r)
	if err != nil {
		return nil, err
	}
	m, err := a.core.Secrets.Describe(r.ctx, r.name)
	if errors.Is(err, secret.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m.DeletedAt != nil {
		return nil, nil
	}
	cur := m.CurrentVersion()
	if !slices.Contains(versions, cur) && !slices.Contains(versions, m.LatestVersion) {
		return nil, badRequest("Coffer deletes whole secrets, not single versions: include the current version (%d) to soft-delete the secret with every version, or destroy old versions with destroy/", cur)
	}
	return nil, a.softDelete(r)
}

// kvUndelete restores the whole secret, whatever versions are listed.
func (a *API) kvUndelete(r *request) (*reply, error) {
	if _, err := decodeVersions(r); err != nil {
		return nil, err
	}
	_, err := a.core.Secrets.Restore(r.ctx, r.name)
	if errors.Is(err, secret.ErrNotDeleted) || errors.Is(err, secret.ErrNotFound) {
		return nil, nil
	}
	return nil, err
}

// kvDestroy erases the values of the listed versions that exist.
func (a *API) kvDestroy(r *request) (*reply, error) {
	versions, err := decodeVersions(r)
	if err != nil {
		return nil, err
	}
	m, err := a.core.Secrets.Describe(r.ctx, r.name)
	if errors.Is(err, secret.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var present []int
	for _, n := range versions {
		if findVersion(m, n) != nil && !slices.Contains(present, n) {
			present = append(present, n)
		}
	}
	if len(present) == 0 {
		return nil, nil
	}
	_, err = a.core.Secrets.Destroy(r.ctx, r.name, present)
	return nil, err
}
