package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/rotation"
)

func (e *env) dbCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Dynamic database credentials (PostgreSQL, MySQL/MariaDB)",
		Long: `Issue short-lived database users on demand. A connection holds the admin
credentials Coffer uses; a role holds the SQL that creates a user; each
"coffer db creds ROLE" creates a new user with a random password under a lease.
The user is dropped, and its sessions ended, when the lease expires or is revoked,
or when the token that obtained it is revoked. See docs/dynamic-db.md.`,
	}
	config := &cobra.Command{Use: "config", Short: "Database connections"}
	config.AddCommand(e.dbConfigWrite(), e.dbConfigRead(), e.dbConfigList(), e.dbConfigDelete())
	role := &cobra.Command{Use: "role", Short: "Roles: the SQL that creates, renews and revokes users"}
	role.AddCommand(e.dbRoleWrite(), e.dbRoleRead(), e.dbRoleList(), e.dbRoleDelete())
	cmd.AddCommand(config, role, e.dbCreds(), e.dbRotateRoot())
	return cmd
}

func (e *env) dbConfigWrite() *cobra.Command {
	var (
		in           client.DBConnectionInput
		passwordFile string
		noVerify     bool
	)
	cmd := &cobra.Command{
		Use:   "write NAME",
		Short: "Create or replace a connection (Coffer connects to check it first)",
		Example: `  coffer db config write pg --plugin postgresql \
    --connection-url 'postgres://{{username}}:{{password}}@db.internal:5432/app?sslmode=require' \
    --username coffer_admin --password-file - --allowed-roles readonly,readwrite <<<"$ADMIN_PASSWORD"`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if passwordFile != "" {
				pw, err := e.readFileOrStdin(passwordFile)
				if err != nil {
					return fmt.Errorf("--password-file: %w", err)
				}
				in.Password = &pw
			}
			if noVerify {
				f := false
				in.VerifyConnection = &f
			}
			out, err := c.WriteDBConnection(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			return e.printDBConnection(out)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Plugin, "plugin", "", "postgresql or mysql (MySQL and MariaDB)")
	f.StringVar(&in.ConnectionURL, "connection-url", "", "connection URL or DSN; may contain {{username}} and {{password}}, never a literal password")
	f.StringVar(&in.Username, "username", "", "admin user name")
	f.StringVar(&passwordFile, "password-file", "", "read the admin password from this file (- for stdin); omitted on update: keep the stored one (only while host, port, TLS settings, user and database stay the same)")
	f.StringSliceVar(&in.AllowedRoles, "allowed-roles", nil, "roles that may use this connection (* for all)")
	f.IntVar(&in.MaxOpenConnections, "max-open-connections", 0, "pool size to the database (default 4)")
	f.StringVar(&in.RootRotationPeriod, "root-rotation-period", "", "rotate the admin password on this schedule (e.g. 30d); default: only on demand")
	f.BoolVar(&noVerify, "no-verify", false, "store without connecting first")
	cmd.MarkFlagRequired("plugin")
	cmd.MarkFlagRequired("connection-url")
	return cmd
}

func (e *env) printDBConnection(c *client.DBConnection) error {
	if e.json {
		return e.printJSON(c)
	}
	e.printf("Name:            %s\n", c.Name)
	e.printf("Plugin:          %s\n", c.Plugin)
	e.printf("Connection URL:  %s\n", c.ConnectionURL)
	e.printf("Username:        %s\n", orDash(c.Username))
	e.printf("Password stored: %v\n", c.PasswordSet)
	e.printf("Allowed roles:   %s\n", orDash(strings.Join(c.AllowedRoles, ", ")))
	if c.RootRotatedAt != nil {
		e.printf("Root rotated:    %s\n", fmtTime(*c.RootRotatedAt))
	}
	if c.RootRotationPeriod != "" {
		period := c.RootRotationPeriod
		if d, err := time.ParseDuration(period); err == nil {
			period = rotation.FormatDuration(d)
		}
		e.printf("Root rotation:   every %s\n", period)
	}
	if c.RootRotationError != "" {
		e.printf("Root rotation FAILED: %s\n", c.RootRotationError)
		if c.RootRotationRetryAt != nil {
			e.printf("                 %d failure(s) in a row; next attempt %s\n", c.RootRotationFailures, fmtTime(*c.RootRotationRetryAt))
		}
	}
	e.printf("Updated:         %s\n", fmtTime(c.UpdatedAt))
	return nil
}

func (e *env) dbConfigRead() *cobra.Command {
	return &cobra.Command{
		Use:   "read NAME",
		Short: "Show a connection (never its password)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			out, err := c.ReadDBConnection(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.printDBConnection(out)
		}),
	}
}

func (e *env) dbConfigList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List connections",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			names, err := c.ListDBConnections(cmd.Context())
			if err != nil {
				return err
			}
			return e.printNames(names)
		}),
	}
}

func (e *env) printNames(names []string) error {
	if e.json {
		return e.printJSON(names)
	}
	for _, n := range names {
		e.printf("%s\n", n)
	}
	return nil
}

func (e *env) dbConfigDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a connection no role uses",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteDBConnection(cmd.Context(), args[0]); err != nil {
				return err
			}
			e.printf("Deleted connection %s\n", args[0])
			return nil
		}),
	}
}

func (e *env) dbRotateRoot() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-root NAME",
		Short: "Replace the connection's admin password with a random one only Coffer knows",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			out, err := c.RotateDBRoot(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.printDBConnection(out)
		}),
	}
}

