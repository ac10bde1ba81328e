// Package policy parses, compiles and evaluates Coffer's access policies:
// policies as code, written in HCL, one policy per document.
//
//	# Payments service: read its own secrets.
//	path "prod/payments/*" {
//	  capabilities = ["read", "list"]
//	}
//	path "prod/payments/admin/*" {
//	  capabilities = ["deny"]
//	}
//	path "apps/{{identity.name}}/*" {
//	  capabilities = ["read", "create", "update"]
//	}
//	path "prod/+/db" {
//	  capabilities = ["read"]
//	  condition {
//	    source_cidrs = ["10.0.0.0/8", "127.0.0.1/32"]
//	    days         = ["mon", "tue", "wed", "thu", "fri"]
//	    hours        = "08:00-18:00"
//	    timezone     = "Europe/Paris"
//	    require_mfa  = true
//	  }
//	}
//
// # Capabilities
//
// Each rule grants capabilities on the paths its pattern matches:
//
//   - read: read a secret's value and describe its metadata.
//   - list: see the names under a prefix.
//   - create: write the first version of a new secret.
//   - update: write new versions, move stages, change metadata.
//   - delete: soft-delete a secret and restore it.
//   - destroy: erase versions, force-delete a secret.
//   - rotate: trigger or cancel rotation.
//   - admin: everything on the path, including sys operations when the
//     path is a sys/... path. admin implies every other capability.
//   - deny: refuse, overriding any grant from any policy. deny cannot be
//     combined with other capabilities in one rule.
//
// # Path patterns
//
// A pattern is made of the characters allowed in secret names,
// [A-Za-z0-9/_+=.@-], and three kinds of wildcard:
//
//   - "*" as the very last character matches any suffix, including the
//     empty one and suffixes containing "/": "prod/*" matches "prod/",
//     "prod/a" and "prod/a/b" but not "prod"; "prod/pay*" matches
//     "prod/pay" and "prod/payments/x"; a lone "*" matches every path.
//   - "+" as a whole segment matches exactly one non-empty segment:
//     "prod/+/db" matches "prod/x/db" but neither "prod//db" nor
//     "prod/x/y/db". A "+" inside a segment, as in "a+b" or "prod/+*", is
//     a literal character.
//   - "{{identity.name}}", "{{identity.id}}" and "{{identity.meta.KEY}}"
//     as a whole segment match exactly the requesting identity's value.
//     A value that is missing, empty or contains "/" matches nothing.
//
// # Evaluation
//
// [Compile] builds a [Set] from any number of policies; [Set.Evaluate]
// decides a [Request]. Every rule whose pattern matches the request path
// and whose condition holds takes part: an explicit deny wins over every
// grant, from any policy; otherwise a rule granting the capability, or
// admin, allows; otherwise the request is denied. A deny rule whose
// condition does not hold does not deny.
//
// Matching is byte-exact and never normalizes: "PROD/x", "prod/x%2Fy" and
// a path spelled with look-alike Unicode letters are different paths from
// "prod/x/y". Callers validate secret names before evaluating (see
// secret.ValidateName); as a second line of defence Evaluate denies any
// request path that is not a well-formed name or list prefix, so paths
// with "." or ".." segments, empty segments or characters outside the
// name alphabet match no rule at all.
//
// The special policy name "root" has no meaning here: callers handle root
// tokens before consulting a Set.
package policy
