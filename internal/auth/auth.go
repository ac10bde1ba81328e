// Package auth holds what every authentication method produces: a
// Principal, the caller on whose behalf a request runs.
package auth

import "errors"

// ErrUnauthenticated means the request carried no credential, or one that is
// unknown, expired or revoked. It never says which.
var ErrUnauthenticated = errors.New("missing, invalid, expired or revoked token")

// ErrForbidden means the caller is known but lacks the capability.
var ErrForbidden = errors.New("permission denied")

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller in metadata and audit records (e.g. "root").
	Name string
	// Accessor names the token without revealing it.
	Accessor string
	Policies []string
	Meta     map[string]string
}

// Root reports whether the principal holds the root policy.
func (p *Principal) Root() bool {
	for _, pol := range p.Policies {
		if pol == "root" {
			return true
		}
	}
	return false
}
