// Command coffer is the Coffer server, CLI and agent in one binary.
package main

import (
	"context"
	"os"
	_ "time/tzdata" // policy conditions name IANA time zones; do not depend on the host's zoneinfo

	"github.com/coffer-dev/coffer/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
