package cli

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/client"
	"github.com/coffer-dev/coffer/internal/audit"
)

func (e *env) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, search and verify the tamper-evident audit log",
		Long: `The audit log is JSON Lines files in the server's audit directory (by default "audit"
beside the storage file). tail, search and verify read the files directly (--dir or
$COFFER_AUDIT_DIR), so they work while the server is down. hash and public-key ask the server.`,
	}
	cmd.AddCommand(e.auditHash(), e.auditPublicKey(), e.auditVerify(), e.auditTail(), e.auditSearch())
	return cmd
}

func (e *env) auditDir(flag string) (string, error) {
	if flag == "" {
		flag = e.getenv("COFFER_AUDIT_DIR")
	}
	if flag == "" {
		return "", errors.New("give --dir or set COFFER_AUDIT_DIR to the server's audit directory")
	}
	return flag, nil
}

func (e *env) auditHash() *cobra.Command {
	var typ string
	cmd := &cobra.Command{
		Use:   "hash VALUE|-|@FILE",
		Short: "Print the HMAC the audit log would hold for a value, to search for it",
		Long: `Hash prints the HMAC the audit log would hold for a value. It takes the value as
"coffer secret put" does: an argument, - for standard input, or @FILE, byte for byte, with
the same --type (a JSON value is hashed in the compact form the server stores). So a value
written with "secret put NAME -" is found by "audit hash -" given the same input.`,
		Args: cobra.ExactArgs(1),
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, args []string) error {
			b, fromInput, err := e.readValue(args[0])
			if err != nil {
				return err
			}
			in := map[string]any{"input": string(b)}
			switch {
			case typ == "json":
				var buf bytes.Buffer
				if err := json.Compact(&buf, b); err != nil {
					return errors.New("value is not valid JSON (--type json)")
				}
				in["input"] = buf.String()
			case typ == "binary", typ == "" && fromInput && !utf8.Valid(b):
				in = map[string]any{"input_base64": b}
			case typ == "", typ == "text":
			default:
				return fmt.Errorf("--type %q: want text, json or binary", typ)
			}
			var out struct {
				HMAC string `json:"hmac"`
			}
			if err := c.Do(cmd.Context(), "POST", "/v1/sys/audit/hash", in, &out); err != nil {
				return err
			}
			e.printf("%s\n", out.HMAC)
			return nil
		}),
	}
	cmd.Flags().StringVar(&typ, "type", "", "text, json or binary, as given to secret put (default text; binary for non-UTF-8 input)")
	return cmd
}

func (e *env) auditPublicKey() *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the PEM public key that verifies the log's signed checkpoints",
		Args:  cobra.NoArgs,
		RunE: e.clientCmd(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			var out struct {
				KeyID string `json:"key_id"`
				PEM   string `json:"public_key_pem"`
			}
			if err := c.Do(cmd.Context(), "GET", "/v1/sys/audit/public-key", nil, &out); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(out)
			}
			e.printf("%s", out.PEM)
			return nil
		}),
	}
}

func readPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block (save `coffer audit public-key` output)", path)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 public key", path)
	}
	return pub, nil
}

