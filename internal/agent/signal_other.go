//go:build !unix

package agent

import (
	"fmt"
	"os"
)

// parseSignal refuses every signal: this platform has no Unix signals.
func parseSignal(name string) (os.Signal, error) {
	return nil, fmt.Errorf("signal %q: signals are not supported on this platform; use command", name)
}
