package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const goldenLog = "testdata/golden.jsonl"

// TestGoldenLog pins the file format: the encoding, the hash chain and the
// checkpoint signatures of a fixed log must not change by accident (a Go
// upgrade changing encoding/json would show up here first), and the
// committed file must keep verifying.
func TestGoldenLog(t *testing.T) {
	clock := newTestClock()
	opts := Options{Dir: filepath.Join(t.TempDir(), "audit"), SigningKey: testKey(7), Now: clock.Now, CheckpointEvery: 3}
	l := openLog(t, opts)
	recs := []*Record{
		{
			RequestID: "6f1c2a", Op: "secret.read", Path: "kv/app/db", Version: 3, Stage: "current",
			Identity: &Identity{Name: "deployer", ID: "id-1", Method: "approle", Accessor: "acc-1", Policies: []string{"deploy", "read"}, BreakGlass: true, MFA: true},
			Source:   "10.0.0.7", UserAgent: "coffer-cli/1.0", Decision: "allow", Policy: "deploy", Rule: "kv/app/*",
			Reason: "matched", Status: 200, LatencyUS: 183,
			HMACs: map[string]string{"token": "hmac-sha256:aa", "body": "hmac-sha256:bb", "accessor": "hmac-sha256:cc"},
		},
		{Op: "secret.write", Path: "kv/<script>&amp;", Decision: "deny", Status: 403, Error: "permission_denied", UserAgent: "ünïcödé \u2028 \x01 \"q\" \\ 😀"},
		{Type: "login", Time: time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("CET", 3600)), Source: "bad utf-8 \xff\xfe", Decision: "unauthenticated", Status: 401},
		{Op: "sys.health"},
	}
	for _, rec := range recs {
		if err := l.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		clock.Advance(1500 * time.Millisecond)
	}
	closeLog(t, l)
	got, err := os.ReadFile(filepath.Join(opts.Dir, fileName(1)))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(goldenLog, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenLog)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("log differs from %s at line %d:\ngot  %s\nwant %s", goldenLog, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("log has %d lines, %s has %d", len(gl), goldenLog, len(wl))
	}
	rep, err := VerifyWith([]string{goldenLog}, VerifyOptions{Keys: keys(testKey(7)), RequireSignedTail: true, ExpectLastSeq: 7})
	if err != nil || rep.Problem != nil {
		t.Fatalf("Verify(%s) = %+v, %v", goldenLog, rep, err)
	}
}

// TestRecordRoundTripProperty appends arbitrary records (any strings,
// including invalid UTF-8, HTML and line separators; any times and zones)
// and checks that each reads back as appended and the log verifies.
func TestRecordRoundTripProperty(t *testing.T) {
	opts := testOptions(t)
	opts.CheckpointEvery = 7
	opts.MaxFileBytes = 16 << 10
	l := openLog(t, opts)
	r, err := l.NewReader(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	str := rapid.OneOf(
		rapid.String(),
		rapid.Map(rapid.SliceOfN(rapid.Byte(), 0, 40), func(b []byte) string { return string(b) }),
		rapid.SampledFrom([]string{"", "<script>&amp;", "\u2028\u2029", "\x00\x1f\"\\", "\ufffd", `\ufffd`, "\xff"}),
	)
	rapid.Check(t, func(rt *rapid.T) {
		rec := &Record{
			Type:      rapid.SampledFrom([]string{"", TypeRequest, "login"}).Draw(rt, "type"),
			RequestID: str.Draw(rt, "request_id"),
			Op:        str.Draw(rt, "op"),
			Path:      str.Draw(rt, "path"),
			Version:   rapid.Int().Draw(rt, "version"),
			Source:    str.Draw(rt, "source"),
			UserAgent: str.Draw(rt, "user_agent"),
			Reason:    str.Draw(rt, "reason"),
			Status:    rapid.Int().Draw(rt, "status"),
			LatencyUS: rapid.Int64().Draw(rt, "latency"),
			HMACs:     rapid.MapOfN(str, str, 0, 4).Draw(rt, "hmacs"),
		}
		if rapid.Bool().Draw(rt, "has_identity") {
			rec.Identity = &Identity{
				Name:       str.Draw(rt, "name"),
				Policies:   rapid.SliceOfN(str, 0, 3).Draw(rt, "policies"),
				BreakGlass: rapid.Bool().Draw(rt, "break_glass"),
			}
		}
		if rapid.Bool().Draw(rt, "has_time") {
			ns := rapid.Int64Range(-1<<60, 1<<62).Draw(rt, "ns")
			zone := time.FixedZone("z", rapid.IntRange(-50000, 50000).Draw(rt, "offset"))
			rec.Time = time.Unix(0, ns).In(zone)
		}
		if err := l.Append(context.Background(), rec); err != nil {
			rt.Fatalf("Append: %v", err)
		}
		var got *Record
		for got == nil || got.Seq < rec.Seq {
			if got, err = r.Next(); err != nil {
				rt.Fatalf("Next: %v", err)
			}
		}
		if g, w := canonicalJSON(got), canonicalJSON(rec); !bytes.Equal(g, w) {
			rt.Fatalf("read back\n%s\nappended\n%s", g, w)
		}
	})
	closeLog(t, l)
	mustVerify(t, opts.Dir, VerifyOptions{Keys: keys(opts.SigningKey), RequireSignedTail: true})
}

// canonicalJSON encodes r as it is stored: invalid UTF-8 replaced.
func canonicalJSON(r *Record) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		return []byte("marshal: " + err.Error())
	}
	var d Record
	if err := json.Unmarshal(b, &d); err != nil {
		return []byte("unmarshal: " + err.Error())
	}
	if b, err = json.Marshal(&d); err != nil {
		return []byte("marshal: " + err.Error())
	}
	return b
}

