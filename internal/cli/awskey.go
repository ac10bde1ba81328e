package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

// awsKey is an access key as the admin API lists it.
type awsKey struct {
	AccessKeyID string     `json:"access_key_id"`
	Name        string     `json:"name"`
	Policies    []string   `json:"policies"`
	CreatedAt   time.Time  `json:"created_at"`
	CreatedBy   string     `json:"created_by,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

func (e *env) awsKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aws-key",
		Short: "Access keys for AWS SDKs and the AWS CLI (the AWS Secrets Manager API)",
		Long: `Create, list and delete AWS-style access keys. A request signed with a key acts
with the key's policies, exactly as a token with those policies would.

Point an AWS SDK or the AWS CLI at $COFFER_ADDR/aws, e.g.

  export AWS_ENDPOINT_URL_SECRETS_MANAGER=$COFFER_ADDR/aws
  aws secretsmanager get-secret-value --secret-id prod/db/password`,
	}
	cmd.AddCommand(e.awsKeyCreate(), e.awsKeyList(), e.awsKeyDelete())
	return cmd
}

func (e *env) awsKeyCreate() *cobra.Command {
	var (
		name     string
		policies []string
		ttl      string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an access key; its secret is shown once",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			body := map[string]any{"name": name, "policies": policies}
			if ttl != "" {
				if _, err := time.ParseDuration(ttl); err != nil {
					return fmt.Errorf("--ttl: want a duration like 720h: %v", err)
				}
				body["ttl"] = ttl
			}
			var out struct {
				AccessKeyID     string `json:"access_key_id"`
				SecretAccessKey string `json:"secret_access_key"`
				Key             awsKey `json:"key"`
			}
			if err := c.Do(cmd.Context(), "POST", "/v1/auth/awskey/keys", body, &out); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(out)
			}
			expires := "never"
			if out.Key.ExpiresAt != nil {
				expires = fmtTime(*out.Key.ExpiresAt)
			}
			e.printf(`Access key ID:     %s
Secret access key: %s
Policies:          %s
Expires:           %s

The secret access key is shown only now. To use the key with an AWS SDK or the AWS CLI:

  export AWS_ACCESS_KEY_ID=%s
  export AWS_SECRET_ACCESS_KEY=%s
  export AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL_SECRETS_MANAGER=%s/aws
`, out.AccessKeyID, out.SecretAccessKey, strings.Join(out.Key.Policies, ", "), expires,
				out.AccessKeyID, out.SecretAccessKey, strings.TrimRight(c.Address(), "/"))
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "who holds the key, e.g. payments-api (required)")
	f.StringSliceVar(&policies, "policy", nil, "policy the key acts with; repeatable")
	f.StringVar(&ttl, "ttl", "", "lifetime, e.g. 720h (default: no expiry)")
	cmd.MarkFlagRequired("name")
	return cmd
}

func (e *env) awsKeyList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List access keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			var out struct {
				Keys []awsKey `json:"keys"`
			}
			if err := c.Do(cmd.Context(), "GET", "/v1/auth/awskey/keys", nil, &out); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(out.Keys)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCESS KEY ID\tNAME\tPOLICIES\tCREATED\tEXPIRES")
			for _, k := range out.Keys {
				expires := "never"
				if k.ExpiresAt != nil {
					expires = fmtTime(*k.ExpiresAt)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.AccessKeyID, k.Name, strings.Join(k.Policies, ","), fmtTime(k.CreatedAt), expires)
			}
			return tw.Flush()
		}),
	}
}

func (e *env) awsKeyDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ACCESS_KEY_ID",
		Short: "Delete an access key; requests signed with it are refused at once",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.Do(cmd.Context(), "DELETE", "/v1/auth/awskey/keys/"+args[0], nil, nil); err != nil {
				return err
			}
			if !e.json {
				e.printf("Deleted access key %s.\n", args[0])
			}
			return nil
		}),
	}
}
