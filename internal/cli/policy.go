package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/policy"
)

func (e *env) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Policies as code: fmt, validate, plan, apply, explain",
		Long: `Policies are HCL files kept in git, one policy per file, named after the file
(payments.hcl is the policy "payments"). See docs/policies.md.

  coffer policy fmt -f policies/        # canonical formatting, in place
  coffer policy validate -f policies/   # parse and compile locally
  coffer policy plan -f policies/       # what apply would change on the server
  coffer policy apply -f policies/      # apply atomically (history is kept)`,
	}
	cmd.AddCommand(e.policyFmt(), e.policyValidate(), e.policyPlan(), e.policyApply(), e.policyRead(),
		e.policyList(), e.policyDelete(), e.policyHistory(), e.policyRestore(), e.policyExplain())
	return cmd
}

// policyFiles reads the policy files named by -f: a file or a directory of *.hcl.
func policyFiles(path string) (map[string]string, map[string]string, error) {
	if path == "" {
		return nil, nil, errors.New("give -f FILE or -f DIR")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	var files []string
	if st.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.hcl")); err != nil {
			return nil, nil, err
		}
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("%s holds no *.hcl files", path)
		}
	} else {
		files = []string{path}
	}
	srcs, paths := map[string]string{}, map[string]string{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hcl")
		if err := policy.ValidateName(name); err != nil {
			return nil, nil, fmt.Errorf("%s: the file name is the policy name: %w", f, err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		srcs[name], paths[name] = string(b), f
	}
	return srcs, paths, nil
}

// validateLocal parses and compiles every policy and reports all problems.
func validateLocal(srcs, paths map[string]string) error {
	var problems []string
	var parsed []*policy.Policy
	for _, name := range sortedKeys(srcs) {
		p, err := policy.Parse(name, []byte(srcs[name]))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", paths[name], err))
			continue
		}
		parsed = append(parsed, p)
	}
	if len(problems) == 0 {
		if _, err := policy.Compile(parsed...); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (e *env) policyFmt() *cobra.Command {
	var path string
	var check bool
	cmd := &cobra.Command{
		Use:   "fmt -f FILE|DIR",
		Short: "Rewrite policy files in canonical format (--check: only report)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srcs, paths, err := policyFiles(path)
			if err != nil {
				return err
			}
			var changed []string
			for _, name := range sortedKeys(srcs) {
				out, err := policy.Format([]byte(srcs[name]))
				if err != nil {
					return fmt.Errorf("%s: %w", paths[name], err)
				}
				if bytes.Equal(out, []byte(srcs[name])) {
					continue
				}
				changed = append(changed, paths[name])
				if !check {
					if err := writeFileAtomic(paths[name], out, 0o644); err != nil {
						return err
					}
				}
			}
			for _, f := range changed {
				e.printf("%s\n", f)
			}
			if check && len(changed) > 0 {
				return &exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "file", "f", "", "policy file or directory of *.hcl")
	cmd.Flags().BoolVar(&check, "check", false, "list files that need formatting and exit 1 if any")
	return cmd
}

func (e *env) policyValidate() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR",
		Short: "Parse and compile policies locally; no server needed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srcs, paths, err := policyFiles(path)
			if err != nil {
				return err
			}
			if err := validateLocal(srcs, paths); err != nil {
				return err
			}
			if !e.json {
				e.printf("%d policies are valid\n", len(srcs))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "file", "f", "", "policy file or directory of *.hcl")
	return cmd
}

func (e *env) printPlan(p *client.PolicyPlan) {
	for _, n := range p.Create {
		e.printf("+ %s (create)\n", n)
	}
	for _, n := range p.Update {
		e.printf("~ %s (update)\n", n)
	}
	for _, n := range p.Delete {
		e.printf("- %s (delete)\n", n)
	}
	e.printf("%d to create, %d to update, %d to delete, %d unchanged\n", len(p.Create), len(p.Update), len(p.Delete), len(p.Unchanged))
}

func (e *env) policyPlanOrApply(apply bool) *cobra.Command {
	var path string
	var prune bool
	use, short := "plan", "Show what apply would change on the server"
	if apply {
		use, short = "apply", "Make the server's policies match the files, atomically"
	}
	cmd := &cobra.Command{
		Use:   use + " -f FILE|DIR",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			srcs, paths, err := policyFiles(path)
			if err != nil {
				return err
			}
			if err := validateLocal(srcs, paths); err != nil {
				return err
			}
			var p *client.PolicyPlan
			if apply {
				p, err = c.ApplyPolicies(cmd.Context(), srcs, prune)
			} else {
				p, err = c.PlanPolicies(cmd.Context(), srcs, prune)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(p)
			}
			e.printPlan(p)
			if apply {
				e.printf("Applied.\n")
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&path, "file", "f", "", "policy file or directory of *.hcl")
	cmd.Flags().BoolVar(&prune, "prune", false, "also delete server policies that have no file")
	return cmd
}

func (e *env) policyPlan() *cobra.Command  { return e.policyPlanOrApply(false) }
func (e *env) policyApply() *cobra.Command { return e.policyPlanOrApply(true) }

func (e *env) policyRead() *cobra.Command {
	return &cobra.Command{
		Use:   "read NAME",
		Short: "Print a policy's source",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			p, err := c.ReadPolicy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(p)
			}
			e.printf("%s", p.Source)
			return nil
		}),
	}
}