// FuzzDecodeLine feeds arbitrary lines to the parser readers and Verify use
// on files an attacker may have written.
func FuzzDecodeLine(f *testing.F) {
	golden, err := os.ReadFile(goldenLog)
	if err != nil {
		f.Fatal(err)
	}
	for line := range bytes.Lines(golden) {
		f.Add(bytes.TrimSuffix(line, []byte("\n"))) // valid records and checkpoints
	}
	first, _, _ := bytes.Cut(golden, []byte("\n"))
	zeros := strings.Repeat("0", 64)
	for _, seed := range []string{
		"",                              // empty line
		"{}",                            // JSON without a hash
		`[1,2,3]`,                       // not an object
		`{"seq":-1}`,                    // negative seq
		`{"seq":1,"time":"not a time"}`, // bad time
		`{"seq":1,"prev":"","hash":"` + zeros + `"}`,              // hash-shaped tail, wrong hash
		`{"seq":1,"hash":"` + zeros + `","hash":"` + zeros + `"}`, // duplicate keys
		string(first) + " ", // trailing space
		strings.Replace(string(first), `"seq":1`, `"SEQ":1`, 1),        // key case
		strings.Replace(string(first), `"prev":""`, `"prev":null`, 1),  // null
		`{"seq":1,"identity":{"policies":[1]},"hash":"` + zeros + `"}`, // wrong element type
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, msg := decodeLine(line)
		if msg != "" {
			return
		}
		// An accepted line is exactly the encoding of the record it gave.
		b, err := json.Marshal(rec)
		if err != nil || !bytes.Equal(b, line) {
			t.Fatalf("accepted %q, which re-encodes as %q (%v)", line, b, err)
		}
	})
}

// FuzzVerifyFile runs Verify over arbitrary file contents: it must report,
// never panic or fail to return.
func FuzzVerifyFile(f *testing.F) {
	golden, err := os.ReadFile(goldenLog)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)                                                 // a valid log
	f.Add(golden[:len(golden)/2])                                 // cut mid-line
	f.Add(bytes.Repeat([]byte("\n"), 3))                          // blank lines
	f.Add(append(golden, golden...))                              // the log twice
	f.Add(bytes.ReplaceAll(golden, []byte("\n"), []byte("\r\n"))) // CRLF
	// One file per fuzzing process, rewritten for each input: a fresh
	// directory per input makes the file system, not Verify, the bottleneck.
	path := filepath.Join(f.TempDir(), fileName(1))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyWith([]string{path}, VerifyOptions{Keys: keys(testKey(7)), RequireSignedTail: true})
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if rep.Problem == nil && !bytes.HasPrefix(golden, data) && len(data) > 0 {
			// Only a prefix of a valid log ending at a checkpoint can pass.
			recs := bytes.Count(data, []byte("\n"))
			if uint64(recs) != rep.Records {
				t.Fatalf("no problem, but %d lines and %d records", recs, rep.Records)
			}
		}
	})
}