// statements reads SQL from flags: each value is SQL, or @file to read a file.
func statements(vals []string) ([]string, error) {
	var out []string
	for _, v := range vals {
		if path, ok := strings.CutPrefix(v, "@"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			v = string(b)
		}
		out = append(out, v)
	}
	return out, nil
}

func (e *env) dbRoleWrite() *cobra.Command {
	var (
		r                       client.DBRole
		create, revoke, renewal []string
	)
	cmd := &cobra.Command{
		Use:   "write NAME",
		Short: "Create or replace a role",
		Long: `Create or replace a role. Statements use the placeholders {{name}}, {{password}}
and {{expiration}}, written bare: Coffer substitutes them as properly quoted
identifiers and literals. Give SQL directly or @file; separate statements with ";".`,
		Example: `  coffer db role write readonly --db pg --default-ttl 1h --max-ttl 24h \
    --creation-statements 'CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}};
                           GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}};'`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var err error
			if r.CreationStatements, err = statements(create); err != nil {
				return fmt.Errorf("--creation-statements: %w", err)
			}
			if r.RevocationStatements, err = statements(revoke); err != nil {
				return fmt.Errorf("--revocation-statements: %w", err)
			}
			if r.RenewStatements, err = statements(renewal); err != nil {
				return fmt.Errorf("--renew-statements: %w", err)
			}
			out, err := c.WriteDBRole(cmd.Context(), args[0], r)
			if err != nil {
				return err
			}
			return e.printDBRole(out)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&r.DBName, "db", "", "the connection this role's users are created on")
	f.StringArrayVar(&create, "creation-statements", nil, "SQL creating the user (or @file); repeatable")
	f.StringArrayVar(&revoke, "revocation-statements", nil, "SQL removing the user (default: end its sessions and drop it)")
	f.StringArrayVar(&renewal, "renew-statements", nil, "SQL run on renewal (PostgreSQL default: ALTER ROLE {{name}} VALID UNTIL {{expiration}})")
	f.StringVar(&r.DefaultTTL, "default-ttl", "", "lease lifetime when none is asked for (default 1h)")
	f.StringVar(&r.MaxTTL, "max-ttl", "", "renewals stop this long after issue (default 24h)")
	cmd.MarkFlagRequired("db")
	cmd.MarkFlagRequired("creation-statements")
	return cmd
}

func (e *env) printDBRole(r *client.DBRole) error {
	if e.json {
		return e.printJSON(r)
	}
	e.printf("Name:         %s\nConnection:   %s\nDefault TTL:  %s\nMax TTL:      %s\n", r.Name, r.DBName, r.DefaultTTL, r.MaxTTL)
	for _, group := range []struct {
		title string
		sts   []string
	}{{"Creation", r.CreationStatements}, {"Revocation", r.RevocationStatements}, {"Renewal", r.RenewStatements}} {
		if len(group.sts) > 0 {
			e.printf("%s statements:\n", group.title)
			for _, s := range group.sts {
				e.printf("  %s\n", strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  "))
			}
		}
	}
	return nil
}

func (e *env) dbRoleRead() *cobra.Command {
	return &cobra.Command{
		Use:   "read NAME",
		Short: "Show a role",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			out, err := c.ReadDBRole(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.printDBRole(out)
		}),
	}
}

func (e *env) dbRoleList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List roles",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			names, err := c.ListDBRoles(cmd.Context())
			if err != nil {
				return err
			}
			return e.printNames(names)
		}),
	}
}

func (e *env) dbRoleDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a role that has no live leases",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteDBRole(cmd.Context(), args[0]); err != nil {
				return err
			}
			e.printf("Deleted role %s\n", args[0])
			return nil
		}),
	}
}

func (e *env) dbCreds() *cobra.Command {
	var (
		ttl    string
		format string
	)
	cmd := &cobra.Command{
		Use:   "creds ROLE",
		Short: "Create a database user for ROLE and print it with its lease",
		Long: `Create a new database user with a random password. The password is shown
only now. The user lives as long as its lease: renew it with coffer lease renew,
end it early with coffer lease revoke.`,
		Example: `  coffer db creds readonly
  coffer db creds readonly --ttl 15m --format env   # PGUSER=... PGPASSWORD=... lines`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if ttl != "" {
				if _, err := time.ParseDuration(ttl); err != nil {
					return fmt.Errorf("--ttl: want a duration like 15m: %v", err)
				}
			}
			if format != "table" && format != "env" {
				return fmt.Errorf("--format: want table or env")
			}
			out, err := c.DBCredentials(cmd.Context(), args[0], ttl)
			if err != nil {
				return err
			}
			switch {
			case e.json:
				return e.printJSON(out)
			case format == "env":
				e.printf("DB_USERNAME=%s\nDB_PASSWORD=%s\nLEASE_ID=%s\n", out.Username, out.Password, out.LeaseID)
				return nil
			}
			e.printf("Username:   %s\nPassword:   %s\nLease ID:   %s\nLease:      %s (renewable: %v), expires %s\n",
				out.Username, out.Password, out.LeaseID, time.Duration(out.LeaseDuration)*time.Second, out.Renewable, fmtTime(out.ExpiresAt))
			return nil
		}),
	}
	cmd.Flags().StringVar(&ttl, "ttl", "", "lease lifetime (default: the role's default_ttl)")
	cmd.Flags().StringVar(&format, "format", "table", "table or env")
	return cmd
}
