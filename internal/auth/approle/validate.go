package approle

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/internal/auth"
)

// Input limits.
const (
	MaxRoleNameLen   = 128
	MaxCIDRs         = 64
	MaxMetaEntries   = 32
	MaxMetaKeyLen    = 128
	MaxMetaValueLen  = 512
	metaKeyRole      = "role" // set by Login; callers cannot supply it
	maxCredentialLen = 256    // longer role_ids and secret_ids are refused unread
)

func invalid(field, format string, args ...any) error {
	return &auth.InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ValidateRoleName checks a role name: 1 to 128 characters from [a-z0-9_-].
func ValidateRoleName(name string) error {
	if name == "" || len(name) > MaxRoleNameLen {
		return invalid("role", "name must be 1 to %d characters", MaxRoleNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalid("role", "name has a character outside [a-z0-9_-] at offset %d", i)
		}
	}
	return nil
}

// ParseCIDRs parses a list of CIDR blocks for field (named in errors) and
// returns them in canonical form: host bits cleared, IPv6 compressed. A
// bare address means that one host. IPv4-mapped IPv6 blocks and zones are
// refused, because they would never match the unmapped, zoneless source
// addresses Login compares.
func ParseCIDRs(field string, in []string) ([]netip.Prefix, error) {
	if len(in) > MaxCIDRs {
		return nil, invalid(field, "at most %d CIDR blocks", MaxCIDRs)
	}
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s) // refuses zones
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil && a.Zone() != "" {
				return nil, invalid(field, "%q has a zone; zones are not supported", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		switch {
		case err != nil:
			return nil, invalid(field, "%q is not a CIDR block or an IP address", s)
		case p.Addr().Is4In6():
			return nil, invalid(field, "%q is an IPv4-mapped IPv6 block; write it as IPv4", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// cidrStrings formats prefixes; nil for none, so empty lists are omitted in JSON.
func cidrStrings(ps []netip.Prefix) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// within reports whether every block of inner lies inside some block of
// outer. Any inner is within an empty outer (no restriction).
func within(outer, inner []netip.Prefix) bool {
	if len(outer) == 0 {
		return true
	}
	for _, q := range inner {
		ok := false
		for _, p := range outer {
			if p.Bits() <= q.Bits() && p.Contains(q.Addr()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// allowed reports whether source may log in under the stored CIDR list
// cidrs. An empty list allows any source, even an unknown one; otherwise
// an unknown (invalid) source is refused, and so is everything when a
// stored entry no longer parses.
func allowed(cidrs []string, source netip.Addr) bool {
	if len(cidrs) == 0 {
		return true
	}
	if !source.IsValid() {
		return false
	}
	source = source.Unmap().WithZone("")
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return false
		}
		if p.Contains(source) {
			return true
		}
	}
	return false
}

// validateMeta checks secret_id metadata: at most 32 entries; keys of 1 to
// 128 characters from [A-Za-z0-9_.-], not "role"; values of at most 512
// bytes of UTF-8.
func validateMeta(meta map[string]string) error {
	if len(meta) > MaxMetaEntries {
		return invalid("metadata", "at most %d entries", MaxMetaEntries)
	}
	for k, v := range meta {
		if k == "" || len(k) > MaxMetaKeyLen {
			return invalid("metadata", "keys must be 1 to %d characters", MaxMetaKeyLen)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
				return invalid("metadata", "keys must use only [A-Za-z0-9_.-]")
			}
		}
		if k == metaKeyRole {
			return invalid("metadata", "key %q is reserved: logins set it to the role name", metaKeyRole)
		}
		if len(v) > MaxMetaValueLen || !utf8.ValidString(v) {
			return invalid("metadata", "value of %q must be at most %d bytes of UTF-8", k, MaxMetaValueLen)
		}
	}
	return nil
}
