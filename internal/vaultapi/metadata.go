package vaultapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/coffer-dev/coffer/internal/secret"
)

// metadataData is Vault's answer to a metadata read.
type metadataData struct {
	CASRequired        bool                       `json:"cas_required"`
	CreatedTime        string                     `json:"created_time"`
	CurrentVersion     int                        `json:"current_version"`
	CustomMetadata     map[string]string          `json:"custom_metadata"`
	DeleteVersionAfter string                     `json:"delete_version_after"`
	MaxVersions        int                        `json:"max_versions"`
	OldestVersion      int                        `json:"oldest_version"`
	UpdatedTime        string                     `json:"updated_time"`
	Versions           map[string]versionListItem `json:"versions"`
}

type versionListItem struct {
	CreatedTime  string `json:"created_time"`
	DeletionTime string `json:"deletion_time"`
	Destroyed    bool   `json:"destroyed"`
}

// errNoSecret answers metadata writes for a path with no secret.
var errNoSecret = &apiError{http.StatusNotFound, []string{"no secret at this path: Coffer creates a secret with its first version, so write data/ first"}}

func (a *API) metadataRead(r *request) (*reply, error) {
	m, err := a.core.Secrets.Describe(r.ctx, r.name)
	if err != nil {
		return nil, err
	}
	out := metadataData{
		CreatedTime: timeString(m.CreatedAt), UpdatedTime: timeString(m.UpdatedAt),
		CurrentVersion: m.CurrentVersion(), CustomMetadata: customMetadata(m),
		DeleteVersionAfter: "0s", MaxVersions: m.MaxVersions,
		Versions: make(map[string]versionListItem, len(m.Versions)),
	}
	// Vault reports 0 until versions start being pruned.
	if len(m.Versions) > 0 && m.Versions[0].Number > 1 {
		out.OldestVersion = m.Versions[0].Number
	}
	del := deletionTime(m)
	for _, v := range m.Versions {
		out.Versions[strconv.Itoa(v.Number)] = versionListItem{CreatedTime: timeString(v.CreatedAt), DeletionTime: del, Destroyed: v.Destroyed}
	}
	return &reply{data: out}, nil
}

// metadataRequest is the body of a metadata write or patch.
type metadataRequest struct {
	MaxVersions        flexInt         `json:"max_versions"`
	CASRequired        *bool           `json:"cas_required"`
	DeleteVersionAfter duration        `json:"delete_version_after"`
	CustomMetadata     json.RawMessage `json:"custom_metadata"`
}

// unsupported refuses the settings Coffer does not have.
func (in *metadataRequest) unsupported() error {
	if in.CASRequired != nil && *in.CASRequired {
		return badRequest("cas_required is not supported by Coffer; send options.cas with each write instead")
	}
	if in.DeleteVersionAfter.set && in.DeleteVersionAfter.d != 0 {
		return badRequest("delete_version_after is not supported by Coffer; set expires_at through Coffer's native API instead")
	}
	if in.MaxVersions.set && in.MaxVersions.n < 0 {
		return badRequest("max_versions must not be negative")
	}
	return nil
}

func (in *metadataRequest) maxVersions() *int {
	if !in.MaxVersions.set {
		return nil
	}
	n := in.MaxVersions.n
	if n == 0 {
		n = secret.DefaultMaxVersions // Vault: 0 means the mount's default
	}
	return &n
}

// customMetadataValues reads custom_metadata's values as strings, the way
// Vault does (numbers and booleans become their text). A null value is
// returned as nil when allowNull, for a patch to remove the key.
func customMetadataValues(raw json.RawMessage, allowNull bool) (map[string]*string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, badRequest("custom_metadata must be an object of strings")
	}
	out := make(map[string]*string, len(obj))
	for k, v := range obj {
		v = bytes.TrimSpace(v)
		switch {
		case bytes.Equal(v, []byte("null")):
			if !allowNull {
				return nil, badRequest("custom_metadata: value of %q must not be null", k)
			}
			out[k] = nil
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, badRequest("custom_metadata must be an object of strings")
			}
			out[k] = &s
		case len(v) > 0 && (v[0] == '{' || v[0] == '['):
			return nil, badRequest("custom_metadata: value of %q must be a string", k)
		default: // a number or a boolean
			s := string(v)
			out[k] = &s
		}
	}
	return out, nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// metadataWrite replaces the given settings. custom_metadata replaces every
