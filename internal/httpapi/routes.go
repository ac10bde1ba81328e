package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/secret"
)

// table is every route of the native API.
func (a *API) table() []route {
	return slices.Concat(a.coreRoutes(), a.tokenRoutes(), a.policyRoutes(), a.emergencyRoutes(), a.authMethodRoutes(), a.metricsRoutes(), a.awsKeyRoutes(a.core.AWSKeys), a.eventRoutes(), a.snapshotRoutes(), a.clusterRoutes(), a.exposureRoutes(), a.dbRoutes(), a.leaseRoutes(), a.rotationRoutes(), a.randomRoutes())
}

func (a *API) coreRoutes() []route {
	return []route{
		{"GET", "/v1/sys/health", Op{"sys.health", ""}, public, a.health, nil},
		{"GET", "/v1/sys/seal-status", Op{"sys.seal-status", ""}, public, a.sealStatus, nil},
		{"GET", "/v1/sys/health/live", Op{"sys.live", ""}, public, a.live, nil},
		{"GET", "/v1/sys/health/ready", Op{"sys.ready", ""}, public, a.ready, nil},
		{"POST", "/v1/sys/init", Op{"sys.init", ""}, public, a.initialize, nil},
		{"POST", "/v1/sys/unseal", Op{"sys.unseal", ""}, public, a.unseal, nil},
		{"POST", "/v1/sys/seal", Op{"sys.seal", "admin"}, authenticated, a.seal, fixed("sys/seal")},
		{"POST", "/v1/sys/rotate-key", Op{"sys.rotate-key", "admin"}, authenticated, a.rotateKey, fixed("sys/rotate-key")},
		{"GET", "/v1/sys/key-status", Op{"sys.key-status", "read"}, authenticated, a.keyStatus, fixed("sys/key-status")},

		{"GET", "/v1/secrets", Op{"secret.list", capCustom}, authenticated, a.listSecrets, func(r *request) string { return r.URL.Query().Get("prefix") }},
		{"GET", "/v1/secrets/{name...}", Op{"secret.read", "read"}, authenticated, a.getSecret, nil},
		{"PUT", "/v1/secrets/{name...}", Op{"secret.write", capCustom}, authenticated, a.putSecret, nil},
		{"DELETE", "/v1/secrets/{name...}", Op{"secret.delete", "delete"}, authenticated, a.deleteSecret, nil},
		{"GET", "/v1/metadata/{name...}", Op{"secret.describe", "read"}, authenticated, a.describeSecret, nil},
		{"PATCH", "/v1/metadata/{name...}", Op{"secret.update-metadata", "update"}, authenticated, a.updateMetadata, nil},
		{"POST", "/v1/restore/{name...}", Op{"secret.restore", "delete"}, authenticated, a.restoreSecret, nil},
		{"POST", "/v1/destroy/{name...}", Op{"secret.destroy", "destroy"}, authenticated, a.destroyVersions, nil},
		{"POST", "/v1/stages/{name...}", Op{"secret.move-stage", "update"}, authenticated, a.moveStage, nil},
		{"DELETE", "/v1/stages/{name...}", Op{"secret.remove-stage", "update"}, authenticated, a.removeStage, nil},
	}
}

func (a *API) health(r *request) (any, error) {
	st, err := a.core.Status(r.ctx)
	storageErr := a.core.HealthCheck(r.ctx)
	auditErr := a.core.AuditReady(r.ctx) // probes a failed log, so recovery shows at once
	body := map[string]any{
		"initialized": st.Initialized,
		"sealed":      st.Sealed,
		"storage_ok":  err == nil && storageErr == nil,
		"audit_ok":    auditErr == nil,
		"time":        time.Now().UTC(),
	}
	switch {
	case err != nil || storageErr != nil || auditErr != nil:
		r.status = http.StatusServiceUnavailable
	case !st.Initialized:
		r.status = http.StatusNotImplemented
	case st.Sealed:
		r.status = http.StatusServiceUnavailable
	}
	return body, nil
}

// live answers 200 while the process serves HTTP: for a liveness probe,
// which should restart a hung process but never a sealed one.
func (a *API) live(r *request) (any, error) {
	return map[string]bool{"live": true}, nil
}

