package e2e

// The tests exec a coffer binary they build themselves; importing the CLI
// makes go test's cache notice when any code the binary is built from changes.
import _ "github.com/coffer-dev/coffer/internal/cli"
