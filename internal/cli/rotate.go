package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/rotation"
)

// secretRotate is `coffer secret rotate NAME [--cancel]`.
func (e *env) secretRotate() *cobra.Command {
	var cancel, immediate bool
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Rotate a secret now with its rotation policy, or --cancel the rotation in progress",
		Long: `Rotate a secret now: the new value is written as pending, set on the target,
tested there, then made current; the old value stays valid for the policy's grace
window (--immediate revokes it at once). The command waits for the outcome and exits
1 if the rotation did not complete.

--cancel stops a rotation in progress (for example one retrying against a target that
is down): it is rolled back if the current value still works on the target.

  coffer secret rotate prod/db/app
  coffer secret rotate prod/db/app --cancel`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var res *client.RotateResult
			var err error
			if cancel {
				res, err = c.CancelRotation(cmd.Context(), args[0])
			} else {
				res, err = c.Rotate(cmd.Context(), args[0], client.RotateOptions{Immediate: immediate})
			}
			if err != nil {
				return err
			}
			if e.json {
				if err := e.printJSON(res); err != nil {
					return err
				}
				if !cancel && !res.Rotated {
					return &exitError{1}
				}
				return nil
			}
			st := res.State
			switch {
			case cancel && st.Status == "rotating":
				e.printf("%s: cancel requested; the rotation running elsewhere stops after its current step\n", res.Name)
			case cancel:
				e.printf("%s: rotation cancelled (%s)\n", res.Name, strings.TrimPrefix(st.LastError, "cancelled: "))
			case res.Rotated:
				e.printf("Rotated %s: version %d is current\n", res.Name, res.Version)
				if st.RevokeAt != nil {
					e.printf("The previous version stays valid until %s\n", fmtTime(*st.RevokeAt))
				}
			default:
				fmt.Fprintf(e.stderr, "Rotation of %s did not complete: %s\n", res.Name, strings.TrimSpace(st.LastError))
				switch st.Status {
				case "retrying":
					fmt.Fprintf(e.stderr, "Status: retrying (attempt %d failed); next attempt %s. Cancel with: coffer secret rotate %s --cancel\n", st.Attempt, fmtTime(*st.RetryAt), res.Name)
				case "failed":
					fmt.Fprintf(e.stderr, "Status: failed; current is unchanged. Fix the cause, then run coffer secret rotate %s again\n", res.Name)
				}
				return &exitError{1}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&cancel, "cancel", false, "cancel the rotation in progress instead")
	cmd.Flags().BoolVar(&immediate, "immediate", false, "revoke the previous value at once, without the grace window")
	return cmd
}

// rotationCommand is `coffer rotation ...` (alias `coffer rotate ...`).
func (e *env) rotationCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "rotation", Aliases: []string{"rotate"}, Short: "Rotation policies and emergency rotation"}
	cmd.AddCommand(e.rotationSet(), e.rotationShow(), e.rotationDelete(), e.rotationPrefixes(), e.rotationEmergency())
	return cmd
}

func (e *env) rotationSet() *cobra.Command {
	var (
		every, cron, schedule, grace, jitter, rotator, optionsJSON string
		opts                                                       []string
		maxAttempts                                                int
		prefix                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "set NAME --rotator ROTATOR [--every 30d | --cron EXPR] [--grace 1h] [--option KEY=VALUE]...",
		Short: "Set the rotation policy of a secret, or with --prefix of every secret under a prefix",
		Long: `Set how a secret rotates. Rotators: password, postgresql, mysql, webhook (see
docs/rotation.md for their options). --option takes KEY=VALUE, where a dotted key sets
a nested field and VALUE is JSON when it parses as JSON (a number, true, a list) and a
string otherwise; repeat it for each option. --options takes the whole JSON object (or
@file).

  coffer rotation set prod/api-key --rotator password --every 30d --grace 24h --option length=40
  coffer rotation set prod/db/app --rotator postgresql --every 30d --grace 2h \
      --option strategy=alternating --option master_secret=prod/db/admin \
      --option users='["app_blue","app_green"]'
  coffer rotation set payments/ --prefix --rotator password --cron "0 3 * * mon"
  coffer rotation set ext/token --rotator webhook --every 7d --option url=https://rotator.internal/hook`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			n := 0
			for _, s := range []string{every, cron, schedule} {
				if s != "" {
					n++
				}
			}
			if n > 1 {
				return errors.New("give one of --every, --cron and --schedule")
			}
			p := client.RotationPolicy{Schedule: schedule, Grace: grace, Jitter: jitter, Rotator: rotator, MaxAttempts: maxAttempts}
			switch {
			case every != "":
				p.Schedule = "every " + every
			case cron != "":
				p.Schedule = cron
			}
			o, err := e.rotationOptions(optionsJSON, opts)
			if err != nil {
				return err
			}
			p.Options = o
			if prefix {
				out, err := c.SetPrefixRotation(cmd.Context(), args[0], p)
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(out)
				}
				e.printf("Set the rotation policy of every secret under %s without one of its own\n", out.Prefix)
				e.printPolicy(out.Policy, true)
				return nil
			}
			out, err := c.SetRotation(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(out)
			}
			e.printf("Set the rotation policy of %s\n", out.Name)
			e.printPolicy(out.Policy, true)
			if out.State != nil && out.State.NextDue != nil {
				e.printf("Next rotation:  %s\n", fmtTime(*out.State.NextDue))
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&rotator, "rotator", "", "password, postgresql, mysql or webhook")
	f.StringVar(&every, "every", "", "rotate every DURATION (30d, 12h, 2w)")
	f.StringVar(&cron, "cron", "", "rotate on a five-field cron schedule, in UTC")
	f.StringVar(&schedule, "schedule", "", "the schedule as stored (\"every 30d\" or a cron expression)")
	f.StringVar(&grace, "grace", "", "how long the previous value keeps working (e.g. 1h)")
	f.StringVar(&jitter, "jitter", "", "random delay added to each scheduled run (e.g. 10m)")
	f.StringArrayVar(&opts, "option", nil, "rotator option KEY=VALUE; repeatable (VALUE may hold commas and JSON lists)")
	f.StringVar(&optionsJSON, "options", "", "rotator options as a JSON object, or @file")
	f.IntVar(&maxAttempts, "max-attempts", 0, "failed attempts before the rotation is marked failed (default 5)")
	f.BoolVar(&prefix, "prefix", false, "NAME is a prefix: the policy applies to every secret under it")
	_ = cmd.MarkFlagRequired("rotator")
	return cmd
}

