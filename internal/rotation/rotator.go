package rotation

import (
	"context"
	"encoding/json"
	"time"

	"github.com/coffer-dev/coffer/internal/secret"
)

// Rotator changes a credential on its target system. A rotation runs
// Create, Set, Test and Finish in that order, then Coffer promotes the
// pending version to current; after the grace window, Revoke invalidates
// the previous credential.
//
// Every step may be called again for the same job (after an error or a
// crash) and must be idempotent: Set in particular must succeed when the
// target already accepts the pending value. Only Create may return the new
// value; Set, Test, Finish and Revoke must not change the secret store.
// Errors must not carry secret values.
type Rotator interface {
	// Check validates options for a policy and returns them normalised
	// (for example with generated keys filled in). old holds the options
	// the policy had before, or nil.
	Check(opts, old json.RawMessage, p PolicyInfo) (json.RawMessage, error)
	// Create returns the new value to store as pending and its type
	// (secret.TypeText or secret.TypeJSON).
	Create(ctx context.Context, j *Job) ([]byte, string, error)
	// Set makes the target accept j.Pending.
	Set(ctx context.Context, j *Job) error
	// Test proves that v works on the target, for example by logging in
	// with it. It is called with j.Pending before promotion, and with
	// j.Current when deciding whether a failed rotation can be rolled back.
	Test(ctx context.Context, j *Job, v *secret.Value) error
	// Finish tells the target that the pending value is about to become current.
	Finish(ctx context.Context, j *Job) error
	// Revoke invalidates j.Previous after the grace window.
	Revoke(ctx context.Context, j *Job) error
}

// Redactor is implemented by rotators whose options hold secrets (a
// webhook signing key); Redact returns options safe to show.
type Redactor interface {
	Redact(opts json.RawMessage) json.RawMessage
}

// Referencer is implemented by rotators whose options name other secrets
// they read (an administrator credential); whoever sets the policy must
// be allowed to read them.
type Referencer interface {
	References(opts json.RawMessage) []string
}

// Discloser is implemented by rotators that send the secret's values
// (current and pending) to a system the policy names and Coffer does not
// control, such as a webhook endpoint; whoever sets such a policy must be
// allowed to read the secret.
type Discloser interface {
	DisclosesValues() bool
}

// PolicyInfo is what a rotator may need to know of the policy it checks.
type PolicyInfo struct {
	Name  string // the secret name, or the prefix for a prefix policy
	Grace time.Duration
}

// Job is one rotation of one secret, handed to each step.
type Job struct {
	Name       string
	RotationID string // stable across retries and restarts of this rotation; an idempotency token
	Options    json.RawMessage

	Current  *secret.Value // the value current when the rotation began; nil if none
	Pending  *secret.Value // set after Create
	Previous *secret.Value // for Revoke: the version whose grace ended

	// Lookup reads the current value of another secret (for example an
	// administrator credential named in the options).
	Lookup func(ctx context.Context, name string) (*secret.Value, error)
	Now    func() time.Time
}
