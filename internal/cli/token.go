package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/auth/token"
)

func (e *env) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, look up, renew and revoke tokens"}
	cmd.AddCommand(e.tokenCreate(), e.tokenLookup(), e.tokenRenew(), e.tokenRevoke(), e.tokenList())
	return cmd
}

func (e *env) tokenCreate() *cobra.Command {
	var (
		in        client.TokenCreateInput
		meta      []string
		renewable bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a child of your token (revoked with it), or --orphan",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			var err error
			if in.Meta, err = parseTags(meta); err != nil {
				return err
			}
			if cmd.Flags().Changed("renewable") {
				in.Renewable = &renewable
			}
			t, err := c.CreateToken(cmd.Context(), in)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(t)
			}
			e.printf("Token:     %s\n", t.Token)
			e.printTokenInfo(&t.Info)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&in.Policies, "policy", nil, "policy to attach (default: your token's); repeatable")
	f.StringVar(&in.DisplayName, "display-name", "", "name shown in audit records")
	f.StringVar(&in.TTL, "ttl", "", "lifetime, e.g. 30m (default 1h)")
	f.StringVar(&in.MaxTTL, "max-ttl", "", "renewals stop at this age (default 24h)")
	f.StringVar(&in.Period, "period", "", "periodic token: each renewal extends it by this, with no maximum")
	f.BoolVar(&renewable, "renewable", true, "allow renewal")
	f.IntVar(&in.NumUses, "uses", 0, "number of requests before the token expires (0: unlimited)")
	f.BoolVar(&in.Orphan, "orphan", false, "not revoked with your token (needs update on auth/token/create-orphan)")
	f.StringSliceVar(&meta, "meta", nil, "KEY=VALUE metadata; repeatable")
	return cmd
}

func (e *env) printTokenInfo(t *client.TokenInfo) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "Accessor:\t%s\n", t.Accessor)
	fmt.Fprintf(tw, "Name:\t%s\n", t.DisplayName)
	fmt.Fprintf(tw, "Method:\t%s\n", t.Method)
	fmt.Fprintf(tw, "Policies:\t%s\n", strings.Join(t.Policies, ", "))
	fmt.Fprintf(tw, "Created:\t%s\n", fmtTime(t.CreatedAt))
	if t.ExpiresAt != nil {
		fmt.Fprintf(tw, "Expires:\t%s\n", fmtTime(*t.ExpiresAt))
	} else {
		fmt.Fprintf(tw, "Expires:\tnever\n")
	}
	if t.MaxExpires != nil {
		fmt.Fprintf(tw, "Max expiry:\t%s\n", fmtTime(*t.MaxExpires))
	}
	if t.Period != "" {
		fmt.Fprintf(tw, "Period:\t%s\n", t.Period)
	}
	fmt.Fprintf(tw, "Renewable:\t%t\n", t.Renewable)
	if t.NumUses > 0 {
		fmt.Fprintf(tw, "Uses left:\t%d\n", t.NumUses)
	}
	if t.Orphan {
		fmt.Fprintf(tw, "Parent:\t- (orphan)\n")
	} else {
		fmt.Fprintf(tw, "Parent:\t%s\n", t.Parent)
	}
	if t.MFA {
		fmt.Fprintf(tw, "MFA:\tyes\n")
	}
	if t.BreakGlass != "" {
		fmt.Fprintf(tw, "BREAK-GLASS:\t%s\n", t.BreakGlass)
	}
	for k, v := range t.Meta {
		fmt.Fprintf(tw, "meta %s:\t%s\n", k, v)
	}
	tw.Flush()
}

