package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/coffer-dev/coffer/client"
)

// maxInput bounds values read from stdin or files; the server's limit is 64 KiB.
const maxInput = 1 << 20

func (e *env) secretCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Aliases: []string{"secrets"}, Short: "Store, read and manage secrets"}
	cmd.AddCommand(e.secretPut(), e.secretGet(), e.secretDescribe(), e.secretList(), e.secretHistory(),
		e.secretStage(), e.secretRollback(), e.secretDelete(), e.secretRestore(), e.secretDestroy(), e.secretUpdate(), e.secretRotate())
	return cmd
}

// clientCmd wraps a command body that needs a client.
func (e *env) clientCmd(run func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := e.client()
		if err != nil {
			return err
		}
		return run(cmd, c, args)
	}
}

// readValue takes a value from an argument, "-" (stdin) or "@file".
func (e *env) readValue(arg string) ([]byte, bool, error) {
	var r io.Reader
	switch {
	case arg == "-":
		r = e.stdin
	case strings.HasPrefix(arg, "@"):
		f, err := os.Open(arg[1:])
		if err != nil {
			return nil, false, err
		}
		defer f.Close()
		r = f
	default:
		return []byte(arg), false, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, true, err
	}
	if len(b) > maxInput {
		return nil, true, fmt.Errorf("value is larger than %d bytes", maxInput)
	}
	return b, true, nil
}