func (e *env) policyList() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the server's policies",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ps, err := c.ListPolicies(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(ps)
			}
			for _, p := range ps {
				e.printf("%s\t(revision %d)\n", p.Name, p.Revision)
			}
			return nil
		}),
	}
}

func (e *env) policyDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy (its history stays, so it can be restored)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeletePolicy(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !e.json {
				e.printf("Deleted policy %s\n", args[0])
			}
			return nil
		}),
	}
}

func (e *env) policyHistory() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List a policy's revisions",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			h, err := c.PolicyHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(h)
			}
			for _, p := range h {
				what := "written"
				if p.Deleted {
					what = "deleted"
				}
				e.printf("revision %d\t%s\t%s by %s\n", p.Revision, what, fmtTime(p.UpdatedAt), orDash(p.UpdatedBy))
			}
			return nil
		}),
	}
}

func (e *env) policyRestore() *cobra.Command {
	var rev int
	cmd := &cobra.Command{
		Use:   "restore NAME --revision N",
		Short: "Make an earlier revision of a policy current again",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if rev < 1 {
				return errors.New("give --revision N (see coffer policy history NAME)")
			}
			p, err := c.RestorePolicy(cmd.Context(), args[0], rev)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(p)
			}
			e.printf("Restored %s from revision %d as revision %d\n", p.Name, rev, p.Revision)
			return nil
		}),
	}
	cmd.Flags().IntVar(&rev, "revision", 0, "revision to restore")
	return cmd
}

func (e *env) policyExplain() *cobra.Command {
	var in client.ExplainInput
	var tokenFlag string
	cmd := &cobra.Command{
		Use:   "explain --path P --op CAPABILITY [--token T|- | --accessor A]",
		Short: "Show which rule allows or denies a request, to debug access denied",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			if tokenFlag != "" {
				tok, err := e.readSecretInput([]string{tokenFlag}, "")
				if err != nil {
					return err
				}
				in.Token = tok
			}
			ex, err := c.ExplainPolicy(cmd.Context(), in)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(ex)
			}
			var d struct {
				Policy      string `json:"policy"`
				Rule        string `json:"rule"`
				Reason      string `json:"reason"`
				Line        int    `json:"line"`
				MFARequired bool   `json:"mfa_required"`
			}
			json.Unmarshal(ex.Decision, &d)
			verdict := "DENIED"
			if ex.Allowed {
				verdict = "ALLOWED"
			}
			e.printf("%s: %s on %q for a token with policies [%s]\n", verdict, in.Capability, in.Path, strings.Join(ex.Policies, ", "))
			switch {
			case ex.Root:
				e.printf("  the root policy allows everything\n")
			case d.Policy != "":
				e.printf("  decided by policy %q, rule path %q (line %d): %s\n", d.Policy, d.Rule, d.Line, d.Reason)
			default:
				e.printf("  %s\n", d.Reason)
			}
			var matches []struct {
				Policy           string   `json:"policy"`
				Rule             string   `json:"rule"`
				Line             int      `json:"line"`
				Capabilities     []string `json:"capabilities"`
				ConditionMet     bool     `json:"condition_met"`
				FailedConditions []string `json:"failed_conditions"`
			}
			json.Unmarshal(ex.Matches, &matches)
			if len(matches) > 0 {
				e.printf("Matching rules:\n")
			}
			for _, m := range matches {
				cond := ""
				if !m.ConditionMet {
					cond = " (condition not met: " + strings.Join(m.FailedConditions, ", ") + ")"
				}
				e.printf("  %s:%d path %q capabilities [%s]%s\n", m.Policy, m.Line, m.Rule, strings.Join(m.Capabilities, ", "), cond)
			}
			if !ex.Allowed {
				return &exitError{3}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Path, "path", "", "secret name or sys/... path")
	f.StringVar(&in.Capability, "op", "", "capability: read, list, create, update, delete, destroy, rotate, admin")
	f.StringVar(&tokenFlag, "token", "", "explain for another token (- reads it from stdin, keeping it out of ps)")
	f.StringVar(&in.Accessor, "accessor", "", "explain for the token with this accessor")
	f.StringVar(&in.Source, "source", "", "client IP address to assume (default: yours)")
	return cmd
}
