package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Condition restricts when a rule applies. Every field that is set must
// hold; the zero Condition always holds.
type Condition struct {
	// SourceCIDRs, when not empty, requires Request.Source to lie in one
	// of the prefixes. An unknown (zero) source never does.
	SourceCIDRs []netip.Prefix
	// Days, when not empty, requires Request.Time to fall on one of the
	// days, in Timezone.
	Days []time.Weekday
	// Hours, when not empty, is a window "HH:MM-HH:MM" in Timezone that
	// Request.Time must fall in. The start is inclusive and the end
	// exclusive; an end before the start wraps past midnight, so
	// "22:00-06:00" holds from 22:00 to 05:59. Days and Hours are checked
	// separately against the same local time: Saturday 01:00 is in the
	// window "22:00-02:00" but not on day "fri".
	Hours string
	// Timezone is the IANA zone name Days and Hours are read in; "" means
	// UTC.
	Timezone string
	// RequireMFA requires Request.MFA.
	RequireMFA bool
}

// Names of failing conditions, as used in Decision.Reason and
// Match.FailedConditions.
const (
	CondSource = "source address"
	CondDay    = "day"
	CondHours  = "hours"
	CondMFA    = "mfa"
)

// condFail is a set of failing conditions, one bit each, in report order.
type condFail uint8

const (
	failSource condFail = 1 << iota
	failDay
	failHours
	failMFA
)

// names lists the failing conditions in report order.
func (f condFail) names() []string {
	var out []string
	if f&failSource != 0 {
		out = append(out, CondSource)
	}
	if f&failDay != 0 {
		out = append(out, CondDay)
	}
	if f&failHours != 0 {
		out = append(out, CondHours)
	}
	if f&failMFA != 0 {
		out = append(out, CondMFA)
	}
	return out
}

// reason returns the Decision.Reason for a grant that f blocked. The
// strings are constants so that Evaluate does not allocate.
func (f condFail) reason() string {
	switch {
	case f&failSource != 0:
		return "condition not met: " + CondSource
	case f&failDay != 0:
		return "condition not met: " + CondDay
	case f&failHours != 0:
		return "condition not met: " + CondHours
	}
	return ReasonMFARequired
}

// cond is a compiled Condition.
type cond struct {
	prefixes   []netip.Prefix // masked; empty: any source
	days       uint8          // bit per time.Weekday; 0: any day
	hours      bool
	start, end int // minutes since midnight, when hours
	loc        *time.Location
	mfa        bool
}

// check returns the conditions that r fails; 0 means c holds. It does not
// allocate.
func (c *cond) check(r *Request) condFail {
	var f condFail
	if len(c.prefixes) > 0 {
		f |= failSource
		if r.Source.IsValid() {
			src := r.Source.Unmap().WithZone("")
			for _, p := range c.prefixes {
				if p.Contains(src) {
					f &^= failSource
					break
				}
			}
		}
	}
	if c.days != 0 || c.hours {
		if r.Time.IsZero() {
			if c.days != 0 {
				f |= failDay
			}
			if c.hours {
				f |= failHours
			}
		} else {
			t := r.Time.In(c.loc)
			if c.days != 0 && c.days&(1<<uint(t.Weekday())) == 0 {
				f |= failDay
			}
			if c.hours {
				h, m, _ := t.Clock()
				now := h*60 + m
				var in bool
				if c.start < c.end {
					in = c.start <= now && now < c.end
				} else {
					in = now >= c.start || now < c.end
				}
				if !in {
					f |= failHours
				}
			}
		}
	}
	if c.mfa && !r.MFA {
		f |= failMFA
	}
	return f
}

// zoneCache memoizes time.LoadLocation for the duration of one Parse or
// Compile call; it is never shared between calls.
type zoneCache map[string]*time.Location

// compileCondition validates c and compiles it. Its errors are phrases
// meant to follow "condition: ".
func compileCondition(c *Condition, zones zoneCache) (*cond, error) {
	out := &cond{mfa: c.RequireMFA, loc: time.UTC}
	for _, p := range c.SourceCIDRs {
		if !p.IsValid() {
			return nil, fmt.Errorf("source_cidrs has an invalid prefix")
		}
		out.prefixes = append(out.prefixes, p.Masked())
	}
	for _, d := range c.Days {
		if d < time.Sunday || d > time.Saturday {
			return nil, fmt.Errorf("days has an invalid weekday %d", d)
		}
		bit := uint8(1) << uint(d)
		if out.days&bit != 0 {
			return nil, fmt.Errorf("days lists %q twice", dayName(d))
		}
		out.days |= bit
	}
	if c.Hours != "" {
		start, end, err := parseHours(c.Hours)
		if err != nil {
			return nil, fmt.Errorf("hours %v", err)
		}
		out.hours, out.start, out.end = true, start, end
	}
	if c.Timezone != "" {
		loc, err := loadZone(c.Timezone, zones)
		if err != nil {
			return nil, fmt.Errorf("timezone %v", err)
		}
		out.loc = loc
	}
	return out, nil
}

func loadZone(name string, zones zoneCache) (*time.Location, error) {
	if loc, ok := zones[name]; ok {
		return loc, nil
	}
	// "Local" depends on the server's configuration; policies must mean
	// the same thing everywhere.
	if name == "Local" || len(name) > 128 || strings.ContainsAny(name, "\\\x00") {
		return nil, fmt.Errorf("%s is not an IANA zone name", quote(name))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%s is not a known IANA zone name", quote(name))
	}
	zones[name] = loc
	return loc, nil
}

// dayAbbrevs holds the three-letter day names in time.Weekday order.
const dayAbbrevs = "sunmontuewedthufrisat"

// dayName returns the policy spelling of d, which must be valid.
func dayName(d time.Weekday) string { return dayAbbrevs[3*d : 3*d+3] }

func parseDay(s string) (time.Weekday, bool) {
	if len(s) != 3 {
		return 0, false
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		if dayName(d) == s {
			return d, true
		}
	}
	return 0, false
}

// parseHours parses "HH:MM-HH:MM" into minutes since midnight.
func parseHours(s string) (start, end int, err error) {
	bad := fmt.Errorf("%s is not a window HH:MM-HH:MM", quote(s))
	if len(s) != 11 || s[5] != '-' {
		return 0, 0, bad
	}
	var ok bool
	if start, ok = parseClock(s[:5]); !ok {
		return 0, 0, bad
	}
	if end, ok = parseClock(s[6:]); !ok {
		return 0, 0, bad
	}
	if start == end {
		return 0, 0, fmt.Errorf("%s is an empty window; omit hours to allow any time", quote(s))
	}
	return start, end, nil
}

func parseClock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}