// ready answers 200 only when the server can serve secrets: initialized,
// unsealed, storage answering and the audit log writable. Load balancers
// and readiness probes route on it.
func (a *API) ready(r *request) (any, error) {
	st, err := a.core.Status(r.ctx)
	checks := map[string]bool{
		"initialized": err == nil && st.Initialized,
		"unsealed":    err == nil && !st.Sealed,
		"storage_ok":  a.core.HealthCheck(r.ctx) == nil,
		"audit_ok":    a.core.AuditReady(r.ctx) == nil,
	}
	ready := true
	for _, ok := range checks {
		ready = ready && ok
	}
	if !ready {
		r.status = http.StatusServiceUnavailable
	}
	return map[string]any{"ready": ready, "checks": checks}, nil
}

func (a *API) sealStatus(r *request) (any, error) {
	return a.core.Status(r.ctx)
}

func (a *API) initialize(r *request) (any, error) {
	var in struct {
		Shares    int `json:"shares"`
		Threshold int `json:"threshold"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return a.core.Init(r.ctx, in.Shares, in.Threshold)
}

func (a *API) unseal(r *request) (any, error) {
	var in struct {
		Key   string `json:"key"`
		Reset bool   `json:"reset"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.Reset {
		a.core.ResetUnseal()
		return a.core.Status(r.ctx)
	}
	if in.Key == "" {
		return nil, badRequest("key is required (or reset: true)")
	}
	return a.core.Unseal(r.ctx, in.Key)
}

func (a *API) seal(r *request) (any, error) {
	a.core.SealBy(r.ctx, r.principal)
	r.audited = true
	return a.core.Status(r.ctx)
}

func (a *API) rotateKey(r *request) (any, error) {
	if _, err := a.core.RotateKey(r.ctx); err != nil {
		return nil, err
	}
	if a.cfg.OnKeyRotated != nil {
		a.cfg.OnKeyRotated()
	}
	return a.core.KeyStatus()
}

func (a *API) keyStatus(r *request) (any, error) { return a.core.KeyStatus() }

// secretValue is the wire form of a version's value: text as a string, JSON
// as itself, bytes as base64.
type secretValue struct {
	Name        string          `json:"name"`
	Version     int             `json:"version"`
	Stages      []string        `json:"stages"`
	Type        string          `json:"type"`
	Value       json.RawMessage `json:"value,omitempty"`
	ValueBase64 string          `json:"value_base64,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
}

// secretText is secretValue for a text value, written as a plain JSON
// string: most secrets are text, and this spares encoding/json from
// validating a pre-encoded value on every read.
type secretText struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Stages    []string  `json:"stages"`
	Type      string    `json:"type"`
	Value     string    `json:"value"`
	CreatedAt time.Time `json:"created_at"`
}

func (a *API) getSecret(r *request) (any, error) {
	var q url.Values // most reads have no query: spare parsing it
	if r.URL.RawQuery != "" {
		q = r.URL.Query()
	}
	var sel secret.Selector
	if v := q.Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, badRequest("version must be a positive integer")
		}
		sel.Version = n
	}
	sel.Stage = q.Get("stage")
	r.version, r.stage = sel.Version, sel.Stage
	v, err := a.core.Secrets.Get(r.ctx, r.PathValue("name"), sel)
	if err != nil {
		return nil, err
	}
	r.version = v.Version
	if v.Type == secret.TypeText {
		return &secretText{Name: v.Name, Version: v.Version, Stages: v.Stages, Type: v.Type, Value: string(v.Data), CreatedAt: v.CreatedAt}, nil
	}
	out := secretValue{Name: v.Name, Version: v.Version, Stages: v.Stages, Type: v.Type, CreatedAt: v.CreatedAt}
	switch v.Type {
	case secret.TypeJSON:
		out.Value = v.Data
	default:
		out.ValueBase64 = base64.StdEncoding.EncodeToString(v.Data)
	}
	return out, nil
}

// PutRequest is the body of PUT /v1/secrets/{name}. Exactly one of Value
// (a JSON string for text, any other JSON for a JSON value) and ValueBase64
// (bytes) must be given.
type PutRequest struct {
	Value            json.RawMessage   `json:"value,omitempty"`
	ValueBase64      *string           `json:"value_base64,omitempty"`
	CAS              *int              `json:"cas,omitempty"`
	IdempotencyToken string            `json:"idempotency_token,omitempty"`
	Stages           []string          `json:"stages,omitempty"`
	Description      string            `json:"description,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	MaxVersions      int               `json:"max_versions,omitempty"`
	ExpiresAt        *time.Time        `json:"expires_at,omitempty"`
}

func (a *API) putSecret(r *request) (any, error) {
	var in PutRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	// update allows any write; create alone allows only creating the secret.
	name, createOnly := r.PathValue("name"), false
	if err := a.authorize(r, "secret.write", name, "update"); err != nil {
		if a.authorize(r, "secret.create", name, "create") != nil {
			return nil, err
		}
		if in.CAS != nil && *in.CAS != 0 {
			return nil, err
		}
		zero := 0
		in.CAS = &zero
		createOnly = true
	}
	data, typ, err := in.value()
	if err != nil {
		return nil, err
	}
	r.sensitive("value", string(data))
	r.sensitive("idempotency_token", in.IdempotencyToken)
	res, err := a.core.Secrets.Put(r.ctx, secret.PutInput{
		Name: r.PathValue("name"), Value: data, Type: typ, CAS: in.CAS,
		IdempotencyToken: in.IdempotencyToken, Stages: in.Stages, Actor: r.principal.Name,
		Description: in.Description, Tags: in.Tags, MaxVersions: in.MaxVersions, ExpiresAt: in.ExpiresAt,
	})
	if res != nil {
		r.version = res.Version
	}
	if createOnly && errors.Is(err, secret.ErrCASMismatch) {
		return nil, fmt.Errorf("%w: the secret exists and the token may only create", auth.ErrForbidden)
	}
	if err != nil {
		return nil, err
	}
	if res.Created {
		r.status = http.StatusCreated
	}
	return res, nil
}

func (in *PutRequest) value() ([]byte, string, error) {
	hasValue := len(in.Value) > 0 && !bytes.Equal(in.Value, []byte("null"))
	switch {
	case hasValue && in.ValueBase64 != nil:
		return nil, "", badRequest("give value or value_base64, not both")
	case in.ValueBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*in.ValueBase64)
		if err != nil {
			return nil, "", badRequest("value_base64 is not valid base64")
		}
		return b, secret.TypeBinary, nil
	case !hasValue:
		return nil, "", badRequest("value is required (a string, a JSON value, or value_base64)")
	case in.Value[0] == '"':
		var s string
		if err := json.Unmarshal(in.Value, &s); err != nil {
			return nil, "", badRequest("value is not a valid JSON string")
		}
		return []byte(s), secret.TypeText, nil
	default:
		var buf bytes.Buffer
		if err := json.Compact(&buf, in.Value); err != nil {
			return nil, "", badRequest("value is not valid JSON")
		}
		return buf.Bytes(), secret.TypeJSON, nil
	}
}

