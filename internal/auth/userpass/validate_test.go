package userpass

import (
	"errors"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/auth"
)

func TestValidateUsername(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "alice", true},
		{"email", "alice.smith@example.com", true},
		{"all classes", "a-b_c.d@0", true},
		{"longest", strings.Repeat("a", MaxUsernameLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxUsernameLen+1), false},
		{"uppercase", "Alice", false},
		{"space", "alice smith", false},
		{"slash", "a/b", false},
		{"plus", "alice+tag@example.com", false},
		{"non-ASCII", "alïce", false},
		{"NUL", "alice\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateUsername(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateUsername(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
			var ie *auth.InputError
			if err != nil && (!errors.As(err, &ie) || ie.Field != "username") {
				t.Fatalf("ValidateUsername(%q) = %v, want an InputError on username", tt.in, err)
			}
		})
	}
}

func FuzzValidateUsername(f *testing.F) {
	for _, seed := range []string{
		"alice",
		"alice@example.com",
		"",                                    // empty
		"Alice",                               // uppercase: two spellings, one person
		"a/../b",                              // path-like: usernames land in storage keys
		"alice\x00",                           // NUL
		"ａlice",                               // fullwidth a
		strings.Repeat("a", MaxUsernameLen+1), // one too long
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateUsername(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxUsernameLen {
			t.Fatalf("ValidateUsername(%q) accepted a bad length", name)
		}
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789._@-") != "" {
			t.Fatalf("ValidateUsername(%q) accepted a character outside [a-z0-9._@-]", name)
		}
	})
}
