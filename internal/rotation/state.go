package rotation

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-dev/coffer/internal/storage"
)

// Storage layout, below the barrier.
const (
	policyPrefix = "rotation/policy/" // + secret name -> Policy
	prefixPrefix = "rotation/prefix/" // + prefix -> Policy for secrets under it
	statePrefix  = "rotation/state/"  // + secret name -> State
	// nextPrefix indexes states by the time something is next due:
	// rotation/next/<20-digit unix nanoseconds>/<name> -> empty. Due work
	// is the keys that sort before now, found without a scan.
	nextPrefix = "rotation/next/"
)

// Status values of a State.
const (
	StatusScheduled = "scheduled" // idle; rotates at NextDue (or on demand)
	StatusRotating  = "rotating"  // a rotation is running (or its runner died: resumed when its lease ends)
	StatusRetrying  = "retrying"  // an attempt failed; the next one runs at RetryAt
	StatusFailed    = "failed"    // MaxAttempts failed; current was kept (or, if it no longer worked, completed)
)

// Steps of a rotation, in order. State.Step is the next step to run; it is
// made durable before that step touches anything outside Coffer.
const (
	StepCreate  = "create"
	StepSet     = "set"
	StepTest    = "test"
	StepFinish  = "finish"
	StepPromote = "promote"
)

var nextStep = map[string]string{StepCreate: StepSet, StepSet: StepTest, StepTest: StepFinish, StepFinish: StepPromote, StepPromote: ""}

// State is the persisted rotation state of one secret. Times are UTC.
type State struct {
	Name    string `json:"name"`
	Source  string `json:"source"` // "secret", or "prefix:<prefix>" when a prefix policy applies
	Rotator string `json:"rotator"`
	Status  string `json:"status"`

	// The rotation in flight (Step != "").
	Step           string     `json:"step,omitempty"`
	RotationID     string     `json:"rotation_id,omitempty"`
	Trigger        string     `json:"trigger,omitempty"` // scheduled, manual, emergency, recovery
	Immediate      bool       `json:"immediate,omitempty"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	FromVersion    int        `json:"from_version,omitempty"`
	PendingVersion int        `json:"pending_version,omitempty"`
	Attempt        int        `json:"attempt,omitempty"` // failed attempts of this rotation
	RetryAt        *time.Time `json:"retry_at,omitempty"`
	Cancel         bool       `json:"cancel_requested,omitempty"`

	LastError     string     `json:"last_error,omitempty"`
	LastErrorAt   *time.Time `json:"last_error_at,omitempty"`
	LastRotatedAt *time.Time `json:"last_rotated_at,omitempty"`
	LastVersion   int        `json:"last_rotated_version,omitempty"`
	Rotations     int        `json:"rotations"`
	Failures      int        `json:"failures"`

	NextDue       *time.Time `json:"next_due,omitempty"`
	RevokeAt      *time.Time `json:"revoke_at,omitempty"` // end of the grace window of RevokeVersion
	RevokeVersion int        `json:"revoke_version,omitempty"`

	// The lease of the runner working on the secret: whoever holds an
	// unexpired lease is the only one who may change the rotation.
	LeaseOwner string     `json:"lease_owner,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`

	// NextAt is when anything is next due (the index key); zero: nothing.
	NextAt time.Time `json:"next_at"`
}

func (st *State) inFlight() bool { return st.Step != "" }

// leasedBy reports whether someone other than owner holds an unexpired lease.
func (st *State) leasedByOther(owner string, now time.Time) bool {
	return st.LeaseOwner != "" && st.LeaseOwner != owner && st.LeaseUntil != nil && st.LeaseUntil.After(now)
}

// computeNextAt sets NextAt to the earliest time something is due: the
// lease's end while leased (so a dead runner's work is picked up), else
// the earliest of the retry, the revocation and the next scheduled run.
func (st *State) computeNextAt() {
	st.NextAt = time.Time{}
	if st.LeaseOwner != "" && st.LeaseUntil != nil {
		st.NextAt = *st.LeaseUntil
		return
	}
	due := []*time.Time{st.RetryAt, st.RevokeAt, st.NextDue}
	if st.inFlight() {
		// The rotation in flight comes before the next scheduled one.
		due = due[:2]
		if st.RetryAt == nil {
			// No runner and no retry time (left by a crash): due at once.
			st.NextAt = time.Unix(0, 0).UTC()
			return
		}
	}
	for _, t := range due {
		if t != nil && (st.NextAt.IsZero() || t.Before(st.NextAt)) {
			st.NextAt = *t
		}
	}
}

func nextKey(t time.Time, name string) string {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return fmt.Sprintf("%s%020d/%s", nextPrefix, n, name)
}

// parseNextKey splits an index key into its time and name.
func parseNextKey(k string) (time.Time, string, bool) {
	rest, ok := strings.CutPrefix(k, nextPrefix)
	if !ok {
		return time.Time{}, "", false
	}
	ts, name, ok := strings.Cut(rest, "/")
	if !ok {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(0, n).UTC(), name, true
}

func readState(tx storage.Tx, name string) (*State, error) {
	raw, err := tx.Get(statePrefix + name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode rotation state of %s: %w", name, err)
	}
	return &st, nil
}

// writeState stores st and moves its index entry from old (the NextAt it
// had when read; zero if none) to its new NextAt.
func writeState(tx storage.Tx, st *State, old time.Time) error {
	st.computeNextAt()
	if !old.IsZero() && !old.Equal(st.NextAt) {
		if err := tx.Delete(nextKey(old, st.Name)); err != nil {
			return err
		}
	}
	if !st.NextAt.IsZero() {
		if err := tx.Put(nextKey(st.NextAt, st.Name), []byte{}); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return tx.Put(statePrefix+st.Name, raw)
}

func deleteState(tx storage.Tx, st *State) error {
	if !st.NextAt.IsZero() {
		if err := tx.Delete(nextKey(st.NextAt, st.Name)); err != nil {
			return err
		}
	}
	return tx.Delete(statePrefix + st.Name)
}

func tp(t time.Time) *time.Time { return &t }
