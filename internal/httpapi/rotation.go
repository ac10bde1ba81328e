package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/rotation"
)

// prefixPolicyPath is the policy path that guards the rotation policy of
// prefix: sys/rotation/prefixes/payments for "payments/" (policy paths
// have no trailing slash). A prefix policy governs every secret under the
// prefix, including secrets the caller may not touch, so setting one is an
// administrator's operation on a reserved path, not an update of the
// prefix string.
func prefixPolicyPath(prefix string) string {
	return "sys/rotation/prefixes/" + strings.TrimSuffix(prefix, "/")
}

// rotationRoutes are the rotation policies, on-demand and emergency rotation.
func (a *API) rotationRoutes() []route {
	prefixPath := func(r *request) string { return prefixPolicyPath(r.PathValue("prefix")) }
	return []route{
		{"GET", "/v1/rotation/secrets/{name...}", Op{"rotation.read", "read"}, authenticated, a.rotationStatus, nil},
		{"PUT", "/v1/rotation/secrets/{name...}", Op{"rotation.write", "update"}, authenticated, a.putRotation, nil},
		{"DELETE", "/v1/rotation/secrets/{name...}", Op{"rotation.delete", "update"}, authenticated, a.deleteRotation, nil},
		{"GET", "/v1/rotation/prefixes", Op{"rotation.list-prefixes", "list"}, authenticated, a.listRotationPrefixes, fixed("sys/rotation/prefixes")},
		{"GET", "/v1/rotation/prefixes/{prefix...}", Op{"rotation.read-prefix", "read"}, authenticated, a.getPrefixRotation, prefixPath},
		{"PUT", "/v1/rotation/prefixes/{prefix...}", Op{"rotation.write-prefix", "admin"}, authenticated, a.putPrefixRotation, prefixPath},
		{"DELETE", "/v1/rotation/prefixes/{prefix...}", Op{"rotation.delete-prefix", "admin"}, authenticated, a.deletePrefixRotation, prefixPath},
		{"POST", "/v1/rotate/{name...}", Op{"secret.rotate", "rotate"}, authenticated, a.rotateSecret, nil},
		{"POST", "/v1/rotation/emergency", Op{"rotation.emergency", "rotate"}, authenticated, a.emergencyRotation, fixed("sys/rotation/emergency")},
	}
}

// rotationError maps the rotation engine's errors.
func rotationError(err error) (int, string, string, bool) {
	switch {
	case errors.Is(err, rotation.ErrNoPolicy):
		return http.StatusNotFound, "no_rotation_policy", "no rotation policy applies; set one with coffer rotation set", true
	case errors.Is(err, rotation.ErrBusy):
		return http.StatusConflict, "rotation_busy", err.Error(), true
	case errors.Is(err, rotation.ErrNotRotating):
		return http.StatusConflict, "not_rotating", err.Error(), true
	}
	return 0, "", "", false
}

