// Package cli implements the coffer command: the server, the operator
// commands and the secret commands, all on the public client package.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// env is what commands read from outside: streams and the environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// flags shared by client commands
	address string
	caCert  string
	json    bool
}

// Main runs the coffer command with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "Error: %s\n", describeError(err))
	return 1
}

func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "coffer",
		Short:         "Coffer stores, versions, rotates and delivers secrets",
		Long:          "Coffer is a self-hosted secrets manager: one binary for the server, the CLI and the agent.\n\nStart a dev server with `coffer server --dev`, then paste the export lines it prints.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&e.address, "address", "", "server address (default $COFFER_ADDR or "+client.DefaultAddress+")")
	pf.StringVar(&e.caCert, "ca-cert", "", "PEM file of the CA that signed the server's certificate (default $COFFER_CACERT)")
	pf.BoolVar(&e.json, "json", false, "print machine-readable JSON")
	root.AddCommand(e.serverCommand(), e.operatorCommand(), e.statusCommand(), e.loginCommand(), e.secretCommand(), e.tokenCommand(), e.policyCommand(), e.authCommand(), e.auditCommand(), e.awsKeyCommand(), e.runCommand(), e.agentCommand(), e.exposureCommand(), e.dbCommand(), e.leaseCommand(), e.rotationCommand(), e.randomCommand())
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every group command (one that only holds
// subcommands) fail on an unknown subcommand, where cobra would print the
// help and exit 0 so that a script never notices `coffer policy wirte`.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		refuseUnknownSubcommands(c)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q; run `%s --help` for the list", args[0], c.CommandPath(), c.CommandPath())
		}
		return c.Help()
	}
}

// describeError turns an error into a message that says what to do.
func describeError(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		msg := ce.Message
		switch ce.Code {
		case "unauthenticated":
			if !strings.HasPrefix(msg, "missing, invalid, expired or revoked token") {
				break // a refused login says what was wrong with the credentials
			}
			msg = "not authenticated: the token is missing, invalid, expired or revoked; set COFFER_TOKEN or run `coffer login`"
		case "sealed":
			msg = "the server is sealed: run `coffer operator unseal` with enough unseal keys"
		case "not_initialized":
			msg = "the server is not initialized: run `coffer operator init`"
		}
		if ce.RequestID != "" && ce.StatusCode >= 500 {
			msg += " [request id " + ce.RequestID + "]"
		}
		return msg
	}
	// Only the API client's own failures (*url.Error) are about COFFER_ADDR:
	// `coffer server` failing to reach PostgreSQL is refused too.
	var ue *url.Error
	if errors.As(err, &ue) && strings.Contains(err.Error(), "connection refused") {
		return err.Error() + "\nIs the server running? Check COFFER_ADDR or --address."
	}
	return err.Error()
}

// client builds an API client from flags, environment and the login file.
func (e *env) client() (*client.Client, error) {
	addr := e.address
	if addr == "" {
		addr = e.getenv("COFFER_ADDR")
	}
	ca := e.caCert
	if ca == "" {
		ca = e.getenv("COFFER_CACERT")
	}
	tok := e.getenv("COFFER_TOKEN")
	if tok == "" {
		if path, err := tokenFile(); err == nil {
			t, err := readPrivateFile(path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(e.stderr, "warning: not using the stored token: %v\n", err)
			}
			tok = strings.TrimSpace(t)
		}
	}
	// A person at a terminal wants an answer, not 15 seconds of retries
	// against a sealed server: the CLI does not retry (coffer run and the
	// agent, which are long-running, set their own clients up).
	return client.New(client.Config{Address: addr, Token: tok, CACertFile: ca, MaxRetries: -1, UserAgent: "coffer-cli/" + Version})
}

// tokenFile is where `coffer login` keeps the token.
// It is under the user's own configuration directory, never a shared one
// such as /tmp, where another user could plant a directory or a token.
func tokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil || !filepath.IsAbs(dir) {
		return "", errors.New("no configuration directory to keep the token in (HOME unset, or XDG_CONFIG_HOME relative): set COFFER_TOKEN instead, or use --no-store")
	}
	return filepath.Join(dir, "coffer", "token"), nil
}

// readPrivateFile reads a file that must be the caller's alone: a regular
// file (not a symlink) owned by the current user, with no permission for
// group or others.
func readPrivateFile(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is accessible to other users (mode %s); chmod 600 it", path, fi.Mode().Perm())
	}
	if !ownedByMe(fi) {
		return "", fmt.Errorf("%s belongs to another user", path)
	}
	b, err := os.ReadFile(path)
	return string(b), err
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }
