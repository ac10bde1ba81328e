package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

func (e *env) generateRootCommand() *cobra.Command {
	var reset bool
	cmd := &cobra.Command{
		Use:   "generate-root [KEY | -]",
		Short: "Present an unseal key toward a new root token (a quorum is needed)",
		Long: `Generate a new root token with a quorum of unseal keys, for when no root token
exists (it should not, after the first day: see docs/least-privilege.md). Run it once
per key holder; the run that completes the quorum prints the new root token. With a
key-file seal, present the base64 root key from the key file instead.`,
		Args: cobra.MaximumNArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if reset {
				return c.GenerateRootReset(cmd.Context())
			}
			key, err := e.readSecretInput(args, "Unseal key: ")
			if err != nil {
				return err
			}
			st, err := c.GenerateRoot(cmd.Context(), key)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(st)
			}
			if st.Complete {
				e.printf("Root token: %s\nRevoke it when done: coffer token revoke --self (with this token)\n", st.RootToken)
			} else {
				e.printf("Progress: %d/%d keys\n", st.Progress, st.Threshold)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&reset, "reset", false, "discard keys presented so far")
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