// RotationPolicyRequest is the body of PUT /v1/rotation/secrets/{name} and
// PUT /v1/rotation/prefixes/{prefix}.
type RotationPolicyRequest struct {
	Schedule    string            `json:"schedule,omitempty"`
	Grace       rotation.Duration `json:"grace,omitempty"`
	Jitter      rotation.Duration `json:"jitter,omitempty"`
	Rotator     string            `json:"rotator"`
	Options     json.RawMessage   `json:"options,omitempty"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
}

func (in *RotationPolicyRequest) policy() rotation.Policy {
	return rotation.Policy{Schedule: in.Schedule, Grace: in.Grace, Jitter: in.Jitter, Rotator: in.Rotator, Options: in.Options, MaxAttempts: in.MaxAttempts}
}

// readPolicyRequest decodes a policy and checks that the caller may read
// every secret its rotator would read (an administrator credential). For
// a secret's own policy (name not empty) whose rotator sends its values
// to a third party or reads other secrets, the caller must also be
// allowed to read the secret: otherwise update would be enough to point
// a webhook at one's own endpoint and receive the values.
func (a *API) readPolicyRequest(r *request, name string) (rotation.Policy, error) {
	var in RotationPolicyRequest
	if err := decode(r, &in); err != nil {
		return rotation.Policy{}, err
	}
	p := in.policy()
	if name != "" && a.core.Rotation.NeedsRead(p) {
		if err := a.authorize(r, "rotation.write", name, "read"); err != nil {
			return p, fmt.Errorf("%w: the %s rotator hands the secret's values to a third party or reads other secrets, so setting it needs read on %s as well as update", err, p.Rotator, name)
		}
	}
	for _, ref := range a.core.Rotation.References(p) {
		if err := a.authorize(r, "rotation.write", ref, "read"); err != nil {
			return p, fmt.Errorf("%w: the policy's rotator reads %s, which you may not read", err, ref)
		}
	}
	return p, nil
}

func (a *API) rotationStatus(r *request) (any, error) {
	return a.core.Rotation.Status(r.ctx, r.PathValue("name"))
}

func (a *API) putRotation(r *request) (any, error) {
	p, err := a.readPolicyRequest(r, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	out, err := a.core.Rotation.SetPolicy(r.ctx, r.PathValue("name"), p, r.principal.Name)
	if err != nil {
		return nil, err
	}
	st, err := a.core.Rotation.Status(r.ctx, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	// The engine hides secrets kept from the policy's previous options
	// and shows only those this request generated or supplied (a new
	// webhook signing key, once): whoever sets the policy again does not
	// learn a key someone else set.
	st.Policy = out
	return st, nil
}

func (a *API) deleteRotation(r *request) (any, error) {
	return nil, a.core.Rotation.DeletePolicy(r.ctx, r.PathValue("name"))
}

func (a *API) listRotationPrefixes(r *request) (any, error) {
	all, err := a.core.Rotation.PrefixPolicies(r.ctx)
	if err != nil {
		return nil, err
	}
	visible := []string{}
	for _, p := range all {
		if a.authorize(r, "rotation.list-prefixes", prefixPolicyPath(p), "read") == nil {
			visible = append(visible, p)
		}
	}
	return map[string]any{"prefixes": visible}, nil
}

func (a *API) getPrefixRotation(r *request) (any, error) {
	p, err := a.core.Rotation.PrefixPolicy(r.ctx, r.PathValue("prefix"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"prefix": r.PathValue("prefix"), "policy": p}, nil
}

func (a *API) putPrefixRotation(r *request) (any, error) {
	p, err := a.readPolicyRequest(r, "")
	if err != nil {
		return nil, err
	}
	out, err := a.core.Rotation.SetPrefixPolicy(r.ctx, r.PathValue("prefix"), p, r.principal.Name)
	if err != nil {
		return nil, err
	}
	// As for putRotation: a kept signing key is redacted, a new one shown once.
	return map[string]any{"prefix": r.PathValue("prefix"), "policy": out}, nil
}

func (a *API) deletePrefixRotation(r *request) (any, error) {
	return nil, a.core.Rotation.DeletePrefixPolicy(r.ctx, r.PathValue("prefix"))
}

// RotateRequest is the optional body of POST /v1/rotate/{name}.
type RotateRequest struct {
	// Cancel stops the rotation in progress instead of starting one.
	Cancel bool `json:"cancel,omitempty"`
	// Immediate revokes the previous credential at once, without the grace window.
	Immediate bool `json:"immediate,omitempty"`
}

// RotateResponse is the answer of POST /v1/rotate/{name}.
type RotateResponse struct {
	Name    string          `json:"name"`
	Rotated bool            `json:"rotated"`           // the new version is current
	Version int             `json:"version,omitempty"` // the current version after the rotation
	State   *rotation.State `json:"state"`
}

func (a *API) rotateSecret(r *request) (any, error) {
	var in RotateRequest
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return nil, err
		}
	}
	name := r.PathValue("name")
	var st *rotation.State
	var err error
	if in.Cancel {
		st, err = a.core.Rotation.Cancel(r.ctx, name, r.principal.Name)
	} else {
		st, err = a.core.Rotation.Rotate(r.ctx, name, rotation.RotateOptions{Immediate: in.Immediate, Actor: r.principal.Name})
	}
	if err != nil {
		return nil, err
	}
	st.LeaseOwner = ""
	out := &RotateResponse{Name: name, State: st}
	if !in.Cancel && st.Status == rotation.StatusScheduled && st.LastError == "" {
		out.Rotated, out.Version = true, st.LastVersion
		r.version = st.LastVersion
	}
	return out, nil
}

// EmergencyRequest is the body of POST /v1/rotation/emergency.
type EmergencyRequest struct {
	Prefix string `json:"prefix"`
	// ReadableBy narrows the rotation to secrets that a token holding
	// these policies can read ("rotate everything the payments service can
	// read"); a grant is counted whatever its conditions, to rotate rather
	// too much than too little.
	ReadableBy []string `json:"readable_by,omitempty"`
	// KeepGrace keeps each policy's grace window; by default previous
	// credentials are revoked at once, since they are presumed compromised.
	KeepGrace bool `json:"keep_grace,omitempty"`
}

// emergencyRotation rotates every secret under a prefix that the caller
// may rotate; the caller also needs rotate on sys/rotation/emergency.
// Secrets the caller may list but not rotate are counted as denied; the
// others are not mentioned at all.
func (a *API) emergencyRotation(r *request) (any, error) {
	var in EmergencyRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.Prefix == "" && len(in.ReadableBy) == 0 {
		return nil, badRequest("prefix is required, unless readable_by names policies (for everything, rotate each top-level prefix)")
	}
	if len(in.ReadableBy) > 32 {
		return nil, badRequest("readable_by: at most 32 policies")
	}
	for _, p := range in.ReadableBy {
		if _, err := a.core.Policies.Get(r.ctx, p); err != nil {
			return nil, badRequest("readable_by: policy %q does not exist", p)
		}
	}
	readable := func(string) bool { return true }
	if len(in.ReadableBy) > 0 {
		holder := &auth.Principal{Name: "readable-by", Policies: in.ReadableBy}
		readable = func(name string) bool { return a.mayEverRead(r, holder, name) }
	}
	denied := 0
	allow := func(name string) bool {
		if !readable(name) {
			return false // not chosen: neither rotated nor counted as denied
		}
		if a.authorize(r, "rotation.emergency", name, "rotate") == nil {
			return true
		}
		if a.authorize(r, "rotation.emergency", name, "list") == nil {
			denied++
		}
		return false
	}
	rep, err := a.core.Rotation.Emergency(r.ctx, in.Prefix, allow, in.KeepGrace, r.principal.Name)
	if err != nil {
		return nil, err
	}
	rep.Denied = denied
	rep.ReadableBy = in.ReadableBy
	return rep, nil
}

// mayEverRead reports whether holder's policies grant read on name under
// some condition: now, or at another time, from another address, or with
// MFA. An explicit deny that applies now rules it out.
func (a *API) mayEverRead(r *request, holder *auth.Principal, name string) bool {
	ex, err := a.core.Policies.Explain(r.ctx, holder, auth.Check{Op: "rotation.emergency", Path: name, Capability: "read"})
	if err != nil {
		return true // when in doubt, rotate
	}
	if ex.Allowed {
		return true
	}
	granted := false
	for _, m := range ex.Matches {
		if m.Deny && m.ConditionMet {
			return false
		}
		granted = granted || (m.Grants && !m.Deny)
	}
	return granted
}
