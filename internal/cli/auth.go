package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
)

// tokenFlags are the token settings every role or user grants.
type tokenFlags struct {
	policies            []string
	ttl, maxTTL, period string
	uses                int
}

func (t *tokenFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSliceVar(&t.policies, "policy", nil, "policy for issued tokens; repeatable")
	f.StringVar(&t.ttl, "token-ttl", "", "lifetime of issued tokens (default 1h)")
	f.StringVar(&t.maxTTL, "token-max-ttl", "", "renewals stop at this age (default 24h)")
	f.StringVar(&t.period, "token-period", "", "issue periodic tokens renewable by this period")
	f.IntVar(&t.uses, "token-uses", 0, "requests per issued token (0: unlimited)")
}

func (t *tokenFlags) into(body map[string]any) {
	if len(t.policies) > 0 {
		body["token_policies"] = t.policies
	}
	for k, v := range map[string]string{"token_ttl": t.ttl, "token_max_ttl": t.maxTTL, "token_period": t.period} {
		if v != "" {
			body[k] = v
		}
	}
	if t.uses > 0 {
		body["token_num_uses"] = t.uses
	}
}

func (e *env) authCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Configure auth methods: approle, jwt, userpass, cert",
		Long: `Configure how workloads and people log in. Each method issues tokens whose policies
its role (or user) names. See docs/least-privilege.md.`,
	}
	cmd.AddCommand(e.authApprole(), e.authJWT(), e.authUserpass(), e.authCert(), e.authRoles(), e.authReadRole(), e.authDeleteRole())
	return cmd
}

// send posts a body to a path and prints the answer.
func (e *env) send(cmd *cobra.Command, method, path string, body any) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	var out json.RawMessage
	if err := c.Do(cmd.Context(), method, path, body, &out); err != nil {
		return err
	}
	if len(out) == 0 {
		if !e.json {
			e.printf("Done.\n")
		}
		return nil
	}
	var v any
	json.Unmarshal(out, &v)
	return e.printJSON(v)
}

func (e *env) authApprole() *cobra.Command {
	cmd := &cobra.Command{Use: "approle", Short: "AppRole: role_id + secret_id logins for machines"}
	var tf tokenFlags
	var sidTTL string
	var sidUses int
	var cidrs []string
	put := &cobra.Command{
		Use:   "put-role NAME",
		Short: "Create or replace a role",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"secret_id_num_uses": sidUses}
			tf.into(body)
			if sidTTL != "" {
				body["secret_id_ttl"] = sidTTL
			}
			if len(cidrs) > 0 {
				body["secret_id_bound_cidrs"] = cidrs
			}
			return e.send(cmd, "PUT", "/v1/auth/approle/role/"+args[0], body)
		},
	}
	tf.register(put)
	put.Flags().StringVar(&sidTTL, "secret-id-ttl", "", "lifetime of secret_ids (default: none)")
	put.Flags().IntVar(&sidUses, "secret-id-uses", 0, "logins per secret_id (0: unlimited)")
	put.Flags().StringSliceVar(&cidrs, "secret-id-cidr", nil, "logins must come from this CIDR; repeatable")

	roleID := &cobra.Command{
		Use:   "role-id NAME",
		Short: "Print a role's role_id",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var out struct {
				RoleID string `json:"role_id"`
			}
			if err := c.Do(cmd.Context(), "GET", "/v1/auth/approle/role/"+args[0]+"/role-id", nil, &out); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(out)
			}
			e.printf("%s\n", out.RoleID)
			return nil
		}),
	}
	var meta, sidCIDRs []string
	secretID := &cobra.Command{
		Use:   "secret-id NAME",
		Short: "Generate a secret_id for a role (printed once)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := parseTags(meta)
			if err != nil {
				return err
			}
			var out struct {
				SecretID string `json:"secret_id"`
				Accessor string `json:"secret_id_accessor"`
				Expires  any    `json:"expires_at"`
			}
			if err := c.Do(cmd.Context(), "POST", "/v1/auth/approle/role/"+args[0]+"/secret-id", map[string]any{"metadata": m, "cidrs": sidCIDRs}, &out); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(out)
			}
			e.printf("%s\n", out.SecretID)
			fmt.Fprintf(e.stderr, "accessor: %s\n", out.Accessor)
			return nil
		}),
	}
	secretID.Flags().StringSliceVar(&meta, "meta", nil, "KEY=VALUE copied into tokens; repeatable")
	secretID.Flags().StringSliceVar(&sidCIDRs, "cidr", nil, "narrow logins with this secret_id to a CIDR; repeatable")
	cmd.AddCommand(put, roleID, secretID)
	return cmd
}

