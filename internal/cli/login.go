package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

func (e *env) loginCommand() *cobra.Command {
	var (
		method, roleID, secretIDFile, role, jwtFile, username, totp, clientCert, clientKey string
		noStore                                                                            bool
	)
	cmd := &cobra.Command{
		Use:   "login [TOKEN | -]",
		Short: "Log in (token, approle, jwt, userpass or cert) and store the token (0600)",
		Long: `Log in and store the token in your config directory with 0600 permissions, so later
commands need no COFFER_TOKEN. --no-store prints the token instead (with --json for scripts).

  coffer login                                    # prompts for a token
  coffer login --method userpass --username alice # prompts for the password (and TOTP code)
  coffer login --method approle --role-id ID --secret-id-file /run/secrets/secret-id
  coffer login --method jwt --role deploy --jwt-file /var/run/secrets/tokens/coffer
  coffer login --method cert --client-cert me.crt --client-key me.key`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var tok string
			switch method {
			case "token":
				if len(args) == 1 && args[0] != "-" {
					fmt.Fprintln(e.stderr, "warning: a token given as an argument shows in the process list and your shell history; run `coffer login` to be prompted, or pass - to read it from stdin")
				}
				if tok, err = e.readSecretInput(args, "Token: "); err != nil {
					return err
				}
			case "approle":
				if roleID == "" || secretIDFile == "" {
					return errors.New("--method approle needs --role-id and --secret-id-file (- for stdin)")
				}
				sid, err := e.readFileOrStdin(secretIDFile)
				if err != nil {
					return err
				}
				l, err := c.LoginAppRole(ctx, roleID, sid)
				if err != nil {
					return err
				}
				tok = l.Token
			case "jwt":
				if role == "" || jwtFile == "" {
					return errors.New("--method jwt needs --role and --jwt-file (- for stdin)")
				}
				jwt, err := e.readFileOrStdin(jwtFile)
				if err != nil {
					return err
				}
				l, err := c.LoginJWT(ctx, role, jwt)
				if err != nil {
					return err
				}
				tok = l.Token
			case "userpass":
				if username == "" {
					return errors.New("--method userpass needs --username")
				}
				pw, err := e.readSecretInput(nil, "Password: ")
				if err != nil {
					return err
				}
				l, err := c.LoginUserpass(ctx, username, pw, totp)
				if err != nil {
					return err
				}
				tok = l.Token
			case "cert":
				cc, err := client.New(client.Config{Address: c.Address(), CACertFile: e.caFile(), ClientCertFile: clientCert, ClientKeyFile: clientKey, UserAgent: "coffer-cli/" + Version})
				if err != nil {
					return err
				}
				l, err := cc.LoginCert(ctx, role)
				if err != nil {
					return err
				}
				tok = l.Token
			default:
				return fmt.Errorf("--method %q: want token, approle, jwt, userpass or cert", method)
			}
			info, err := c.WithToken(tok).TokenSelf(ctx)
			if err != nil {
				return err
			}
			if noStore {
				if e.json {
					return e.printJSON(map[string]any{"token": tok, "info": info})
				}
				e.printf("%s\n", tok)
				return nil
			}
			path, err := tokenFile()
			if err != nil {
				return err
			}
			if err := privateDir(dirOf(path)); err != nil {
				return err
			}
			if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(info)
			}
			e.printf("Logged in as %s (policies: %s). Token stored in %s\n", info.DisplayName, strings.Join(info.Policies, ", "), path)
			if e.getenv("COFFER_TOKEN") != "" {
				e.printf("Note: COFFER_TOKEN is set and takes precedence over the stored token.\n")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&method, "method", "token", "token, approle, jwt, userpass or cert")
	f.StringVar(&roleID, "role-id", "", "approle: the role_id")
	f.StringVar(&secretIDFile, "secret-id-file", "", "approle: file holding the secret_id (- for stdin)")
	f.StringVar(&role, "role", "", "jwt or cert: the role")
	f.StringVar(&jwtFile, "jwt-file", "", "jwt: file holding the JWT (- for stdin)")
	f.StringVar(&username, "username", "", "userpass: the username (the password is prompted or read from stdin)")
	f.StringVar(&totp, "totp", "", "userpass: the current TOTP code, when enrolled")
	f.StringVar(&clientCert, "client-cert", "", "cert: PEM client certificate")
	f.StringVar(&clientKey, "client-key", "", "cert: PEM client key")
	f.BoolVar(&noStore, "no-store", false, "print the token instead of storing it")
	return cmd
}

// caFile is the CA bundle from --ca-cert or COFFER_CACERT.
func (e *env) caFile() string {
	if e.caCert != "" {
		return e.caCert
	}
	return e.getenv("COFFER_CACERT")
}

// readFileOrStdin reads a credential from a file, or stdin for "-".
func (e *env) readFileOrStdin(path string) (string, error) {
	if path == "-" {
		return e.readSecretInput([]string{"-"}, "")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(b) > 64<<10 {
		return "", fmt.Errorf("%s is larger than 64 KiB", path)
	}
	return strings.TrimSpace(string(b)), nil
}
