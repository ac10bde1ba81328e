package rotation

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/adhocore/gronx"

	"github.com/coffer-dev/coffer/internal/secret"
)

// Limits of a policy.
const (
	MinInterval    = time.Minute
	MaxInterval    = 10 * 365 * 24 * time.Hour
	MaxGrace       = 30 * 24 * time.Hour
	MaxJitter      = 7 * 24 * time.Hour
	MaxAttemptsCap = 20
	// DefaultMaxAttempts is how many attempts a rotation gets before it is
	// marked failed.
	DefaultMaxAttempts = 5
	maxScheduleLen     = 128
	maxOptionsSize     = 16 << 10
)

// Policy says when and how a secret rotates. It is stored per secret, or
// per prefix for every secret under it that has no policy of its own.
type Policy struct {
	// Schedule is "every DURATION" (units s, m, h, d, w: "every 30d") or a
	// five-field cron expression ("0 3 * * mon") evaluated in UTC. Empty:
	// rotate only on demand.
	Schedule string `json:"schedule,omitempty"`
	// Grace is how long the previous credential keeps working after a
	// rotation; then the rotator revokes it and the previous stage is removed.
	Grace Duration `json:"grace,omitempty"`
	// Jitter adds a random delay in [0, Jitter) to each scheduled run so
	// that secrets on the same schedule do not rotate at the same instant.
	Jitter Duration `json:"jitter,omitempty"`
	// Rotator names the rotator: password, postgresql, mysql or webhook.
	Rotator string `json:"rotator"`
	// Options configure the rotator; each rotator decodes them strictly.
	Options json.RawMessage `json:"options,omitempty"`
	// MaxAttempts is how many failed attempts mark the rotation failed (default 5).
	MaxAttempts int `json:"max_attempts,omitempty"`

	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// Duration is a time.Duration written as a string: "90s", "1h30m", "30d", "2w".
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(FormatDuration(time.Duration(d)))
}

// MaxDuration bounds every duration ParseDuration accepts (100 years),
// far below where time.Duration would overflow.
const MaxDuration = 100 * 365 * 24 * time.Hour

// durationTypeError is what UnmarshalJSON returns for a bad duration;
// encoding/json fills in the field, and the API turns it into
// `field "grace" must be a duration like "1h" or "30d"`.
func durationTypeError() error {
	return &json.UnmarshalTypeError{Value: "a duration like \"1h\" or \"30d\"", Type: reflect.TypeFor[Duration]()}
}

// UnmarshalJSON reads a duration string (or a number of seconds). Bad
// input gives a *json.UnmarshalTypeError whose Value starts with "a duration".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil || n > int64(MaxDuration/time.Second) || n < -int64(MaxDuration/time.Second) {
			return durationTypeError()
		}
		*d = Duration(time.Duration(n) * time.Second)
		return nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return durationTypeError()
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a Go duration, extended with whole days ("30d") and
// weeks ("2w"), which may be combined with smaller units ("1d12h"). It
// refuses negative durations and durations longer than MaxDuration.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("duration %q: want forms like 30d, 2w, 1d12h or 90m, at most 100 years", s)
	}
	var total time.Duration
	rest := s
	for _, u := range []struct {
		suffix byte
		unit   time.Duration
	}{{'w', 7 * 24 * time.Hour}, {'d', 24 * time.Hour}} {
		i := strings.IndexByte(rest, u.suffix)
		if i < 0 {
			continue
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n < 0 || n > int64(MaxDuration/u.unit) {
			return bad()
		}
		total += time.Duration(n) * u.unit // each term and the sum stay below 2*MaxDuration: no overflow
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 || d > MaxDuration {
			return bad()
		}
		total += d
	}
	if total > MaxDuration {
		return bad()
	}
	return total, nil
}

// FormatDuration writes d in the shortest form ParseDuration reads back,
// with whole days and without zero units: "30d", "1d12h", "2h", "1h30m",
// "45s" (90s is "1m30s"). Everything that shows a policy's durations uses it.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	const day = 24 * time.Hour
	var b strings.Builder
	b.WriteString(sign)
	if n := d / day; n > 0 {
		b.WriteString(strconv.FormatInt(int64(n), 10) + "d")
		d -= n * day
	}
	if d == 0 {
		return b.String()
	}
	if d%time.Second != 0 {
		b.WriteString(d.String()) // sub-second: Go's form ("1.5s", "200ms")
		return b.String()
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}

// Schedule is a parsed Policy.Schedule.
type Schedule struct {
	every time.Duration // > 0 for "every"
	cron  string        // else a cron expression
}

