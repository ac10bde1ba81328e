package dbcred

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/testdb"
)

func TestParseAndRender(t *testing.T) {
	tests := []struct {
		name    string
		d       dialect
		tmpl    string
		want    []string // rendered with name=u, password=p'w, expiration=e
		wantErr string
	}{
		{name: "bare placeholders", d: postgres{}, tmpl: "CREATE ROLE {{name}} PASSWORD {{password}} VALID UNTIL {{expiration}};",
			want: []string{`CREATE ROLE "u" PASSWORD 'p''w' VALID UNTIL 'e'`}},
		{name: "vault style quotes", d: postgres{}, tmpl: `CREATE ROLE "{{name}}" PASSWORD '{{password}}'`,
			want: []string{`CREATE ROLE "u" PASSWORD 'p''w'`}},
		{name: "spaces and alias", d: postgres{}, tmpl: "GRANT x TO {{ username }}", want: []string{`GRANT x TO "u"`}},
		{name: "split on semicolons outside quotes", d: postgres{}, tmpl: "SELECT ';'; SELECT \"a;b\" ; ;",
			want: []string{`SELECT ';'`, `SELECT "a;b"`}},
		{name: "dollar quote kept whole", d: postgres{}, tmpl: "DO $f$ BEGIN PERFORM 1; END $f$; SELECT {{name}}",
			want: []string{`DO $f$ BEGIN PERFORM 1; END $f$`, `SELECT "u"`}},
		{name: "positional parameter is not a dollar quote", d: postgres{}, tmpl: "SELECT $1", want: []string{"SELECT $1"}},
		{name: "comments dropped", d: postgres{}, tmpl: "-- hello; world\nSELECT 1 /* ; */", want: []string{"SELECT 1"}},
		{name: "mysql backticks and host", d: mysqlDialect{}, tmpl: "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}; GRANT SELECT ON `d;b`.* TO {{name}}@'%'",
			want: []string{"CREATE USER `u`@'%' IDENTIFIED BY 'p''w'", "GRANT SELECT ON `d;b`.* TO `u`@'%'"}},
		{name: "mysql backslash escape in string", d: mysqlDialect{}, tmpl: `SELECT 'a\';b'`, want: []string{`SELECT 'a\';b'`}},
		{name: "placeholder inside text", d: postgres{}, tmpl: "SELECT 'x{{password}}'", wantErr: "inside quotes"},
		{name: "placeholder in identifier text", d: postgres{}, tmpl: `SELECT "pre_{{name}}"`, wantErr: "inside quotes"},
		{name: "placeholder in dollar body", d: postgres{}, tmpl: "DO $$ {{name}} $$", wantErr: "dollar"},
		{name: "placeholder in comment", d: postgres{}, tmpl: "SELECT 1 -- {{password}}", wantErr: "comment"},
		{name: "mysql hash comment", d: mysqlDialect{}, tmpl: "SELECT 1 # {{password}}", wantErr: "comment"},
		{name: "unknown placeholder", d: postgres{}, tmpl: "SELECT {{secret}}", wantErr: "unknown placeholder"},
		{name: "unterminated placeholder", d: postgres{}, tmpl: "SELECT {{name", wantErr: "unterminated"},
		{name: "unterminated string", d: postgres{}, tmpl: "SELECT 'abc", wantErr: "unterminated"},
		{name: "unterminated dollar", d: postgres{}, tmpl: "SELECT $a$ x", wantErr: "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts, err := parseTemplate(tt.d, tt.tmpl)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseTemplate(%q) = %v, want error containing %q", tt.tmpl, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTemplate(%q) = %v", tt.tmpl, err)
			}
			got, err := render(tt.d, sts, values{name: "u", password: "p'w", expiration: "e"})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("render(%q) = %q, want %q", tt.tmpl, got, tt.want)
			}
		})
	}
}