func (e *env) authJWT() *cobra.Command {
	cmd := &cobra.Command{Use: "jwt", Short: "JWT/OIDC: Kubernetes, GitHub Actions, GitLab CI and cloud workload identity"}
	var discovery, jwksURL, jwksFile, issuer string
	var keyFiles []string
	config := &cobra.Command{
		Use:   "config",
		Short: "Set where the issuer's keys come from (one of the four sources)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{}
			if discovery != "" {
				body["oidc_discovery_url"] = discovery
			}
			if jwksURL != "" {
				body["jwks_url"] = jwksURL
			}
			if jwksFile != "" {
				b, err := os.ReadFile(jwksFile)
				if err != nil {
					return err
				}
				body["jwks"] = string(b)
			}
			var keys []string
			for _, f := range keyFiles {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				keys = append(keys, string(b))
			}
			if len(keys) > 0 {
				body["public_keys"] = keys
			}
			if issuer != "" {
				body["bound_issuer"] = issuer
			}
			return e.send(cmd, "PUT", "/v1/auth/jwt/config", body)
		},
	}
	f := config.Flags()
	f.StringVar(&discovery, "discovery-url", "", "OIDC issuer URL (discovery at /.well-known/openid-configuration)")
	f.StringVar(&jwksURL, "jwks-url", "", "URL of a JWKS")
	f.StringVar(&jwksFile, "jwks-file", "", "file holding a static JWKS")
	f.StringSliceVar(&keyFiles, "public-key-file", nil, "PEM public key file; repeatable")
	f.StringVar(&issuer, "bound-issuer", "", "required iss (with --jwks-url, --jwks-file, --public-key-file)")

	var tf tokenFlags
	var aud, claims, mappings []string
	var subject, userClaim string
	put := &cobra.Command{
		Use:   "put-role NAME",
		Short: "Create or replace a role: which tokens may log in and what they get",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(aud) == 0 {
				return errors.New("--audience is required")
			}
			body := map[string]any{"bound_audiences": aud}
			tf.into(body)
			if subject != "" {
				body["bound_subject"] = subject
			}
			if userClaim != "" {
				body["user_claim"] = userClaim
			}
			if len(claims) > 0 {
				bc := map[string][]string{}
				for _, kv := range claims {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("--claim %q: want NAME=VALUE", kv)
					}
					bc[k] = append(bc[k], v)
				}
				body["bound_claims"] = bc
			}
			if len(mappings) > 0 {
				m, err := parseTags(mappings)
				if err != nil {
					return err
				}
				body["claim_mappings"] = m
			}
			return e.send(cmd, "PUT", "/v1/auth/jwt/role/"+args[0], body)
		},
	}
	tf.register(put)
	pf := put.Flags()
	pf.StringSliceVar(&aud, "audience", nil, "accepted aud; repeatable")
	pf.StringVar(&subject, "subject", "", "required sub")
	pf.StringSliceVar(&claims, "claim", nil, "NAME=VALUE required claim (VALUE may end in *; /a/b for nested); repeatable")
	pf.StringSliceVar(&mappings, "claim-mapping", nil, "CLAIM=KEY copies a claim into token metadata; repeatable")
	pf.StringVar(&userClaim, "user-claim", "", "claim that names the identity (default sub)")
	cmd.AddCommand(config, put)
	return cmd
}

