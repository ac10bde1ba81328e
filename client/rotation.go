package client

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// RotationPolicy says when and how a secret rotates. Durations are strings
// such as "1h", "30d" or "2w".
type RotationPolicy struct {
	// Schedule is "every 30d" or a five-field cron expression (UTC); empty: on demand only.
	Schedule string `json:"schedule,omitempty"`
	// Grace is how long the previous credential keeps working after a rotation.
	Grace string `json:"grace,omitempty"`
	// Jitter delays each scheduled run by a random time up to Jitter.
	Jitter string `json:"jitter,omitempty"`
	// Rotator is password, postgresql, mysql or webhook.
	Rotator string `json:"rotator"`
	// Options configure the rotator (see docs/rotation.md).
	Options     json.RawMessage `json:"options,omitempty"`
	MaxAttempts int             `json:"max_attempts,omitempty"`

	UpdatedAt time.Time `json:"updated_at,omitzero"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// RotationState is the rotation state of one secret.
type RotationState struct {
	Name           string     `json:"name"`
	Source         string     `json:"source"`
	Rotator        string     `json:"rotator"`
	Status         string     `json:"status"` // scheduled, rotating, retrying, failed
	Step           string     `json:"step,omitempty"`
	Trigger        string     `json:"trigger,omitempty"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	FromVersion    int        `json:"from_version,omitempty"`
	PendingVersion int        `json:"pending_version,omitempty"`
	Attempt        int        `json:"attempt,omitempty"`
	RetryAt        *time.Time `json:"retry_at,omitempty"`
	Cancel         bool       `json:"cancel_requested,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LastErrorAt    *time.Time `json:"last_error_at,omitempty"`
	LastRotatedAt  *time.Time `json:"last_rotated_at,omitempty"`
	LastVersion    int        `json:"last_rotated_version,omitempty"`
	Rotations      int        `json:"rotations"`
	Failures       int        `json:"failures"`
	NextDue        *time.Time `json:"next_due,omitempty"`
	RevokeAt       *time.Time `json:"revoke_at,omitempty"`
	RevokeVersion  int        `json:"revoke_version,omitempty"`
}

// RotationStatus is a secret's effective rotation policy (secret options
// redacted), where it comes from ("secret" or "prefix:PREFIX") and its state.
type RotationStatus struct {
	Name   string          `json:"name"`
	Policy *RotationPolicy `json:"policy"`
	Source string          `json:"source"`
	State  *RotationState  `json:"state"`
}

// SetRotation sets a secret's own rotation policy. The answer shows the
// options with a webhook signing key generated or given in this call shown
// once; a key kept from before stays redacted.
func (c *Client) SetRotation(ctx context.Context, name string, p RotationPolicy) (*RotationStatus, error) {
	p.UpdatedAt, p.UpdatedBy = time.Time{}, ""
	var out RotationStatus
	return &out, c.do(ctx, "PUT", "/v1/rotation/secrets/"+name, nil, p, &out)
}

// Rotation returns a secret's rotation policy and state.
func (c *Client) Rotation(ctx context.Context, name string) (*RotationStatus, error) {
	var out RotationStatus
	return &out, c.do(ctx, "GET", "/v1/rotation/secrets/"+name, nil, nil, &out)
}

// DeleteRotation removes a secret's own rotation policy.
func (c *Client) DeleteRotation(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/rotation/secrets/"+name, nil, nil, nil)
}

// PrefixRotation is a policy for the secrets under a prefix.
type PrefixRotation struct {
	Prefix string          `json:"prefix"`
	Policy *RotationPolicy `json:"policy"`
}

// SetPrefixRotation sets the policy of every secret under prefix without one of its own.
func (c *Client) SetPrefixRotation(ctx context.Context, prefix string, p RotationPolicy) (*PrefixRotation, error) {
	p.UpdatedAt, p.UpdatedBy = time.Time{}, ""
	var out PrefixRotation
	return &out, c.do(ctx, "PUT", "/v1/rotation/prefixes/"+prefix, nil, p, &out)
}

// PrefixRotation returns the policy of a prefix.
func (c *Client) PrefixRotation(ctx context.Context, prefix string) (*PrefixRotation, error) {
	var out PrefixRotation
	return &out, c.do(ctx, "GET", "/v1/rotation/prefixes/"+prefix, nil, nil, &out)
}

// DeletePrefixRotation removes a prefix policy.
func (c *Client) DeletePrefixRotation(ctx context.Context, prefix string) error {
	return c.do(ctx, "DELETE", "/v1/rotation/prefixes/"+prefix, nil, nil, nil)
}

// RotationPrefixes lists the prefixes with a policy.
func (c *Client) RotationPrefixes(ctx context.Context) ([]string, error) {
	var out struct {
		Prefixes []string `json:"prefixes"`
	}
	return out.Prefixes, c.do(ctx, "GET", "/v1/rotation/prefixes", nil, nil, &out)
}

// RotateResult is the outcome of Rotate or CancelRotation.
type RotateResult struct {
	Name    string         `json:"name"`
	Rotated bool           `json:"rotated"`
	Version int            `json:"version,omitempty"`
	State   *RotationState `json:"state"`
}

// RotateOptions control Rotate.
type RotateOptions struct {
	// Immediate revokes the previous credential at once, without the grace window.
	Immediate bool `json:"immediate,omitempty"`
}

// Rotate rotates a secret now and waits for the outcome. A failed attempt
// is not an error: Rotated is false and State says why and when it retries.
func (c *Client) Rotate(ctx context.Context, name string, o RotateOptions) (*RotateResult, error) {
	var out RotateResult
	return &out, c.do(ctx, "POST", "/v1/rotate/"+name, nil, o, &out)
}

// CancelRotation stops the rotation in progress: it is rolled back when
// the current value still works on the target.
func (c *Client) CancelRotation(ctx context.Context, name string) (*RotateResult, error) {
	var out RotateResult
	return &out, c.do(ctx, "POST", "/v1/rotate/"+name, nil, map[string]bool{"cancel": true}, &out)
}

// EmergencyReport says what an emergency rotation rotated and what failed.
type EmergencyReport struct {
	Prefix     string   `json:"prefix"`
	ReadableBy []string `json:"readable_by,omitempty"`
	Rotated    []struct {
		Name    string `json:"name"`
		Version int    `json:"version"`
	} `json:"rotated"`
	Failed []struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	} `json:"failed"`
	Denied    int  `json:"denied"`
	Truncated bool `json:"truncated,omitempty"`
}

// EmergencyRotate rotates every secret under prefix that the token may
// rotate, revoking previous credentials at once unless keepGrace.
func (c *Client) EmergencyRotate(ctx context.Context, prefix string, keepGrace bool) (*EmergencyReport, error) {
	return c.EmergencyRotation(ctx, EmergencyInput{Prefix: prefix, KeepGrace: keepGrace})
}

// EmergencyInput chooses the secrets an emergency rotation rotates.
type EmergencyInput struct {
	Prefix string `json:"prefix"`
	// ReadableBy keeps only the secrets a token with these policies could
	// read ("everything the payments service can read"); Prefix may then
	// be empty.
	ReadableBy []string `json:"readable_by,omitempty"`
	KeepGrace  bool     `json:"keep_grace"`
}

// EmergencyRotation rotates every chosen secret the token may rotate.
func (c *Client) EmergencyRotation(ctx context.Context, in EmergencyInput) (*EmergencyReport, error) {
	var out EmergencyReport
	return &out, c.do(ctx, "POST", "/v1/rotation/emergency", nil, in, &out)
}

// RandomOptions shape a random password; the zero value is 32 characters
// from lower and upper case letters, digits and punctuation, each at least once.
type RandomOptions struct {
	Length             int
	ExcludeCharacters  string
	ExcludeLowercase   bool
	ExcludeUppercase   bool
	ExcludeNumbers     bool
	ExcludePunctuation bool
	IncludeSpace       bool
	// AnyClass drops the rule that each included class appears.
	AnyClass bool
}

// RandomPassword asks the server for a random password.
func (c *Client) RandomPassword(ctx context.Context, o RandomOptions) (string, error) {
	q := url.Values{}
	if o.Length != 0 {
		q.Set("length", strconv.Itoa(o.Length))
	}
	if o.ExcludeCharacters != "" {
		q.Set("exclude_characters", o.ExcludeCharacters)
	}
	for k, v := range map[string]bool{"exclude_lowercase": o.ExcludeLowercase, "exclude_uppercase": o.ExcludeUppercase,
		"exclude_numbers": o.ExcludeNumbers, "exclude_punctuation": o.ExcludePunctuation, "include_space": o.IncludeSpace} {
		if v {
			q.Set(k, "true")
		}
	}
	if o.AnyClass {
		q.Set("require_each_included_type", "false")
	}
	var out struct {
		Password string `json:"password"`
	}
	return out.Password, c.do(ctx, "GET", "/v1/sys/tools/random", q, nil, &out)
}
