// Package testhook gives end-to-end tests a few switches into the real
// binary (kill the server after a rotation step, hold a snapshot, shorten a
// tick). They exist only in binaries built with the coffer_testhooks build
// tag, as internal/e2e builds its binary; a release build ignores the
// variables, so no environment can make a production server crash itself.
package testhook

// Env returns the value of the environment variable name in a binary built
// with the coffer_testhooks tag, and "" in any other.
func Env(name string) string { return env(name) }