func (e *env) authUserpass() *cobra.Command {
	cmd := &cobra.Command{Use: "userpass", Short: "Usernames and passwords for people, with TOTP MFA"}
	var tf tokenFlags
	var mfa bool
	put := &cobra.Command{
		Use:   "put-user NAME",
		Short: "Create or update a user (the password is prompted, or read from stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			tf.into(body)
			if cmd.Flags().Changed("mfa-required") {
				body["mfa_required"] = mfa
			}
			pw, err := e.readSecretInput(nil, "Password for "+args[0]+": ")
			if err == nil {
				body["password"] = pw
			}
			return e.send(cmd, "PUT", "/v1/auth/userpass/users/"+args[0], body)
		},
	}
	tf.register(put)
	put.Flags().BoolVar(&mfa, "mfa-required", false, "require a TOTP code at every login once enrolled")
	enroll := &cobra.Command{
		Use:   "enroll-totp NAME",
		Short: "Start TOTP enrolment: prints the secret and otpauth URL for an authenticator app",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.send(cmd, "POST", "/v1/auth/userpass/users/"+args[0]+"/totp", map[string]any{})
		},
	}
	confirm := &cobra.Command{
		Use:   "confirm-totp NAME CODE",
		Short: "Finish TOTP enrolment with a current code",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.send(cmd, "POST", "/v1/auth/userpass/users/"+args[0]+"/totp/confirm", map[string]string{"code": args[1]})
		},
	}
	unlock := &cobra.Command{
		Use:   "unlock NAME",
		Short: "Clear a lockout after repeated failed logins",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.send(cmd, "POST", "/v1/auth/userpass/users/"+args[0]+"/unlock", map[string]any{})
		},
	}
	cmd.AddCommand(put, enroll, confirm, unlock)
	return cmd
}

func (e *env) authCert() *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "TLS client certificates"}
	var tf tokenFlags
	var caFile string
	var cns, dns, emails, uris []string
	put := &cobra.Command{
		Use:   "put-role NAME --ca-file CA.pem",
		Short: "Create or replace a role: a trusted CA and the names it may certify",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("--ca-file: %w", err)
			}
			body := map[string]any{"certificate": string(b), "allowed_common_names": cns, "allowed_dns_sans": dns,
				"allowed_email_sans": emails, "allowed_uri_sans": uris}
			tf.into(body)
			return e.send(cmd, "PUT", "/v1/auth/cert/role/"+args[0], body)
		},
	}
	tf.register(put)
	f := put.Flags()
	f.StringVar(&caFile, "ca-file", "", "PEM CA bundle to trust")
	f.StringSliceVar(&cns, "allowed-cn", nil, "allowed common name (glob); repeatable")
	f.StringSliceVar(&dns, "allowed-dns", nil, "allowed DNS SAN (glob); repeatable")
	f.StringSliceVar(&emails, "allowed-email", nil, "allowed email SAN (glob); repeatable")
	f.StringSliceVar(&uris, "allowed-uri", nil, "allowed URI SAN (glob); repeatable")
	cmd.AddCommand(put)
	return cmd
}

func checkMethod(m string) error {
	switch m {
	case "approle", "jwt", "cert":
		return nil
	}
	return fmt.Errorf("method %q: want approle, jwt or cert (userpass users: coffer auth userpass)", m)
}

func (e *env) authRoles() *cobra.Command {
	return &cobra.Command{
		Use:   "roles METHOD",
		Short: "List the roles of an auth method",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkMethod(args[0]); err != nil {
				return err
			}
			return e.send(cmd, "GET", "/v1/auth/"+args[0]+"/role", nil)
		},
	}
}

func (e *env) authReadRole() *cobra.Command {
	return &cobra.Command{
		Use:   "read-role METHOD NAME",
		Short: "Show a role",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkMethod(args[0]); err != nil {
				return err
			}
			return e.send(cmd, "GET", "/v1/auth/"+args[0]+"/role/"+args[1], nil)
		},
	}
}

func (e *env) authDeleteRole() *cobra.Command {
	return &cobra.Command{
		Use:   "delete-role METHOD NAME",
		Short: "Delete a role (approle: its secret_ids stop working)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkMethod(args[0]); err != nil {
				return err
			}
			return e.send(cmd, "DELETE", "/v1/auth/"+args[0]+"/role/"+args[1], nil)
		},
	}
}