func (a *API) deleteSecret(r *request) (any, error) {
	q := r.URL.Query()
	var in secret.DeleteInput
	if v := q.Get("force"); v != "" {
		f, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("force must be true or false")
		}
		in.Force = f
	}
	if v := q.Get("recovery_days"); v != "" {
		if in.Force {
			return nil, badRequest("give force or recovery_days, not both")
		}
		d, err := strconv.Atoi(v)
		if err != nil || d < 1 || d > 365 {
			return nil, badRequest("recovery_days must be a number of days")
		}
		in.RecoveryWindow = time.Duration(d) * 24 * time.Hour
	}
	m, err := a.core.Secrets.Delete(r.ctx, r.PathValue("name"), in)
	if err != nil || m == nil {
		return nil, err
	}
	return m, nil
}

func (a *API) describeSecret(r *request) (any, error) {
	return a.core.Secrets.Describe(r.ctx, r.PathValue("name"))
}

// MetadataPatch is the body of PATCH /v1/metadata/{name}.
type MetadataPatch struct {
	Description *string           `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	SetTags     map[string]string `json:"set_tags,omitempty"`
	RemoveTags  []string          `json:"remove_tags,omitempty"`
	MaxVersions *int              `json:"max_versions,omitempty"`
	// ExpiresAt sets the expiry; an empty string clears it.
	ExpiresAt *string `json:"expires_at,omitempty"`
}

func (a *API) updateMetadata(r *request) (any, error) {
	var in MetadataPatch
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	p := secret.Patch{Description: in.Description, Tags: in.Tags, SetTags: in.SetTags, RemoveTags: in.RemoveTags, MaxVersions: in.MaxVersions}
	if in.ExpiresAt != nil {
		var t time.Time
		if *in.ExpiresAt != "" {
			var err error
			if t, err = time.Parse(time.RFC3339, *in.ExpiresAt); err != nil {
				return nil, badRequest("expires_at must be an RFC 3339 time, or \"\" to clear it")
			}
		}
		p.ExpiresAt = &t
	}
	return a.core.Secrets.UpdateMetadata(r.ctx, r.PathValue("name"), p)
}

func (a *API) restoreSecret(r *request) (any, error) {
	return a.core.Secrets.Restore(r.ctx, r.PathValue("name"))
}

func (a *API) destroyVersions(r *request) (any, error) {
	var in struct {
		Versions []int `json:"versions"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return a.core.Secrets.Destroy(r.ctx, r.PathValue("name"), in.Versions)
}

