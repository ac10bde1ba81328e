package userpass

import (
	"strings"
	"testing"
)

func TestHashAndVerify(t *testing.T) {
	p := testArgon2().withDefaults()
	h, err := hashPassword(p, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hashPassword = %q, want a PHC argon2id string with the parameters", h)
	}
	if h2, _ := hashPassword(p, testPassword); h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	other := p
	other.Time = 3
	tests := []struct {
		name      string
		password  string
		current   Argon2Params
		wantOK    bool
		wantStale bool
	}{
		{"right password", testPassword, p, true, false},
		{"wrong password", testPassword + "x", p, false, false},
		{"empty password", "", p, false, false},
		{"parameters changed", testPassword, other, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, stale, err := verifyPassword(h, tt.password, tt.current)
			if err != nil || ok != tt.wantOK || stale != tt.wantStale {
				t.Fatalf("verifyPassword(%q) = %v, %v, %v, want %v, %v", tt.password, ok, stale, err, tt.wantOK, tt.wantStale)
			}
		})
	}
}

// A hash of "password" with m=64,t=1,p=1, salt "saltsaltsaltsalt".
const knownHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$Wb9DOLKUgwlL5fjad9tfCPU0SBAo0PEY/evJRhwtUR0"

func TestParseHash(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"canonical", knownHash, true},
		{"empty", "", false},
		{"argon2i", strings.Replace(knownHash, "argon2id", "argon2i", 1), false},
		{"old version", strings.Replace(knownHash, "v=19", "v=16", 1), false},
		{"no version", strings.Replace(knownHash, "v=19$", "", 1), false},
		{"leading zero", strings.Replace(knownHash, "m=64", "m=064", 1), false},
		{"parameters reordered", strings.Replace(knownHash, "m=64,t=1", "t=1,m=64", 1), false},
		{"extra parameter", strings.Replace(knownHash, "p=1", "p=1,k=2", 1), false},
		{"zero time", strings.Replace(knownHash, "t=1", "t=0", 1), false},
		{"zero lanes", strings.Replace(knownHash, "p=1", "p=0", 1), false},
		{"256 lanes", strings.Replace(knownHash, "p=1", "p=256", 1), false},
		{"memory below lanes", strings.Replace(knownHash, "m=64,t=1,p=1", "m=64,t=1,p=9", 1), false},
		{"huge memory", strings.Replace(knownHash, "m=64", "m=4294967295", 1), false},
		{"huge time", strings.Replace(knownHash, "t=1", "t=1000000", 1), false},
		{"negative", strings.Replace(knownHash, "t=1", "t=-1", 1), false},
		{"padded base64", knownHash + "=", false},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$Wb9DOLKUgwlL5fjad9tfCPU0SBAo0PEY/evJRhwtUR0", false},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$Wb9DOLKU", false},
		{"trailing field", knownHash + "$", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseHash(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("parseHash(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "c2Fsd") {
				t.Errorf("parseHash error %q quotes the hash", err)
			}
			if tt.ok && h.String() != tt.in {
				t.Errorf("parseHash(%q).String() = %q", tt.in, h.String())
			}
		})
	}
	if ok, _, err := verifyPassword(knownHash, "password", testArgon2().withDefaults()); err != nil || !ok {
		t.Fatalf("verifyPassword(knownHash, password) = %v, %v: the PHC encoding drifted from argon2id's", ok, err)
	}
}

func FuzzParseHash(f *testing.F) {
	for _, seed := range []string{
		knownHash,
		"",
		"$argon2id$v=19$",
		"$argon2id$v=19$m=,t=,p=$$",
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",                                                      // key too short
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$c2FsdHNhbHRzYWx0c2FsdA$Wb9DOLKUgwlL5fjad9tfCPU0SBAo0PEY/evJRhwtUR0", // out of bounds
		"$argon2id$v=19$m=64,t=1,p=1,m=64$c2FsdHNhbHRzYWx0c2FsdA$Wb9DOLKUgwlL5fjad9tfCPU0SBAo0PEY/evJRhwtUR0",               // repeated field
		"$2b$12$abcdefghijklmnopqrstuu", // bcrypt
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHash(s)
		if err != nil {
			return
		}
		if h.String() != s {
			t.Fatalf("parseHash(%q) accepted a non-canonical form of %q", s, h.String())
		}
		if h.params.Validate() != nil || h.params.Time == 0 || h.params.Memory == 0 || h.params.Threads == 0 {
			t.Fatalf("parseHash(%q) accepted out-of-bounds parameters %+v", s, h.params)
		}
	})
}
