// Package password generates random passwords from a policy: a length,
// character classes that may be excluded, characters to leave out, and
// whether each included class must appear. It is the generator behind the
// password rotator, the database rotators and GET /v1/sys/tools/random,
// modelled on AWS Secrets Manager's GetRandomPassword.
package password

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// Character classes, as AWS GetRandomPassword defines them.
const (
	Lower       = "abcdefghijklmnopqrstuvwxyz"
	Upper       = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	Digits      = "0123456789"
	Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)

// Limits and defaults of a Policy.
const (
	DefaultLength = 32
	MaxLength     = 4096
)

// Policy describes the passwords to generate. The zero value means 32
// characters from all four classes, each class at least once.
type Policy struct {
	Length             int    `json:"length,omitempty"`
	ExcludeCharacters  string `json:"exclude_characters,omitempty"`
	ExcludeLowercase   bool   `json:"exclude_lowercase,omitempty"`
	ExcludeUppercase   bool   `json:"exclude_uppercase,omitempty"`
	ExcludeNumbers     bool   `json:"exclude_numbers,omitempty"`
	ExcludePunctuation bool   `json:"exclude_punctuation,omitempty"`
	IncludeSpace       bool   `json:"include_space,omitempty"`
	// AnyClass drops the rule that every included class appears at least once.
	AnyClass bool `json:"any_class,omitempty"`
}

// Error is a policy that cannot produce a password. Field names the
// offending policy field.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

// compiled is a validated policy: the whole alphabet and the classes that
// must each appear.
type compiled struct {
	length   int
	alphabet string
	required []string
}

func (p Policy) compile() (*compiled, error) {
	n := p.Length
	if n == 0 {
		n = DefaultLength
	}
	if n < 1 || n > MaxLength {
		return nil, &Error{"length", fmt.Sprintf("must be between 1 and %d", MaxLength)}
	}
	if len(p.ExcludeCharacters) > MaxLength {
		return nil, &Error{"exclude_characters", fmt.Sprintf("is longer than %d characters", MaxLength)}
	}
	keep := func(set string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(p.ExcludeCharacters, r) {
				return -1
			}
			return r
		}, set)
	}
	c := &compiled{length: n}
	for _, cl := range []struct {
		set      string
		excluded bool
	}{{Lower, p.ExcludeLowercase}, {Upper, p.ExcludeUppercase}, {Digits, p.ExcludeNumbers}, {Punctuation, p.ExcludePunctuation}} {
		if s := keep(cl.set); !cl.excluded && s != "" {
			c.required = append(c.required, s)
			c.alphabet += s
		}
	}
	if p.IncludeSpace {
		c.alphabet += keep(" ")
	}
	if c.alphabet == "" {
		return nil, &Error{"exclude_characters", "every character is excluded; allow at least one character class"}
	}
	if p.AnyClass {
		c.required = nil
	}
	if n < len(c.required) {
		return nil, &Error{"length", fmt.Sprintf("%d is too short to include each of the %d included character classes", n, len(c.required))}
	}
	return c, nil
}

// Validate reports whether p can produce passwords.
func (p Policy) Validate() error {
	_, err := p.compile()
	return err
}

// Generate returns a new password from crypto/rand: every character drawn
// uniformly from the allowed alphabet, redrawn until each required class
// appears.
func (p Policy) Generate() (string, error) {
	c, err := p.compile()
	if err != nil {
		return "", err
	}
	r := &rng{off: len(rng{}.buf)}
	pw := make([]byte, c.length)
	// Rejection sampling keeps every acceptable password equally likely;
	// it almost always succeeds at once unless the password is very short.
	for range 100 {
		for i := range pw {
			pw[i] = c.alphabet[r.intn(len(c.alphabet))]
		}
		if hasEach(pw, c.required) {
			return string(pw), nil
		}
	}
	// Put one character of each class at distinct random positions: a
	// random permutation's first len(required) slots.
	perm := make([]int, len(pw))
	for i := range perm {
		perm[i] = i
	}
	for i := len(perm) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	for k, set := range c.required {
		pw[perm[k]] = set[r.intn(len(set))]
	}
	return string(pw), nil
}

func hasEach(pw []byte, classes []string) bool {
	for _, c := range classes {
		if !strings.ContainsAny(string(pw), c) {
			return false
		}
	}
	return true
}

// rng draws uniform integers from crypto/rand.
type rng struct {
	buf [256]byte
	off int
}

func (r *rng) byte() int {
	if r.off == len(r.buf) {
		_, _ = rand.Read(r.buf[:]) // crypto/rand.Read never fails
		r.off = 0
	}
	b := r.buf[r.off]
	r.off++
	return int(b)
}

// intn returns a uniform integer in [0, n) for 1 <= n <= 65536, rejecting
// draws past the largest multiple of n so that no value is favoured.
func (r *rng) intn(n int) int {
	if n <= 256 {
		limit := 256 - 256%n
		for {
			if b := r.byte(); b < limit {
				return b % n
			}
		}
	}
	limit := 65536 - 65536%n
	for {
		if v := r.byte()<<8 | r.byte(); v < limit {
			return v % n
		}
	}
}