func (a *API) moveStage(r *request) (any, error) {
	var in struct {
		Stage       string `json:"stage"`
		Version     int    `json:"version"`
		FromVersion int    `json:"from_version"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return a.core.Secrets.MoveStage(r.ctx, r.PathValue("name"), in.Stage, in.Version, in.FromVersion, r.principal.Name)
}

func (a *API) removeStage(r *request) (any, error) {
	return a.core.Secrets.RemoveStage(r.ctx, r.PathValue("name"), r.URL.Query().Get("stage"))
}

// listScanPages bounds how many storage pages one list request examines
// while it looks for names the caller may list.
const listScanPages = 10

// listSecrets lists the names under a prefix that the caller may list. The
// next page's cursor is sealed (see core.SealCursor): it marks where the
// scan stopped, often at a name the caller may not see, and must tell
// nothing about it. A page may hold fewer than limit names, even none,
// when many names are hidden; next_cursor is absent only at the end.
func (a *API) listSecrets(r *request) (any, error) {
	q := r.URL.Query()
	in := secret.ListInput{Prefix: q.Get("prefix"), Limit: secret.DefaultListLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, badRequest("limit must be a number")
		}
		if n < 1 || n > secret.MaxListLimit {
			return nil, badRequest("limit must be between 1 and %d", secret.MaxListLimit)
		}
		in.Limit = n
	}
	if v := q.Get("include_deleted"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, badRequest("include_deleted must be true or false")
		}
		in.IncludeDeleted = b
	}
	kind := "secrets\x00" + in.Prefix + "\x00" + strconv.FormatBool(in.IncludeDeleted)
	pos, err := a.core.OpenCursor(r.ctx, kind, q.Get("cursor"))
	if errors.Is(err, core.ErrBadCursor) {
		return nil, badRequest("cursor is not the next_cursor of a previous page of this list (same prefix and include_deleted)")
	}
	if err != nil {
		return nil, err
	}
	in.Cursor = pos
	limit := in.Limit
	out := &secret.ListPage{Items: []secret.ListItem{}}
	for scans := 0; scans < listScanPages && len(out.Items) < limit; scans++ {
		in.Limit = limit - len(out.Items)
		page, err := a.core.Secrets.List(r.ctx, in)
		if err != nil {
			return nil, err
		}
		// Names the caller may not list never leave the server.
		for _, it := range page.Items {
			if a.authorize(r, "secret.list", it.Name, "list") == nil {
				out.Items = append(out.Items, it)
			}
			in.Cursor = it.Name
		}
		if page.NextCursor == "" {
			return out, nil // the end
		}
	}
	if out.NextCursor, err = a.core.SealCursor(r.ctx, kind, in.Cursor); err != nil {
		return nil, err
	}
	return out, nil
}
