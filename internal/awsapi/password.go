package awsapi

import (
	"crypto/rand"
	"strings"
)

// Character classes of GetRandomPassword, as AWS defines them.
const (
	lowerChars       = "abcdefghijklmnopqrstuvwxyz"
	upperChars       = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars       = "0123456789"
	punctuationChars = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	maxPasswordLen   = 4096
)

type randomPasswordIn struct {
	ExcludeCharacters       *string `json:"ExcludeCharacters"`
	ExcludeLowercase        *bool   `json:"ExcludeLowercase"`
	ExcludeNumbers          *bool   `json:"ExcludeNumbers"`
	ExcludePunctuation      *bool   `json:"ExcludePunctuation"`
	ExcludeUppercase        *bool   `json:"ExcludeUppercase"`
	IncludeSpace            *bool   `json:"IncludeSpace"`
	PasswordLength          *int64  `json:"PasswordLength"`
	RequireEachIncludedType *bool   `json:"RequireEachIncludedType"`
}

type randomPasswordOut struct {
	RandomPassword string `json:"RandomPassword"`
}

func flag(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// getRandomPassword generates a password from crypto/rand. Every character
// is drawn uniformly from the allowed set (rejection sampling, no modulo
// bias); with RequireEachIncludedType, passwords missing a class are drawn
// again, which keeps the result uniform over the passwords that qualify.
func (a *API) getRandomPassword(_ *call, in *randomPasswordIn, _ string) (any, error) {
	length := int64(32)
	if in.PasswordLength != nil {
		length = *in.PasswordLength
	}
	if length < 1 || length > maxPasswordLen {
		return nil, invalidParameter("PasswordLength must be between 1 and %d", maxPasswordLen)
	}
	exclude := ""
	if in.ExcludeCharacters != nil {
		exclude = *in.ExcludeCharacters
		if len(exclude) > maxPasswordLen {
			return nil, invalidParameter("ExcludeCharacters is longer than %d characters", maxPasswordLen)
		}
	}
	keep := func(set string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(exclude, r) {
				return -1
			}
			return r
		}, set)
	}
	var classes []string
	for _, c := range []struct {
		set      string
		excluded bool
	}{
		{lowerChars, flag(in.ExcludeLowercase, false)},
		{upperChars, flag(in.ExcludeUppercase, false)},
		{digitChars, flag(in.ExcludeNumbers, false)},
		{punctuationChars, flag(in.ExcludePunctuation, false)},
	} {
		if s := keep(c.set); !c.excluded && s != "" {
			classes = append(classes, s)
		}
	}
	alphabet := strings.Join(classes, "")
	if flag(in.IncludeSpace, false) {
		alphabet += keep(" ")
	}
	if alphabet == "" {
		return nil, invalidParameter("every character is excluded; allow at least one character class")
	}
	required := classes
	if !flag(in.RequireEachIncludedType, true) {
		required = nil
	}
	if int(length) < len(required) {
		return nil, invalidParameter("PasswordLength %d is too short to include each of the %d included character types", length, len(required))
	}
	return &randomPasswordOut{RandomPassword: randomPassword(newRNG(), alphabet, required, int(length))}, nil
}

// randomPassword draws n characters from alphabet until the password holds
// a character of every required class; after many misses (possible only
// with tiny classes and short passwords) it places one character of each
// class and shuffles.
func randomPassword(r *rng, alphabet string, required []string, n int) string {
	pw := make([]byte, n)
	for range 1000 {
		for i := range pw {
			pw[i] = alphabet[r.intn(len(alphabet))]
		}
		if hasEach(pw, required) {
			return string(pw)
		}
	}
	for i := range pw {
		if i < len(required) {
			pw[i] = required[i][r.intn(len(required[i]))]
		} else {
			pw[i] = alphabet[r.intn(len(alphabet))]
		}
	}
	for i := len(pw) - 1; i > 0; i-- { // Fisher-Yates
		j := r.intn(i + 1)
		pw[i], pw[j] = pw[j], pw[i]
	}
	return string(pw)
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
	buf [512]byte
	off int
}

func newRNG() *rng { return &rng{off: 512} }

func (r *rng) byte() int {
	if r.off == len(r.buf) {
		rand.Read(r.buf[:])
		r.off = 0
	}
	b := r.buf[r.off]
	r.off++
	return int(b)
}

// intn returns a uniform integer in [0, n) for 1 <= n <= 65536, rejecting
// draws past the largest multiple of n so that no value is favored.
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