// rotationOptions builds the options object from --options and --option.
func (e *env) rotationOptions(whole string, kvs []string) (json.RawMessage, error) {
	obj := map[string]any{}
	if whole != "" {
		raw := []byte(whole)
		if strings.HasPrefix(whole, "@") {
			b, err := os.ReadFile(whole[1:])
			if err != nil {
				return nil, err
			}
			raw = b
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("--options: not a JSON object: %v", err)
		}
	}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--option %q: want KEY=VALUE", kv)
		}
		var val any = v
		var parsed any
		if json.Unmarshal([]byte(v), &parsed) == nil {
			val = parsed
		}
		if (k == "ca_cert" || k == "url" || k == "master_secret" || k == "signing_key") && !strings.HasPrefix(v, "\"") {
			val = v // always strings
			if k == "ca_cert" && strings.HasPrefix(v, "@") {
				b, err := os.ReadFile(v[1:])
				if err != nil {
					return nil, err
				}
				val = string(b)
			}
		}
		parts := strings.Split(k, ".")
		m := obj
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = val
	}
	if len(obj) == 0 {
		return nil, nil
	}
	return json.Marshal(obj)
}

func (e *env) printPolicy(p *client.RotationPolicy, showOptions bool) {
	if p == nil {
		return
	}
	e.printf("Rotator:        %s\n", p.Rotator)
	e.printf("Schedule:       %s\n", orText(p.Schedule, "on demand only"))
	if g := fmtDuration(p.Grace); g != "0s" {
		e.printf("Grace window:   %s\n", g)
	}
	if j := fmtDuration(p.Jitter); j != "0s" {
		e.printf("Jitter:         %s\n", j)
	}
	if showOptions && len(p.Options) > 0 && string(p.Options) != "{}" {
		e.printf("Options:        %s\n", p.Options)
	}
}

// fmtDuration writes a duration from the API the way policies are written
// ("1d", "2h", "1h30m"), whatever form the server used; "" is "0s".
func fmtDuration(s string) string {
	d, err := rotation.ParseDuration(s)
	if err != nil {
		return s
	}
	return rotation.FormatDuration(d)
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// printRotationState prints the rotation part of `secret describe` and `rotation show`.
func (e *env) printRotationState(s *client.RotationStatus) {
	if s.Policy != nil {
		src := "its own policy"
		if p, ok := strings.CutPrefix(s.Source, "prefix:"); ok {
			src = "the policy of prefix " + p
		}
		e.printf("Policy from:    %s\n", src)
		e.printPolicy(s.Policy, true)
	} else {
		e.printf("Policy:         none (removed)\n")
	}
	st := s.State
	if st == nil {
		return
	}
	status := st.Status
	if status == "failed" {
		status = "FAILED"
	}
	e.printf("Status:         %s\n", status)
	if st.Step != "" {
		e.printf("In progress:    step %s, pending version %d, attempt %d, started %s\n", st.Step, st.PendingVersion, st.Attempt+1, fmtTimePtr(st.StartedAt))
	}
	if st.RetryAt != nil {
		e.printf("Next attempt:   %s\n", fmtTime(*st.RetryAt))
	}
	if st.LastError != "" {
		e.printf("Last error:     %s (%s)\n", st.LastError, fmtTimePtr(st.LastErrorAt))
	}
	if st.LastRotatedAt != nil {
		e.printf("Last rotated:   %s (version %d)\n", fmtTime(*st.LastRotatedAt), st.LastVersion)
	}
	if st.NextDue != nil {
		e.printf("Next rotation:  %s\n", fmtTime(*st.NextDue))
	}
	if st.RevokeAt != nil {
		e.printf("Grace ends:     %s (version %d is revoked then)\n", fmtTime(*st.RevokeAt), st.RevokeVersion)
	}
	e.printf("Rotations:      %d succeeded, %d failed\n", st.Rotations, st.Failures)
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

// describeRotation prints the rotation section of `secret describe`, if
// the secret has a rotation policy the caller may see.
func (e *env) describeRotation(ctx context.Context, c *client.Client, name string) {
	s, err := c.Rotation(ctx, name)
	if err != nil {
		return // no policy, or not allowed to see it: nothing to show
	}
	e.printf("\nRotation\n")
	e.printRotationState(s)
}

// rotationFor returns a secret's rotation status for JSON output, or nil.
func rotationFor(ctx context.Context, c *client.Client, name string) *client.RotationStatus {
	s, err := c.Rotation(ctx, name)
	if err != nil {
		return nil
	}
	return s
}

func (e *env) rotationShow() *cobra.Command {
	var prefix bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a secret's rotation policy and status (or --prefix a prefix's policy)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if prefix {
				p, err := c.PrefixRotation(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if e.json {
					return e.printJSON(p)
				}
				e.printf("Prefix:         %s\n", p.Prefix)
				e.printPolicy(p.Policy, true)
				return nil
			}
			s, err := c.Rotation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(s)
			}
			e.printf("Name:           %s\n", s.Name)
			e.printRotationState(s)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&prefix, "prefix", false, "NAME is a prefix")
	return cmd
}