func parseTags(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--tag %q: want KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

func (e *env) secretPut() *cobra.Command {
	var (
		typ, token, desc, expires string
		cas, maxVersions          int
		stages, tags              []string
	)
	cmd := &cobra.Command{
		Use:   "put NAME VALUE|-|@FILE",
		Short: "Write a new version of a secret (created if new)",
		Long: `Write a new version of a secret. The value comes from the argument, from stdin (-)
or from a file (@path). It becomes the current version unless --stage says otherwise.

  coffer secret put prod/db/password 's3cr3t'
  coffer secret put prod/db/config @config.json --type json
  openssl rand 32 | coffer secret put prod/hmac-key - --type binary`,
		Args: cobra.ExactArgs(2),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			data, fromInput, err := e.readValue(args[1])
			if err != nil {
				return err
			}
			if typ == "" {
				typ = "text"
				if fromInput && !utf8.Valid(data) {
					typ = "binary"
				}
			}
			in := client.PutInput{IdempotencyToken: token, Stages: stages, Description: desc, MaxVersions: maxVersions}
			switch typ {
			case "text":
				s := string(data)
				in.Text = &s
			case "json":
				if !json.Valid(data) {
					return errors.New("value is not valid JSON (--type json)")
				}
				in.JSON = json.RawMessage(bytes.TrimSpace(data))
			case "binary":
				in.Bytes = data
			default:
				return fmt.Errorf("--type %q: want text, json or binary", typ)
			}
			if cmd.Flags().Changed("cas") {
				in.CAS = &cas
			}
			if in.Tags, err = parseTags(tags); err != nil {
				return err
			}
			if expires != "" {
				t, err := parseTime(expires)
				if err != nil {
					return fmt.Errorf("--expires-at: %w", err)
				}
				in.ExpiresAt = &t
			}
			res, err := c.Put(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(res)
			}
			switch {
			case res.Replay:
				e.printf("%s: version %d already written with this idempotency token; nothing changed\n", res.Name, res.Version)
			case res.Created:
				e.printf("Created %s version %d (%s)\n", res.Name, res.Version, strings.Join(res.Stages, ", "))
			default:
				e.printf("Wrote %s version %d (%s)\n", res.Name, res.Version, strings.Join(res.Stages, ", "))
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "text, json or binary (default text; binary for non-UTF-8 input)")
	f.IntVar(&cas, "cas", 0, "write only if the latest version is this number (0: only if the secret does not exist)")
	f.StringVar(&token, "idempotency-token", "", "retry-safe token: the same token and value never make a second version")
	f.StringSliceVar(&stages, "stage", nil, "stages for the new version (default current); repeatable")
	f.StringVar(&desc, "description", "", "description (when creating)")
	f.StringSliceVar(&tags, "tag", nil, "KEY=VALUE tag (when creating); repeatable")
	f.IntVar(&maxVersions, "max-versions", 0, "versions to keep (when creating; default 10)")
	f.StringVar(&expires, "expires-at", "", "refuse reads after this time (RFC 3339, or a duration like 720h)")
	return cmd
}

// parseTime accepts an RFC 3339 time or a duration from now.
func parseTime(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(d).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time like 2027-01-31T00:00:00Z or a duration like 720h")
	}
	return t, nil
}

func (e *env) secretGet() *cobra.Command {
	var (
		version int
		stage   string
		field   string
	)
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a secret's value (bare, so $(coffer secret get NAME) works)",
		Long: `Print the current value of a secret, exactly as stored, so that
$(coffer secret get NAME) works. --version or --stage picks another version;
--field picks one field of a JSON value; --json prints the value with its metadata.`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			sel := client.Current()
			switch {
			case version != 0 && stage != "":
				return errors.New("give --version or --stage, not both")
			case version != 0:
				sel = client.Version(version)
			case stage != "":
				sel = client.Stage(stage)
			}
			s, err := c.Get(cmd.Context(), args[0], sel)
			if err != nil {
				return err
			}
			out := s.Data
			if field != "" {
				if s.Type != "json" {
					return fmt.Errorf("--field needs a JSON value; %s is %s", s.Name, s.Type)
				}
				var obj map[string]json.RawMessage
				if err := json.Unmarshal(s.Data, &obj); err != nil {
					return fmt.Errorf("--field needs a JSON object")
				}
				raw, ok := obj[field]
				if !ok {
					return fmt.Errorf("field %q is not in %s", field, s.Name)
				}
				var str string
				if json.Unmarshal(raw, &str) == nil {
					out = []byte(str)
				} else {
					out = raw
				}
			}
			if e.json {
				v := map[string]any{"name": s.Name, "version": s.Version, "stages": s.Stages, "type": s.Type, "created_at": s.CreatedAt}
				switch {
				case field != "" || s.Type == "text":
					v["value"] = string(out)
				case s.Type == "json":
					v["value"] = json.RawMessage(out)
				default:
					v["value_base64"] = out
				}
				return e.printJSON(v)
			}
			e.stdout.Write(out)
			if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) && s.Type != "binary" {
				e.printf("\n")
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVar(&version, "version", 0, "read this version")
	f.StringVar(&stage, "stage", "", "read the version holding this stage (current, previous, pending or a label)")
	f.StringVar(&field, "field", "", "print one field of a JSON value")
	return cmd
}

func (e *env) secretDescribe() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a secret's metadata and versions (never values)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := c.Describe(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				if rot := rotationFor(cmd.Context(), c, args[0]); rot != nil { // rotate.go
					return e.printJSON(struct {
						*client.Metadata
						Rotation *client.RotationStatus `json:"rotation"`
					}{m, rot})
				}
				return e.printJSON(m)
			}
			e.printMetadata(m)
			e.describeRotation(cmd.Context(), c, args[0]) // rotate.go
			return nil
		}),
	}
}

func fmtTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }

func (e *env) printMetadata(m *client.Metadata) {
	e.printf("Name:          %s\n", m.Name)
	if m.Description != "" {
		e.printf("Description:   %s\n", m.Description)
	}
	e.printf("Created:       %s by %s\n", fmtTime(m.CreatedAt), orDash(m.CreatedBy))
	e.printf("Updated:       %s\n", fmtTime(m.UpdatedAt))
	if m.ExpiresAt != nil {
		e.printf("Expires:       %s\n", fmtTime(*m.ExpiresAt))
	}
	if m.DeletedAt != nil {
		e.printf("Deleted:       %s (purged %s unless restored)\n", fmtTime(*m.DeletedAt), fmtTime(*m.PurgeAt))
	}
	e.printf("Max versions:  %d\n", m.MaxVersions)
	if len(m.Tags) > 0 {
		keys := make([]string, 0, len(m.Tags))
		for k := range m.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.printf("Tags:\n")
		for _, k := range keys {
			e.printf("  %s=%s\n", k, m.Tags[k])
		}
	}
	e.printf("\n")
	e.printVersions(m)
}

