package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

func (e *env) leaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Leases of dynamic credentials: list, look up, renew, revoke",
		Long: `Every dynamic credential (such as a database user from coffer db creds) hangs on
a lease. When the lease expires or is revoked the credential is removed; a
revocation that fails (database down) is retried with backoff until it succeeds.
Lease ids look like db/creds/ROLE/RANDOM.`,
	}
	cmd.AddCommand(e.leaseList(), e.leaseLookup(), e.leaseRenew(), e.leaseRevoke())
	return cmd
}

func (e *env) leaseList() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:     "list [PREFIX]",
		Short:   "List lease ids under a prefix",
		Long:    "List lease ids under a prefix. A prefix ends with / and so covers whole id segments.",
		Example: "  coffer lease list db/creds/readonly/",
		Args:    cobra.MaximumNArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			var all []string
			after := ""
			for {
				ids, next, err := c.ListLeases(cmd.Context(), prefix, after, min(limit, 1000))
				if err != nil {
					return err
				}
				all = append(all, ids...)
				if next == "" || len(all) >= limit {
					break
				}
				after = next
			}
			if len(all) > limit {
				all = all[:limit]
			}
			return e.printNames(all)
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 1000, "print at most this many ids")
	return cmd
}

func (e *env) printLease(l *client.Lease) error {
	if e.json {
		return e.printJSON(l)
	}
	e.printf("Lease ID:    %s\nKind:        %s\nIssued:      %s\nExpires:     %s (in %s)\nMax expiry:  %s\nRenewable:   %v\n",
		l.LeaseID, l.Kind, fmtTime(l.IssuedAt), fmtTime(l.ExpiresAt), time.Duration(l.TTL)*time.Second, fmtTime(l.MaxExpiresAt), l.Renewable)
	if r := l.Revocation; r != nil {
		e.printf("Revocation:  %s (%s), %d failed attempts, next %s\n", fmtTime(r.RequestedAt), r.Reason, r.Attempts, fmtTime(r.NextAttempt))
		if r.LastError != "" {
			e.printf("Last error:  %s\n", r.LastError)
		}
	}
	return nil
}

func (e *env) leaseLookup() *cobra.Command {
	return &cobra.Command{
		Use:   "lookup LEASE_ID",
		Short: "Show a lease",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			l, err := c.LookupLease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.printLease(l)
		}),
	}
}

func (e *env) leaseRenew() *cobra.Command {
	var increment string
	cmd := &cobra.Command{
		Use:   "renew LEASE_ID",
		Short: "Extend a lease (never past its maximum)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if increment != "" {
				if _, err := time.ParseDuration(increment); err != nil {
					return fmt.Errorf("--increment: want a duration like 1h: %v", err)
				}
			}
			l, err := c.RenewLease(cmd.Context(), args[0], increment)
			if err != nil {
				return err
			}
			if err := e.printLease(l); err != nil {
				return err
			}
			if !e.json {
				for _, w := range l.Warnings {
					fmt.Fprintf(e.stderr, "Warning: %s\n", w)
				}
				if l.Capped && len(l.Warnings) == 0 {
					fmt.Fprintf(e.stderr, "Warning: the increment was capped at the lease's maximum expiry (%s)\n", fmtTime(l.MaxExpiresAt))
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&increment, "increment", "", "extend to this long from now (default: the lease's TTL); capped, with a warning, at the lease's maximum")
	return cmd
}

func (e *env) leaseRevoke() *cobra.Command {
	var prefix bool
	cmd := &cobra.Command{
		Use:   "revoke LEASE_ID | --prefix PREFIX",
		Short: "Revoke a lease now (or every lease under a prefix)",
		Example: `  coffer lease revoke db/creds/readonly/k3x...
  coffer lease revoke --prefix db/creds/readonly/`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if prefix {
				if !strings.HasSuffix(args[0], "/") {
					return fmt.Errorf("--prefix: %q must end with / so that it covers whole id segments (e.g. db/creds/ROLE/)", args[0])
				}
				n, err := c.RevokeLeasePrefix(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(n)
				}
				e.printf("Revoked %d leases", n.Revoked)
				if n.Pending > 0 {
					e.printf("; %d could not be revoked yet and will be retried (see coffer lease lookup)", n.Pending)
				}
				e.printf("\n")
				if n.Pending > 0 {
					return &exitError{code: 2}
				}
				return nil
			}
			out, err := c.RevokeLease(cmd.Context(), args[0])
			if err != nil {
				var ce *client.Error
				if errors.As(err, &ce) && ce.Code == "not_found" {
					return fmt.Errorf("no lease %s (it expired, was revoked, or never existed)", args[0])
				}
				return err
			}
			if e.json {
				return e.printJSON(out)
			}
			if out.Status == "pending" {
				next := ""
				if out.NextAttempt != nil {
					next = fmtTime(*out.NextAttempt)
				}
				e.printf("Revocation of %s failed for now (%s); it is recorded and will be retried at %s\n", out.LeaseID, out.Error, next)
				return &exitError{code: 2}
			}
			e.printf("Revoked %s\n", out.LeaseID)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&prefix, "prefix", false, "treat the argument as a prefix ending with / and revoke every lease under it")
	return cmd
}