// ParseSchedule parses "every 30d", "30d" or a five-field cron expression.
// The empty string gives the zero Schedule: never due.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Schedule{}, nil
	}
	if len(s) > maxScheduleLen {
		return Schedule{}, invalid("schedule", "is longer than %d characters", maxScheduleLen)
	}
	if rest, ok := strings.CutPrefix(s, "every "); ok || !strings.ContainsAny(s, " *@") {
		d, err := ParseDuration(rest)
		if err != nil {
			return Schedule{}, invalid("schedule", "%v", err)
		}
		if d < MinInterval || d > MaxInterval {
			return Schedule{}, invalid("schedule", "the interval must be between 1m and 10 years")
		}
		return Schedule{every: d}, nil
	}
	n := len(strings.Fields(s))
	if n == 5 {
		if msg := cronRangeError(s); msg != "" {
			return Schedule{}, invalid("schedule", "%s", msg)
		}
	}
	if (n != 5 && !strings.HasPrefix(s, "@")) || !gronx.IsValid(s) {
		return Schedule{}, invalid("schedule", "want \"every 30d\" or a five-field cron expression (minute hour day-of-month month day-of-week) such as \"0 3 * * mon\"")
	}
	if _, err := gronx.NextTickAfter(s, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), false); err != nil {
		return Schedule{}, invalid("schedule", "the cron expression never fires")
	}
	return Schedule{cron: strings.Join(strings.Fields(s), " ")}, nil
}

// cronFields are the fields of a five-field cron expression and their ranges.
var cronFields = [5]struct {
	name     string
	min, max int
}{{"minute", 0, 59}, {"hour", 0, 23}, {"day-of-month", 1, 31}, {"month", 1, 12}, {"day-of-week", 0, 7}}

// cronRangeError names the first field of a five-field cron expression
// holding a number out of its range ("61 * * * *"), or returns "". Other
// mistakes are left to gronx, which only says whether an expression is valid.
func cronRangeError(s string) string {
	for i, f := range strings.Fields(s) {
		cf := cronFields[i]
		for item := range strings.SplitSeq(f, ",") {
			item, _, _ = strings.Cut(item, "/") // the step is a count, not a value
			for v := range strings.SplitSeq(item, "-") {
				n, err := strconv.Atoi(v)
				if err != nil {
					continue // *, names (mon, jan), L, W, #: gronx checks them
				}
				if n < cf.min || n > cf.max {
					return fmt.Sprintf("the %s field (field %d of %q) is %d; it must be between %d and %d", cf.name, i+1, s, n, cf.min, cf.max)
				}
			}
		}
	}
	return ""
}

// IsZero reports whether the schedule never fires (on-demand rotation only).
func (s Schedule) IsZero() bool { return s.every == 0 && s.cron == "" }

// Next returns the first run strictly after t (zero time for the zero Schedule).
func (s Schedule) Next(t time.Time) time.Time {
	switch {
	case s.every > 0:
		return t.Add(s.every)
	case s.cron != "":
		n, err := gronx.NextTickAfter(s.cron, t.UTC().Truncate(time.Second), false)
		if err != nil {
			return time.Time{}
		}
		if !n.After(t) {
			n = n.Add(time.Minute)
		}
		return n.UTC()
	}
	return time.Time{}
}

// minGap returns the shortest time between two runs, estimated for cron
// from the next few runs after t.
func (s Schedule) minGap(t time.Time) time.Duration {
	if s.every > 0 {
		return s.every
	}
	if s.cron == "" {
		return 0
	}
	gap := time.Duration(0)
	prev := s.Next(t)
	for range 8 {
		n := s.Next(prev)
		if n.IsZero() {
			break
		}
		if g := n.Sub(prev); gap == 0 || g < gap {
			gap = g
		}
		prev = n
	}
	return gap
}

func invalid(field, format string, args ...any) error {
	return &secret.ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// validate checks the policy's own fields; the rotator checks Options.
func (p *Policy) validate(now time.Time) (Schedule, error) {
	sch, err := ParseSchedule(p.Schedule)
	if err != nil {
		return sch, err
	}
	if p.Rotator == "" {
		return sch, invalid("rotator", "is required: password, postgresql, mysql or webhook")
	}
	if p.Grace < 0 || time.Duration(p.Grace) > MaxGrace {
		return sch, invalid("grace", "must be between 0 and 30d")
	}
	if p.Jitter < 0 || time.Duration(p.Jitter) > MaxJitter {
		return sch, invalid("jitter", "must be between 0 and 7d")
	}
	if p.MaxAttempts < 0 || p.MaxAttempts > MaxAttemptsCap {
		return sch, invalid("max_attempts", "must be between 1 and %d", MaxAttemptsCap)
	}
	if len(p.Options) > maxOptionsSize {
		return sch, invalid("options", "are larger than %d bytes", maxOptionsSize)
	}
	if gap := sch.minGap(now); gap > 0 {
		if time.Duration(p.Grace) >= gap {
			return sch, invalid("grace", "must be shorter than the time between rotations (%s)", FormatDuration(gap))
		}
		if time.Duration(p.Jitter) >= gap {
			return sch, invalid("jitter", "must be shorter than the time between rotations (%s)", FormatDuration(gap))
		}
	}
	return sch, nil
}

func (p *Policy) maxAttempts() int {
	if p.MaxAttempts == 0 {
		return DefaultMaxAttempts
	}
	return p.MaxAttempts
}