// tokenTarget picks the client and accessor a token command acts on: the
// given token (argument or - for stdin), an accessor, or your own token.
func (e *env) tokenTarget(c *client.Client, args []string, accessor string) (*client.Client, string, error) {
	switch {
	case accessor != "" && len(args) > 0:
		return nil, "", errors.New("give a token or --accessor, not both")
	case accessor != "":
		return c, accessor, nil
	case len(args) == 1:
		tok, err := e.readSecretInput(args, "")
		if err != nil {
			return nil, "", err
		}
		if token.Check(tok) != nil {
			// Not a Coffer token (a typo, or an accessor where a token goes):
			// say so rather than send it and blame the caller's own token.
			return nil, "", errors.New("that is not a Coffer token (they start with cof_); to name a token by its accessor use --accessor")
		}
		return c.WithToken(tok), "", nil
	default:
		return c, "", nil
	}
}

func (e *env) tokenLookup() *cobra.Command {
	var accessor string
	cmd := &cobra.Command{
		Use:   "lookup [TOKEN | -]",
		Short: "Describe your token, another token, or the token with --accessor",
		Args:  cobra.MaximumNArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			tc, acc, err := e.tokenTarget(c, args, accessor)
			if err != nil {
				return err
			}
			var t *client.TokenInfo
			if acc != "" {
				t, err = tc.LookupAccessor(cmd.Context(), acc)
			} else {
				t, err = tc.TokenSelf(cmd.Context())
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(t)
			}
			e.printTokenInfo(t)
			return nil
		}),
	}
	cmd.Flags().StringVar(&accessor, "accessor", "", "look up by accessor instead")
	return cmd
}

func (e *env) tokenRenew() *cobra.Command {
	var accessor, increment string
	cmd := &cobra.Command{
		Use:   "renew [TOKEN | -]",
		Short: "Extend a renewable token (yours by default), up to its maximum",
		Args:  cobra.MaximumNArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			tc, acc, err := e.tokenTarget(c, args, accessor)
			if err != nil {
				return err
			}
			var t *client.TokenInfo
			if acc != "" {
				t, err = tc.RenewAccessor(cmd.Context(), acc, increment)
			} else {
				t, err = tc.RenewSelf(cmd.Context(), increment)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(t)
			}
			e.printTokenInfo(t)
			return nil
		}),
	}
	cmd.Flags().StringVar(&accessor, "accessor", "", "renew the token with this accessor")
	cmd.Flags().StringVar(&increment, "increment", "", "extend by this much (default: the token's TTL)")
	return cmd
}

func (e *env) tokenRevoke() *cobra.Command {
	var accessor string
	var self bool
	cmd := &cobra.Command{
		Use:   "revoke [TOKEN | -] | --accessor A | --self",
		Short: "Revoke a token and every token created from it",
		Args:  cobra.MaximumNArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if !self && accessor == "" && len(args) == 0 {
				return errors.New("say which token: TOKEN, - (stdin), --accessor A, or --self")
			}
			tc, acc, err := e.tokenTarget(c, args, accessor)
			if err != nil {
				return err
			}
			if acc != "" {
				err = tc.RevokeAccessor(cmd.Context(), acc)
			} else {
				err = tc.RevokeSelf(cmd.Context())
			}
			if err != nil {
				return err
			}
			if !e.json {
				e.printf("Revoked (with every token created from it)\n")
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&accessor, "accessor", "", "revoke the token with this accessor")
	cmd.Flags().BoolVar(&self, "self", false, "revoke your own token")
	return cmd
}

func (e *env) tokenList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List live tokens by accessor (admins; never the tokens)",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			var all []client.TokenInfo
			after := ""
			for {
				page, next, err := c.ListTokens(cmd.Context(), after)
				if err != nil {
					return err
				}
				all = append(all, page...)
				if next == "" {
					break
				}
				after = next
			}
			if e.json {
				return e.printJSON(all)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCESSOR\tNAME\tMETHOD\tPOLICIES\tEXPIRES")
			for _, t := range all {
				exp := "never"
				if t.ExpiresAt != nil {
					exp = fmtTime(*t.ExpiresAt)
				}
				flag := ""
				if t.BreakGlass != "" {
					flag = " BREAK-GLASS"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s%s\t%s\t%s\n", t.Accessor, t.DisplayName, t.Method, flag, strings.Join(t.Policies, ","), exp)
			}
			return tw.Flush()
		}),
	}
}
