// Command coffer is the Coffer server, CLI and agent in one binary.
package main

import (
	"context"
	"os"

	"github.com/coffer-dev/coffer/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