func (e *env) rotationDelete() *cobra.Command {
	var prefix bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a secret's rotation policy (or --prefix a prefix's)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var err error
			if prefix {
				err = c.DeletePrefixRotation(cmd.Context(), args[0])
			} else {
				err = c.DeleteRotation(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			e.printf("Removed the rotation policy of %s\n", args[0])
			return nil
		}),
	}
	cmd.Flags().BoolVar(&prefix, "prefix", false, "NAME is a prefix")
	return cmd
}

func (e *env) rotationPrefixes() *cobra.Command {
	return &cobra.Command{
		Use:   "prefixes",
		Short: "List the prefixes that have a rotation policy",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ps, err := c.RotationPrefixes(cmd.Context())
			if err != nil {
				return err
			}
			return e.printNames(ps)
		}),
	}
}

func (e *env) rotationEmergency() *cobra.Command {
	var (
		prefix     string
		readableBy []string
		keepGrace  bool
	)
	cmd := &cobra.Command{
		Use:   "emergency --prefix PREFIX | --readable-by POLICY",
		Short: "Rotate every secret under a prefix, or readable by a policy, now, and report",
		Long: `Rotate every secret under PREFIX that your token may rotate, now, revoking the
previous values at once (they are presumed compromised; --keep-grace keeps each
policy's grace window). With --readable-by, only (or, without --prefix, all) the
secrets a token holding those policies could read: "rotate everything the payments
service can read". A grant counts whatever its conditions (source address, hours,
MFA). Prints what rotated and what failed, and exits 1 if anything failed. Needs
rotate on sys/rotation/emergency and on each secret.

  coffer rotate emergency --prefix payments/
  coffer rotate emergency --readable-by payments`,
		Args: cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if prefix == "" && len(readableBy) == 0 {
				return errors.New("give --prefix, --readable-by, or both")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Minute)
			defer cancel()
			rep, err := c.EmergencyRotation(ctx, client.EmergencyInput{Prefix: prefix, ReadableBy: readableBy, KeepGrace: keepGrace})
			if err != nil {
				return err
			}
			if e.json {
				if err := e.printJSON(rep); err != nil {
					return err
				}
			} else {
				what := rep.Prefix
				if what == "" {
					what = "every secret"
				}
				if len(rep.ReadableBy) > 0 {
					what += " readable by " + strings.Join(rep.ReadableBy, ", ")
				}
				e.printf("Emergency rotation of %s: %d rotated, %d failed\n", what, len(rep.Rotated), len(rep.Failed))
				for _, r := range rep.Rotated {
					e.printf("  rotated  %s (version %d)\n", r.Name, r.Version)
				}
				for _, f := range rep.Failed {
					e.printf("  FAILED   %s: %s\n", f.Name, f.Error)
				}
				if rep.Denied > 0 {
					e.printf("  %d secret(s) under the prefix your token may not rotate were left alone\n", rep.Denied)
				}
				if rep.Truncated {
					e.printf("  more secrets remain under the prefix: run the command again\n")
				}
			}
			if len(rep.Failed) > 0 {
				return &exitError{1}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "rotate every secret under this prefix (e.g. payments/)")
	cmd.Flags().StringSliceVar(&readableBy, "readable-by", nil, "only secrets a token with these policies could read")
	cmd.Flags().BoolVar(&keepGrace, "keep-grace", false, "keep each policy's grace window instead of revoking at once")
	return cmd
}
