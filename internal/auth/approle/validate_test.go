package approle

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestValidateRoleName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "payments", true},
		{"all classes", "web_api-2", true},
		{"longest", strings.Repeat("r", MaxRoleNameLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("r", MaxRoleNameLen+1), false},
		{"uppercase", "Payments", false},
		{"slash", "a/b", false},
		{"dot", "a.b", false},
		{"space", "a b", false},
		{"non-ASCII", "rôle", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateRoleName(tt.in); (err == nil) != tt.ok {
				t.Fatalf("ValidateRoleName(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
		})
	}
}

func FuzzValidateRoleName(f *testing.F) {
	for _, seed := range []string{
		"payments",
		"",                                    // empty
		"a/b",                                 // a slash would break the role/secret key split
		"..",                                  // path-like
		"ROLE",                                // uppercase
		"role\x00",                            // NUL
		strings.Repeat("r", MaxRoleNameLen+1), // one too long
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateRoleName(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxRoleNameLen {
			t.Fatalf("ValidateRoleName(%q) accepted a bad length", name)
		}
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			t.Fatalf("ValidateRoleName(%q) accepted a character outside [a-z0-9_-]", name)
		}
	})
}

func TestParseCIDRs(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string // nil: an error
	}{
		{"none", []string{}, []string{}},
		{"canonical", []string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{"host bits cleared", []string{"10.1.2.3/8"}, []string{"10.0.0.0/8"}},
		{"bare IPv4", []string{"192.0.2.1"}, []string{"192.0.2.1/32"}},
		{"bare IPv6", []string{"2001:DB8:0::1"}, []string{"2001:db8::1/128"}},
		{"IPv6 block", []string{"2001:db8:0:0::/32"}, []string{"2001:db8::/32"}},
		{"everything", []string{"0.0.0.0/0", "::/0"}, []string{"0.0.0.0/0", "::/0"}},
		{"prefix too long", []string{"10.0.0.0/33"}, nil},
		{"negative prefix", []string{"10.0.0.0/-1"}, nil},
		{"hostname", []string{"example.com"}, nil},
		{"empty string", []string{""}, nil},
		{"zone", []string{"fe80::1%eth0"}, nil},
		{"zone in block", []string{"fe80::1%eth0/64"}, nil},
		{"IPv4-mapped", []string{"::ffff:10.0.0.1"}, nil},
		{"leading zeros", []string{"010.0.0.0/8"}, nil},
		{"too many", slices.Repeat([]string{"10.0.0.0/8"}, MaxCIDRs+1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := ParseCIDRs("cidrs", tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParseCIDRs(%q) = %v, want an error", tt.in, ps)
				}
				return
			}
			if got := cidrStrings(ps); err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseCIDRs(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	p := func(ss ...string) []netip.Prefix {
		ps, err := ParseCIDRs("test", ss)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	tests := []struct {
		name         string
		outer, inner []netip.Prefix
		want         bool
	}{
		{"no outer", nil, p("1.2.3.0/24"), true},
		{"no inner", p("10.0.0.0/8"), nil, true},
		{"equal", p("10.0.0.0/8"), p("10.0.0.0/8"), true},
		{"narrower", p("10.0.0.0/8"), p("10.9.0.0/16"), true},
		{"wider", p("10.0.0.0/8"), p("10.0.0.0/7"), false},
		{"disjoint", p("10.0.0.0/8"), p("11.0.0.0/8"), false},
		{"across two outers", p("10.0.0.0/8", "11.0.0.0/8"), p("10.1.0.0/16", "11.1.0.0/16"), true},
		{"other family", p("10.0.0.0/8"), p("2001:db8::/32"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := within(tt.outer, tt.inner); got != tt.want {
				t.Fatalf("within(%v, %v) = %v, want %v", tt.outer, tt.inner, got, tt.want)
			}
		})
	}
}

func FuzzParseCIDRs(f *testing.F) {
	for _, seed := range []string{
		"10.0.0.0/8",
		"192.0.2.1", // bare address
		"2001:db8::/32",
		"10.1.2.3/8",          // host bits set
		"::ffff:10.0.0.0/104", // IPv4-mapped: never matches an unmapped source
		"fe80::1%eth0",        // zone
		"0.0.0.0/0",
		"10.0.0.0/33",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseCIDRs("cidrs", []string{s})
		if err != nil {
			return
		}
		p := ps[0]
		if p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			t.Fatalf("ParseCIDRs(%q) = %v, not canonical", s, p)
		}
		// The canonical form parses back to itself, so what is stored is
		// what Login compares.
		again, err := ParseCIDRs("cidrs", cidrStrings(ps))
		if err != nil || again[0] != p {
			t.Fatalf("ParseCIDRs(%q) = %v, which parses back as %v, %v", s, p, again, err)
		}
		if !allowed(cidrStrings(ps), p.Addr()) {
			t.Fatalf("a block %v does not allow its own first address", p)
		}
	})
}