func TestQuoteRefusesUnsafe(t *testing.T) {
	for _, d := range []dialect{postgres{}, mysqlDialect{}} {
		for _, v := range []string{"a\\b", "a\x00b"} {
			if _, err := d.quoteLiteral(v); err == nil {
				t.Errorf("%s quoteLiteral(%q) = nil error", d.name(), v)
			}
		}
		if _, err := d.quoteIdent("a\x00b"); err == nil {
			t.Errorf("%s quoteIdent(NUL) = nil error", d.name())
		}
		if _, err := d.quoteIdent(""); err == nil {
			t.Errorf("%s quoteIdent(\"\") = nil error", d.name())
		}
	}
}

// hostile are values built to break out of quoting.
var hostile = []string{
	`'; DROP TABLE t; --`,
	`"; DROP TABLE t; --`,
	"`; DROP TABLE t; --",
	`'' OR 1=1`,
	`$$; DROP TABLE t; $$`,
	`x'y"z` + "`w",
	`é ü 😀`,
	`--`,
	`/*`,
}

// TestQuotingRoundTrip asks the real servers to read back quoted values: a
// literal must come back byte for byte, an identifier must name exactly the
// object created with it.
func TestQuotingRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		d           dialect
		driver, dsn string
	}{
		{postgres{}, "pgx", testdb.Postgres(t)},
		{mysqlDialect{}, "mysql", testdb.MySQL(t)},
	} {
		db, err := sql.Open(tc.driver, tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, v := range hostile {
			lit, err := tc.d.quoteLiteral(v)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if err := db.QueryRowContext(ctx, "SELECT "+lit).Scan(&got); err != nil || got != v {
				t.Errorf("%s: SELECT %s = %q, %v; want %q", tc.d.name(), lit, got, err, v)
			}
			if tc.driver == "mysql" && strings.ContainsFunc(v, func(r rune) bool { return r > 0xFFFF }) {
				continue // MySQL identifiers are limited to the BMP
			}
			id, err := tc.d.quoteIdent(v)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "CREATE TABLE "+id+" (c int)"); err != nil {
				t.Errorf("%s: CREATE TABLE %s: %v", tc.d.name(), id, err)
				continue
			}
			var n int
			q := "SELECT count(*) FROM information_schema.tables WHERE table_name = $1"
			if tc.driver == "mysql" {
				q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
			}
			if err := db.QueryRowContext(ctx, q, v).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: table %q count = %d, %v", tc.d.name(), v, n, err)
			}
			db.ExecContext(ctx, "DROP TABLE "+id)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{
		"CREATE ROLE {{name}} PASSWORD {{password}};",
		`CREATE ROLE "{{name}}" PASSWORD '{{password}}'`,
		"DO $x$ ; $x$; SELECT {{expiration}}",
		"SELECT 'a''b'; SELECT \"c\"\"d\"",
		"CREATE USER {{name}}@'%' IDENTIFIED BY {{password}} # c",
		"{{", "}}", "'", "$", "$a$", "/*", "--", "{{ name }}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		for _, d := range []dialect{postgres{}, mysqlDialect{}} {
			sts, err := parseTemplate(d, tmpl)
			if err != nil {
				continue
			}
			out, err := render(d, sts, values{name: "n'\"`", password: "p'\"`", expiration: "2026"})
			if err != nil {
				t.Fatalf("render after a successful parse: %v", err)
			}
			// Every placeholder becomes exactly one quoted token.
			for i, st := range sts {
				var rebuilt strings.Builder
				for _, p := range st {
					switch p.placeholder {
					case "":
						rebuilt.WriteString(p.sql)
					case phName:
						q, _ := d.quoteIdent("n'\"`")
						rebuilt.WriteString(q)
					default:
						q, _ := d.quoteLiteral(map[string]string{phPassword: "p'\"`", phExpiration: "2026"}[p.placeholder])
						rebuilt.WriteString(q)
					}
				}
				if strings.TrimSpace(rebuilt.String()) != out[i] {
					t.Fatalf("statement %d = %q, want %q", i, out[i], rebuilt.String())
				}
			}
		}
	})
}
