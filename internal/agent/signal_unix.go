//go:build unix

package agent

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// parseSignal reads a signal name: HUP, SIGHUP, usr1, ...
func parseSignal(name string) (os.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	switch n {
	case "HUP":
		return syscall.SIGHUP, nil
	case "INT":
		return syscall.SIGINT, nil
	case "QUIT":
		return syscall.SIGQUIT, nil
	case "TERM":
		return syscall.SIGTERM, nil
	case "USR1":
		return syscall.SIGUSR1, nil
	case "USR2":
		return syscall.SIGUSR2, nil
	case "KILL":
		return syscall.SIGKILL, nil
	}
	return nil, fmt.Errorf("signal %q: supported signals are HUP, INT, QUIT, TERM, USR1, USR2 and KILL", name)
}
