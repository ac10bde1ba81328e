// Package compat holds tests that drive a real Coffer server with the
// official clients of the services Coffer is compatible with, so that "an
// existing Vault client works unchanged" is tested rather than claimed. It
// is its own module so that those clients stay out of Coffer's go.mod; it
// replaces github.com/coffer-dev/coffer with the parent directory.
//
// TestMain builds the coffer binary from the parent module and runs
// "coffer server --dev" on a free loopback port. Because the binary is
// built by exec from files outside this module, go test's result cache
// cannot see changes to Coffer itself: run these tests with -count=1
//
//	cd compat && go test -count=1 ./...
package compat