func (e *env) printVersions(m *client.Metadata) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTAGES\tTYPE\tSIZE\tCREATED\tBY")
	for i := len(m.Versions) - 1; i >= 0; i-- {
		v := m.Versions[i]
		stages := strings.Join(v.Stages, ",")
		if v.Destroyed {
			stages = strings.TrimPrefix(stages+",destroyed", ",")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", v.Version, orDash(stages), v.Type, v.Size, fmtTime(v.CreatedAt), orDash(v.CreatedBy))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e *env) secretHistory() *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "List a secret's versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := c.Describe(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(m.Versions)
			}
			e.printVersions(m)
			return nil
		}),
	}
}

func (e *env) secretList() *cobra.Command {
	var (
		limit, pageSize int
		cursor          string
		includeDeleted  bool
	)
	cmd := &cobra.Command{
		Use:   "list [PREFIX]",
		Short: "List secret names under a prefix (never values)",
		Args:  cobra.MaximumNArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			var items []client.ListItem
			next := cursor
			for {
				size := pageSize
				if limit > 0 && limit-len(items) < size {
					size = limit - len(items)
				}
				p, err := c.List(cmd.Context(), client.ListOptions{Prefix: prefix, Cursor: next, Limit: size, IncludeDeleted: includeDeleted})
				if err != nil {
					return err
				}
				items = append(items, p.Items...)
				next = p.NextCursor
				if next == "" || (limit > 0 && len(items) >= limit) {
					break
				}
			}
			if e.json {
				return e.printJSON(map[string]any{"items": items, "next_cursor": next})
			}
			for _, it := range items {
				if it.DeletedAt != nil {
					e.printf("%s\t(deleted)\n", it.Name)
				} else {
					e.printf("%s\n", it.Name)
				}
			}
			if next != "" {
				fmt.Fprintf(e.stderr, "(more: --cursor %s)\n", next)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVar(&limit, "limit", 0, "print at most this many names (default all)")
	f.IntVar(&pageSize, "page-size", 100, "names per request")
	f.StringVar(&cursor, "cursor", "", "continue from the cursor a previous --limit run printed")
	f.BoolVar(&includeDeleted, "include-deleted", false, "also list secrets scheduled for deletion")
	return cmd
}

func (e *env) secretStage() *cobra.Command {
	var from int
	var remove bool
	cmd := &cobra.Command{
		Use:   "stage NAME STAGE [VERSION]",
		Short: "Move a stage to a version (moving current is a rollback), or --remove a label",
		Long: `Move a stage label to a version. Moving current hands previous to the version
that held current, so "coffer secret stage NAME current 3" rolls back to version 3.
--remove takes a custom label or pending off its version.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var m *client.Metadata
			var err error
			if remove {
				if len(args) != 2 {
					return errors.New("--remove takes NAME STAGE only")
				}
				m, err = c.RemoveStage(cmd.Context(), args[0], args[1])
			} else {
				if len(args) != 3 {
					return errors.New("give NAME STAGE VERSION")
				}
				v, perr := strconv.Atoi(args[2])
				if perr != nil || v < 1 {
					return fmt.Errorf("version %q: want a positive number", args[2])
				}
				m, err = c.MoveStage(cmd.Context(), args[0], args[1], v, from)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(m)
			}
			e.printVersions(m)
			return nil
		}),
	}
	cmd.Flags().IntVar(&from, "from", 0, "only move if the stage is now on this version")
	cmd.Flags().BoolVar(&remove, "remove", false, "remove the label instead of moving it")
	return cmd
}

func (e *env) secretRollback() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME [VERSION]",
		Short: "Make the previous version (or VERSION) current again",
		Args:  cobra.RangeArgs(1, 2),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := c.Describe(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			target := m.Stages["previous"]
			if len(args) == 2 {
				if target, err = strconv.Atoi(args[1]); err != nil || target < 1 {
					return fmt.Errorf("version %q: want a positive number", args[1])
				}
			}
			if target == 0 {
				return fmt.Errorf("%s has no previous version to roll back to", args[0])
			}
			m, err = c.MoveStage(cmd.Context(), args[0], "current", target, m.Stages["current"])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(m)
			}
			e.printf("%s: version %d is current\n", m.Name, target)
			return nil
		}),
	}
}

func (e *env) secretDelete() *cobra.Command {
	var force bool
	var days int
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Schedule a secret for deletion (restorable for 30 days), or --force to purge now",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := c.Delete(cmd.Context(), args[0], client.DeleteOptions{Force: force, RecoveryDays: days})
			if err != nil {
				return err
			}
			if e.json {
				if m == nil {
					return e.printJSON(map[string]any{"name": args[0], "purged": true})
				}
				return e.printJSON(m)
			}
			if m == nil {
				e.printf("Purged %s and all its versions\n", args[0])
			} else {
				e.printf("Deleted %s; it will be purged %s. Undo with: coffer secret restore %s\n", m.Name, fmtTime(*m.PurgeAt), m.Name)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "purge now, with no recovery")
	cmd.Flags().IntVar(&days, "recovery-days", 0, "days before the purge (1 to 90, default 30)")
	return cmd
}

func (e *env) secretRestore() *cobra.Command {
	return &cobra.Command{
		Use:   "restore NAME",
		Short: "Cancel a scheduled deletion",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := c.Restore(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(m)
			}
			e.printf("Restored %s\n", m.Name)
			return nil
		}),
	}
}

func (e *env) secretDestroy() *cobra.Command {
	var versions []int
	cmd := &cobra.Command{
		Use:   "destroy NAME --versions N[,N...]",
		Short: "Erase the values of versions for good (their metadata stays)",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if len(versions) == 0 {
				return errors.New("give --versions N[,N...]")
			}
			m, err := c.Destroy(cmd.Context(), args[0], versions)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(m)
			}
			e.printVersions(m)
			return nil
		}),
	}
	cmd.Flags().IntSliceVar(&versions, "versions", nil, "version numbers to destroy")
	return cmd
}

func (e *env) secretUpdate() *cobra.Command {
	var (
		desc, expires string
		tags, untag   []string
		maxVersions   int
		noExpiry      bool
	)
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a secret's description, tags, max versions or expiry",
		Args:  cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			var p client.MetadataPatch
			fl := cmd.Flags()
			if fl.Changed("description") {
				p.Description = &desc
			}
			var err error
			if p.SetTags, err = parseTags(tags); err != nil {
				return err
			}
			p.RemoveTags = untag
			if fl.Changed("max-versions") {
				p.MaxVersions = &maxVersions
			}
			switch {
			case noExpiry && expires != "":
				return errors.New("give --expires-at or --no-expiry, not both")
			case noExpiry:
				empty := ""
				p.ExpiresAt = &empty
			case expires != "":
				t, err := parseTime(expires)
				if err != nil {
					return fmt.Errorf("--expires-at: %w", err)
				}
				s := t.Format(time.RFC3339)
				p.ExpiresAt = &s
			}
			m, err := c.UpdateMetadata(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(m)
			}
			e.printMetadata(m)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&desc, "description", "", "new description")
	f.StringSliceVar(&tags, "tag", nil, "KEY=VALUE tag to set; repeatable")
	f.StringSliceVar(&untag, "untag", nil, "tag key to remove; repeatable")
	f.IntVar(&maxVersions, "max-versions", 0, "versions to keep")
	f.StringVar(&expires, "expires-at", "", "refuse reads after this time (RFC 3339 or a duration)")
	f.BoolVar(&noExpiry, "no-expiry", false, "clear the expiry")
	return cmd
}
