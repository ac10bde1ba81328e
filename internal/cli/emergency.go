package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/otp"
)

func (e *env) generateRootCommand() *cobra.Command {
	var (
		reset, init, status bool
		nonce, decode, pad  string
	)
	cmd := &cobra.Command{
		Use:   "generate-root --init | --nonce N [KEY | -] | --decode ENCODED --otp OTP | --status | --reset",
		Short: "Make a new root token with a quorum of unseal keys",
		Long: `Generate a new root token with a quorum of unseal keys, for when no root token
exists (it should not, after the first day: see docs/least-privilege.md).

1. The operator who needs the token starts an attempt: coffer operator generate-root --init
   prints a nonce (give it to the key holders) and a one-time pad (keep it to yourself).
2. Each key holder presents a key: coffer operator generate-root --nonce N
   (prompts for the key). The run that completes the quorum prints the encoded token,
   which is useless without the pad, so key holders never see the root token.
3. The operator decodes it: coffer operator generate-root --decode ENCODED --otp PAD

With a key-file seal, present the base64 root key from the key file instead of a share.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if decode != "" || pad != "" {
				if decode == "" || pad == "" {
					return errors.New("--decode needs --otp (the pad --init printed), and the other way round")
				}
				tok, err := otp.Decode(decode, pad)
				if err != nil {
					return err
				}
				e.printf("Root token: %s\nRevoke it when done: coffer token revoke --self (with this token)\n", tok)
				return nil
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			var st *client.GenerateRootStatus
			switch {
			case reset:
				return c.GenerateRootReset(cmd.Context())
			case status:
				st, err = c.GenerateRootProgress(cmd.Context())
			case init:
				st, err = c.GenerateRootInit(cmd.Context())
			case nonce == "":
				return errors.New("give --init to start an attempt, or --nonce N (from whoever started it) to present a key")
			default:
				key, kerr := e.readSecretInput(args, "Unseal key: ")
				if kerr != nil {
					return kerr
				}
				st, err = c.GenerateRoot(cmd.Context(), nonce, key)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(st)
			}
			switch {
			case init:
				e.printf("Nonce: %s\nOne-time pad (keep it; it alone decodes the token): %s\nKey holders now run: coffer operator generate-root --nonce %s\n", st.Nonce, st.OTP, st.Nonce)
			case st.Complete:
				e.printf("Quorum met. Encoded root token: %s\nWhoever started the attempt decodes it with:\n  coffer operator generate-root --decode %s --otp PAD\n", st.EncodedRootToken, st.EncodedRootToken)
			case !st.Started:
				e.printf("No generate-root attempt in progress.\n")
			default:
				e.printf("Attempt %s: %d/%d keys\n", st.Nonce, st.Progress, st.Threshold)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&init, "init", false, "start an attempt: prints its nonce and one-time pad")
	f.StringVar(&nonce, "nonce", "", "the attempt to present a key to")
	f.StringVar(&decode, "decode", "", "decode this encoded root token (with --otp)")
	f.StringVar(&pad, "otp", "", "the one-time pad --init printed")
	f.BoolVar(&status, "status", false, "show the attempt in progress")
	f.BoolVar(&reset, "reset", false, "discard the attempt and the keys presented so far")
	return cmd
}

func (e *env) breakGlassCommand() *cobra.Command {
	var (
		justification, ttl string
		policies           []string
		list               bool
	)
	cmd := &cobra.Command{
		Use:   "break-glass --justification TEXT --policy P [--ttl 15m] | --list",
		Short: "Issue an emergency token (loudly flagged, hard TTL <= 1h), or --list them for review",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			if list {
				recs, err := c.BreakGlassRecords(cmd.Context())
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(recs)
				}
				for _, r := range recs {
					e.printf("%s  %s  by %s  policies [%s]  until %s\n    %s\n", fmtTime(r.CreatedAt), r.Accessor, r.IssuedBy,
						strings.Join(r.Policies, ", "), fmtTime(r.ExpiresAt), r.Justification)
				}
				return nil
			}
			if justification == "" {
				return errors.New("--justification is required: say why normal access is not enough")
			}
			tok, rec, err := c.BreakGlass(cmd.Context(), justification, policies, ttl)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]any{"token": tok, "record": rec})
			}
			e.printf("BREAK-GLASS token: %s\nAccessor:  %s\nExpires:   %s (not renewable)\nThis issuance is recorded for review: coffer operator break-glass --list\n",
				tok, rec.Accessor, fmtTime(rec.ExpiresAt))
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&justification, "justification", "", "why normal access is not enough (recorded)")
	f.StringSliceVar(&policies, "policy", nil, "policies for the emergency token; repeatable")
	f.StringVar(&ttl, "ttl", "", "lifetime, at most 1h (default 15m)")
	f.BoolVar(&list, "list", false, "list emergency tokens issued so far")
	return cmd
}
