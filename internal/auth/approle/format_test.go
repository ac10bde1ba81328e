package approle

import (
	"strings"
	"testing"
)

func TestSecretIDFormat(t *testing.T) {
	id, err := newSecretID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != SecretIDLen || !strings.HasPrefix(id, SecretIDPrefix) || CheckSecretID(id) != nil {
		t.Fatalf("newSecretID() = %q, not well-formed", id)
	}
	if other, _ := newSecretID(); other == id {
		t.Fatal("two secret_ids are equal")
	}
	body := id[len(SecretIDPrefix):]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"no prefix", body},
		{"wrong prefix", "cof_" + body},
		{"body changed", flip(id, len(SecretIDPrefix)+3)},
		{"checksum changed", flip(id, len(id)-1)},
		{"uppercase", SecretIDPrefix + strings.ToUpper(body)},
		{"truncated", id[:len(id)-1]},
		{"extended", id + "0"},
		{"token-shaped", "cof_" + strings.Repeat("A", 49)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckSecretID(tt.in); err != ErrMalformedSecretID {
				t.Fatalf("CheckSecretID(%q) = %v, want ErrMalformedSecretID", tt.in, err)
			}
		})
	}
}

func FuzzCheckSecretID(f *testing.F) {
	f.Add("cofsid_" + strings.Repeat("0", 64) + "00000000") // right shape, wrong checksum
	f.Add("cofsid_")                                        // prefix only
	f.Add("")
	f.Add("cofsid_" + strings.Repeat("g", 72)) // not hex
	if id, err := newSecretID(); err == nil {
		f.Add(id) // a real one
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckSecretID(s) != nil {
			return
		}
		body := strings.TrimPrefix(s, SecretIDPrefix)
		if len(s) != SecretIDLen || !isLowerHex(body) || secretIDChecksum(body[:secretIDBodyLen]) != body[secretIDBodyLen:] {
			t.Fatalf("CheckSecretID(%q) accepted a malformed secret_id", s)
		}
	})
}

func TestRoleIDFormat(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		id, err := newRoleID()
		if err != nil {
			t.Fatal(err)
		}
		if !uuidRE.MatchString(id) || seen[id] {
			t.Fatalf("newRoleID() = %q, want a fresh version 4 UUID", id)
		}
		seen[id] = true
	}
}
