package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/coffer-dev/coffer/client"
)

func (e *env) operatorCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "operator", Short: "Initialize, unseal, seal and rotate keys"}
	cmd.AddCommand(e.initCommand(), e.unsealCommand(), e.sealCommand(), e.rotateKeyCommand(), e.keyStatusCommand(), e.generateRootCommand(), e.breakGlassCommand(), e.snapshotCommand())
	return cmd
}

func (e *env) initCommand() *cobra.Command {
	var shares, threshold int
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new server and print its unseal keys and root token (once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			res, err := c.Init(cmd.Context(), shares, threshold)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(res)
			}
			for i, k := range res.Keys {
				e.printf("Unseal key %d: %s\n", i+1, k)
			}
			e.printf("\nRoot token: %s\n\n", res.RootToken)
			if len(res.Keys) > 0 {
				e.printf("The server is sealed. Unseal it with %d of these %d keys:\n  coffer operator unseal   (once per key)\n\n", res.Threshold, len(res.Keys))
				e.printf("These keys and the root token are shown only now. Give each key to a different\nperson and keep them apart; anyone with %d keys can unseal the server.\n", res.Threshold)
			} else {
				e.printf("The server unsealed itself from its key file. Keep that file's 0600 permissions.\n")
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&shares, "shares", 5, "number of unseal keys to create (Shamir seal)")
	cmd.Flags().IntVar(&threshold, "threshold", 3, "number of unseal keys needed to unseal")
	return cmd
}

func (e *env) unsealCommand() *cobra.Command {
	var reset bool
	cmd := &cobra.Command{
		Use:   "unseal [KEY | -]",
		Short: "Present one unseal key (prompted without echo, or read from stdin with -)",
		Long: `Present one unseal key. Run it once per key until the threshold is met.

With no argument it prompts without echo on a terminal, or reads one line from stdin.
Passing the key as an argument leaves it in your shell history; prefer the prompt.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			var st *client.SealStatus
			if reset {
				st, err = c.UnsealReset(cmd.Context())
			} else {
				var key string
				key, err = e.readSecretInput(args, "Unseal key: ")
				if err != nil {
					return err
				}
				st, err = c.Unseal(cmd.Context(), key)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(st)
			}
			e.printSealStatus(st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&reset, "reset", false, "discard the unseal keys presented so far")
	return cmd
}

// readSecretInput takes a value from the argument, from "-" (stdin), or
// from a prompt without echo when stdin is a terminal.
func (e *env) readSecretInput(args []string, prompt string) (string, error) {
	if len(args) == 1 && args[0] != "-" {
		return args[0], nil
	}
	if f, ok := e.stdin.(*os.File); ok && len(args) == 0 && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("no input on stdin")
	}
	return line, nil
}

func (e *env) printSealStatus(st *client.SealStatus) {
	e.printf("Seal type:    %s\nInitialized:  %t\nSealed:       %t\n", st.Type, st.Initialized, st.Sealed)
	if st.Threshold > 0 {
		e.printf("Unseal keys:  %d of %d needed\n", st.Threshold, st.Shares)
	}
	if st.Sealed && st.Initialized && st.Type == "shamir" {
		e.printf("Progress:     %d/%d\n", st.Progress, st.Threshold)
	}
}

func (e *env) sealCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "seal",
		Short: "Seal the server: it forgets its keys until unsealed again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.Seal(cmd.Context()); err != nil {
				return err
			}
			if !e.json {
				e.printf("Sealed. Unseal with: coffer operator unseal\n")
			}
			return nil
		},
	}
}

func (e *env) rotateKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-key",
		Short: "Add a new encryption key term; older records are re-encrypted in the background",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			k, err := c.RotateKey(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(k)
			}
			e.printf("Key term %d is active (%d terms). Older records are being re-encrypted.\n", k.Term, k.Terms)
			return nil
		},
	}
}

func (e *env) keyStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "key-status",
		Short: "Show the active encryption key term",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			k, err := c.KeyStatus(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(k)
			}
			e.printf("Term:       %d\nInstalled:  %s\nTerms:      %d\n", k.Term, k.Installed.Format("2006-01-02 15:04:05Z07:00"), k.Terms)
			return nil
		},
	}
}

func (e *env) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the server's seal status (exit 0 unsealed, 2 sealed, 1 error)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			st, err := c.SealStatus(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				if err := e.printJSON(st); err != nil {
					return err
				}
			} else {
				e.printf("Address:      %s\n", c.Address())
				e.printSealStatus(st)
				e.printCluster(cmd.Context(), c)
			}
			if st.Sealed {
				return &exitError{2}
			}
			return nil
		},
	}
}

func dirOf(path string) string {
	i := strings.LastIndex(path, string(os.PathSeparator))
	if i < 0 {
		return "."
	}
	return path[:i]
}

// writeFileAtomic writes data to a temporary file with perm and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(dirOf(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