// tag; null clears them, as the official client's PutMetadata expects.
func (a *API) metadataWrite(r *request) (*reply, error) {
	var in metadataRequest
	if err := decode(r, &in, true); err != nil {
		return nil, err
	}
	if err := in.unsupported(); err != nil {
		return nil, err
	}
	p := secret.Patch{MaxVersions: in.maxVersions()}
	if len(in.CustomMetadata) > 0 {
		p.Tags = map[string]string{}
		if !isNull(in.CustomMetadata) {
			vals, err := customMetadataValues(in.CustomMetadata, false)
			if err != nil {
				return nil, err
			}
			for k, v := range vals {
				p.Tags[k] = *v
			}
		}
	}
	return nil, a.updateMetadata(r, p)
}

// metadataPatch merges the given settings: custom_metadata keys set to null
// are removed, others set; custom_metadata null removes every key.
func (a *API) metadataPatch(r *request) (*reply, error) {
	if err := requireMergePatch(r); err != nil {
		return nil, err
	}
	var in metadataRequest
	if err := decode(r, &in, false); err != nil {
		return nil, err
	}
	if err := in.unsupported(); err != nil {
		return nil, err
	}
	p := secret.Patch{MaxVersions: in.maxVersions()}
	switch {
	case len(in.CustomMetadata) == 0:
	case isNull(in.CustomMetadata):
		p.Tags = map[string]string{}
	default:
		vals, err := customMetadataValues(in.CustomMetadata, true)
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			if v == nil {
				p.RemoveTags = append(p.RemoveTags, k)
				continue
			}
			if p.SetTags == nil {
				p.SetTags = map[string]string{}
			}
			p.SetTags[k] = *v
		}
	}
	return nil, a.updateMetadata(r, p)
}

func (a *API) updateMetadata(r *request, p secret.Patch) error {
	var err error
	if p.Tags == nil && p.SetTags == nil && p.RemoveTags == nil && p.MaxVersions == nil {
		_, err = a.core.Secrets.Describe(r.ctx, r.name) // nothing to change; still 404 a missing secret
	} else {
		_, err = a.core.Secrets.UpdateMetadata(r.ctx, r.name, p)
	}
	if errors.Is(err, secret.ErrNotFound) {
		return errNoSecret
	}
	return err
}

// metadataDelete purges the secret and all its versions. A missing secret
// is not an error, as in Vault.
func (a *API) metadataDelete(r *request) (*reply, error) {
	_, err := a.core.Secrets.Delete(r.ctx, r.name, secret.DeleteInput{Force: true})
	if errors.Is(err, secret.ErrNotFound) {
		return nil, nil
	}
	return nil, err
}

// maxListScan bounds how many names one list may examine.
const maxListScan = 100_000

// kvList answers Vault's LIST: the immediate children of a folder, folders
// with a trailing slash. It walks Coffer's names under the folder, keeps
// only those the caller may list, and once a child folder is listed skips
// past the rest of it rather than reading every name inside.
func (a *API) kvList(r *request) (*reply, error) {
	dir := strings.TrimSuffix(r.PathValue("path"), "/")
	prefix := ""
	if dir != "" {
		if err := secret.ValidateName(dir); err != nil {
			return nil, err
		}
		prefix = dir + "/"
	}
	keys := []string{}
	in := secret.ListInput{Prefix: prefix, Limit: secret.MaxListLimit, IncludeDeleted: true}
	scanned := 0
	var warnings []string
	for {
		page, err := a.core.Secrets.List(r.ctx, in)
		if err != nil {
			return nil, err
		}
		lastDir := "" // the child folder listed last, if its names may go on
		for _, it := range page.Items {
			scanned++
			child, _, isDir := strings.Cut(strings.TrimPrefix(it.Name, prefix), "/")
			if isDir && child == lastDir {
				continue
			}
			lastDir = ""
			if a.authorize(r, r.route.op, it.Name, "list") != nil {
				continue
			}
			if isDir {
				keys = append(keys, child+"/")
				lastDir = child
			} else {
				keys = append(keys, child)
			}
		}
		if page.NextCursor == "" {
			break
		}
		if scanned >= maxListScan {
			warnings = append(warnings, "listing stopped after examining "+strconv.Itoa(maxListScan)+" names; some keys may be missing")
			break
		}
		in.Cursor = page.NextCursor
		if lastDir != "" {
			// Every other name in that folder sorts at or before this one.
			in.Cursor = lastNameUnder(prefix + lastDir)
		}
	}
	if len(keys) == 0 {
		return nil, errNotFound
	}
	sort.Strings(keys)
	return &reply{data: map[string]any{"keys": keys}, warnings: warnings}, nil
}

// lastNameUnder returns the greatest valid name in folder: folder + "/" +
// 'z' (the greatest byte a name may hold) up to the length limit. folder
// holds at least one name, so it is short enough for one more byte.
func lastNameUnder(folder string) string {
	return folder + "/" + strings.Repeat("z", max(1, secret.MaxNameLen-len(folder)-1))
}