func (e *env) auditVerify() *cobra.Command {
	var keyFile, dir string
	var opts audit.VerifyOptions
	cmd := &cobra.Command{
		Use:   "verify [FILE...] --public-key KEY.pem",
		Short: "Check the hash chain and signed checkpoints; name the first bad record",
		Long: `Verify recomputes every record's hash, follows the chain across rotated files, checks
sequence numbers and the Ed25519 signatures of checkpoints, and names the first bad record:
an edited, deleted, reordered or spliced record, or a truncated tail. Give the files, or --dir.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("--public-key is required (from coffer audit public-key)")
			}
			pub, err := readPublicKey(keyFile)
			if err != nil {
				return err
			}
			files := args
			if len(files) == 0 {
				d, err := e.auditDir(dir)
				if err != nil {
					return err
				}
				if files, err = audit.Files(d); err != nil {
					return err
				}
			}
			opts.Keys = []ed25519.PublicKey{pub}
			rep, err := audit.VerifyWith(files, opts)
			if err != nil {
				return err
			}
			if e.json {
				if err := e.printJSON(rep); err != nil {
					return err
				}
			} else if rep.Problem == nil {
				e.printf("OK: %s (seq %d to %d), %s, in %s\n", plural(int(rep.Records), "record"), rep.FirstSeq, rep.LastSeq,
					plural(rep.Checkpoints, "signed checkpoint"), plural(len(files), "file"))
				if rep.Unsigned > 0 {
					e.printf("unsigned: the last %s come after the last checkpoint; the chain holds them, but no signature covers them yet\n", plural(int(rep.Unsigned), "record"))
				}
			}
			if rep.Problem != nil {
				if !e.json {
					e.printf("TAMPERED: %s\n", rep.Problem.String())
				}
				return &exitError{2}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "public-key", "", "PEM file from coffer audit public-key")
	cmd.Flags().StringVar(&dir, "dir", "", "audit directory (default $COFFER_AUDIT_DIR)")
	cmd.Flags().Uint64Var(&opts.MinLastSeq, "min-last-seq", 0, "a seq the log is known to have reached (from a SIEM or a metric): ending before it means the tail was cut")
	cmd.Flags().Uint64Var(&opts.FirstSeq, "first-seq", 0, "the seq the log must start at (1 if retention never removed a file): a later start means files were deleted")
	cmd.Flags().BoolVar(&opts.RequireSignedTail, "require-signed", false, "treat records after the last checkpoint as a problem (for a log whose server was stopped cleanly)")
	return cmd
}

// filter selects records for tail and search.
type filter struct {
	identity, path, decision, op string
	typ                          string // a record type, or "all"
	since                        time.Time
}

// recordTypes are the values of --type.
var recordTypes = []string{audit.TypeRequest, "intent", audit.TypeStart, audit.TypeCheckpoint, "probe", "all"}

// check refuses filter values that could never match, which would
// otherwise print nothing (or follow forever) without saying why.
func (f *filter) check() error {
	if f.decision != "" && !slices.Contains([]string{"allow", "deny", "unauthenticated"}, f.decision) {
		return fmt.Errorf("--decision %q: want allow, deny or unauthenticated", f.decision)
	}
	if !slices.Contains(recordTypes, f.typ) {
		return fmt.Errorf("--type %q: want one of %s", f.typ, strings.Join(recordTypes, ", "))
	}
	return nil
}

func (f *filter) match(r *audit.Record) bool {
	if f.typ != "all" && r.Type != f.typ {
		return false
	}
	if f.identity != "" && (r.Identity == nil || !strings.Contains(r.Identity.Name, f.identity) && r.Identity.Accessor != f.identity && r.Identity.ID != f.identity) {
		return false
	}
	if f.path != "" && !strings.HasPrefix(r.Path, f.path) {
		return false
	}
	if f.decision != "" && r.Decision != f.decision {
		return false
	}
	if f.op != "" && !strings.HasPrefix(r.Op, f.op) {
		return false
	}
	return f.since.IsZero() || !r.Time.Before(f.since)
}

func (e *env) printRecord(r *audit.Record) {
	if e.json {
		b, _ := json.Marshal(r)
		e.printf("%s\n", b)
		return
	}
	who := "-"
	if r.Identity != nil {
		who = r.Identity.Name
		if r.Identity.BreakGlass {
			who += " [BREAK-GLASS]"
		}
	}
	rule := ""
	switch {
	case r.Policy != "" && r.Rule != "":
		rule = fmt.Sprintf(" %s:%s", r.Policy, r.Rule)
	case r.Policy != "":
		rule = " " + r.Policy // the root policy allows without a rule
	}
	decision := orDash(r.Decision)
	if r.Type != audit.TypeRequest {
		decision = r.Type + " " + decision
	}
	e.printf("%s #%-6d %-16s %-22s %-28s %s %d%s %s %s\n", r.Time.Local().Format("2006-01-02 15:04:05"), r.Seq, decision,
		orDash(r.Op), orDash(r.Path), who, r.Status, rule, orDash(r.Source), orDash(r.RequestID))
}

func (e *env) scan(dir string, after uint64, f *filter, each func(*audit.Record)) (uint64, error) {
	rd, err := audit.NewReader(dir, after)
	if err != nil {
		return after, err
	}
	defer rd.Close()
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return after, nil
		}
		if err != nil {
			return after, err
		}
		after = r.Seq
		if f.match(r) {
			each(r)
		}
	}
}

func (e *env) filterFlags(cmd *cobra.Command, f *filter, since *string, dir *string) {
	fl := cmd.Flags()
	fl.StringVar(dir, "dir", "", "audit directory (default $COFFER_AUDIT_DIR)")
	fl.StringVar(&f.identity, "identity", "", "identity name (substring), id or token accessor")
	fl.StringVar(&f.path, "path", "", "path prefix")
	fl.StringVar(&f.decision, "decision", "", "allow, deny or unauthenticated")
	fl.StringVar(&f.typ, "type", audit.TypeRequest, "record type: request (outcomes), intent (changes about to be made), start, checkpoint, probe, or all")
	fl.StringVar(&f.op, "op", "", "operation prefix, e.g. secret.")
	fl.StringVar(since, "since", "", "only records newer than this duration (1h) or RFC 3339 time")
}

func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("--since: want a duration like 1h or an RFC 3339 time")
	}
	return t, nil
}

func (e *env) auditTail() *cobra.Command {
	var f filter
	var since, dir string
	var n int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the last records (--follow to keep printing new ones)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := e.auditDir(dir)
			if err != nil {
				return err
			}
			if f.since, err = parseSince(since); err != nil {
				return err
			}
			if err := f.check(); err != nil {
				return err
			}
			var last []*audit.Record
			after, err := e.scan(d, 0, &f, func(r *audit.Record) {
				last = append(last, r)
				if len(last) > n {
					last = last[1:]
				}
			})
			if err != nil {
				return err
			}
			for _, r := range last {
				e.printRecord(r)
			}
			for follow {
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
				if after, err = e.scan(d, after, &f, e.printRecord); err != nil {
					return err
				}
			}
			return nil
		},
	}
	e.filterFlags(cmd, &f, &since, &dir)
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "records to print")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records")
	return cmd
}

func (e *env) auditSearch() *cobra.Command {
	var f filter
	var since, dir, hmac string
	cmd := &cobra.Command{
		Use:   "search [--identity I] [--path P] [--decision D] [--since 24h] [--hmac H]",
		Short: "Print every record that matches",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := e.auditDir(dir)
			if err != nil {
				return err
			}
			if f.since, err = parseSince(since); err != nil {
				return err
			}
			if err := f.check(); err != nil {
				return err
			}
			n := 0
			_, err = e.scan(d, 0, &f, func(r *audit.Record) {
				if hmac != "" {
					found := false
					for _, v := range r.HMACs {
						found = found || v == hmac
					}
					if !found {
						return
					}
				}
				n++
				e.printRecord(r)
			})
			if err == nil && !e.json {
				fmt.Fprintf(e.stderr, "%s\n", plural(n, "record"))
			}
			return err
		},
	}
	e.filterFlags(cmd, &f, &since, &dir)
	cmd.Flags().StringVar(&hmac, "hmac", "", "records holding this HMAC (from coffer audit hash VALUE)")
	return cmd
}

// plural returns "1 record" or "n records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
