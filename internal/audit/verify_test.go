package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// logCopy is a log held in memory as lines, to be tampered with and written
// to a new directory.
type logCopy struct {
	names []string   // file base names, in seq order
	lines [][][]byte // lines of each file, without '\n'
	tail  []byte     // raw bytes after the last line of the last file
}

func loadCopy(tb testing.TB, dir string) *logCopy {
	tb.Helper()
	c := &logCopy{names: fileNames(tb, dir)}
	for _, name := range c.names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		var lines [][]byte
		for line := range bytes.Lines(data) {
			lines = append(lines, bytes.TrimSuffix(line, []byte("\n")))
		}
		c.lines = append(c.lines, lines)
	}
	return c
}

func (c *logCopy) clone() *logCopy {
	d := &logCopy{names: slices.Clone(c.names), tail: slices.Clone(c.tail)}
	for _, lines := range c.lines {
		var cp [][]byte
		for _, l := range lines {
			cp = append(cp, slices.Clone(l))
		}
		d.lines = append(d.lines, cp)
	}
	return d
}

// write stores the copy in a new directory and returns its file paths.
func (c *logCopy) write(tb testing.TB) []string {
	tb.Helper()
	dir := tb.TempDir()
	var paths []string
	for i, name := range c.names {
		var data []byte
		for _, l := range c.lines[i] {
			data = append(append(data, l...), '\n')
		}
		if i == len(c.names)-1 {
			data = append(data, c.tail...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		paths = append(paths, path)
	}
	return paths
}

// pos is a line position: file index and 0-based line index.
type pos struct{ f, l int }

// next returns the position after p, or false at the end.
func (c *logCopy) next(p pos) (pos, bool) {
	p.l++
	for p.f < len(c.lines) && p.l >= len(c.lines[p.f]) {
		p.f, p.l = p.f+1, 0
	}
	return p, p.f < len(c.lines)
}

func (c *logCopy) rec(tb testing.TB, p pos) *Record {
	tb.Helper()
	var r Record
	if err := json.Unmarshal(c.lines[p.f][p.l], &r); err != nil {
		tb.Fatal(err)
	}
	return &r
}

// find returns the position of the record with the given seq.
func (c *logCopy) find(tb testing.TB, seq uint64) pos {
	tb.Helper()
	for p, ok := (pos{0, -1}), true; ; {
		if p, ok = c.next(p); !ok {
			tb.Fatalf("seq %d not found", seq)
		}
		if c.rec(tb, p).Seq == seq {
			return p
		}
	}
}

// prev returns the position before p, or false at the start.
func (c *logCopy) prev(p pos) (pos, bool) {
	p.l--
	for p.f >= 0 && p.l < 0 {
		p.f--
		if p.f >= 0 {
			p.l = len(c.lines[p.f]) - 1
		}
	}
	return p, p.f >= 0
}

// cutAfter removes everything after p.
func (c *logCopy) cutAfter(p pos) {
	c.names, c.lines, c.tail = c.names[:p.f+1], c.lines[:p.f+1], nil
	c.lines[p.f] = c.lines[p.f][:p.l+1]
}

// last returns the position of the last line.
func (c *logCopy) last() pos {
	f := len(c.lines) - 1
	return pos{f, len(c.lines[f]) - 1}
}

// hashRecord sets r.Hash from the definition in the package comment,
// independently of the writer's encoder.
func hashRecord(r *Record) {
	r.Hash = ""
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	r.Hash = hex.EncodeToString(sum[:])
}

func (c *logCopy) set(tb testing.TB, p pos, r *Record) {
	tb.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	c.lines[p.f][p.l] = b
}

// rechain recomputes prev and hash (and checkpoint chain hashes, whose
// signatures it cannot fix) from p to the end, as an attacker without the
// signing key would.
func (c *logCopy) rechain(tb testing.TB, p pos) {
	tb.Helper()
	prev := ""
	if p != (pos{}) {
		before := pos{p.f, p.l - 1}
		if p.l == 0 {
			before = pos{p.f - 1, len(c.lines[p.f-1]) - 1}
		}
		prev = c.rec(tb, before).Hash
	}
	for ok := true; ok; p, ok = c.next(p) {
		r := c.rec(tb, p)
		r.Prev = prev
		if r.Checkpoint != nil {
			r.Checkpoint.ChainHash = prev
		}
		hashRecord(r)
		c.set(tb, p, r)
		prev = r.Hash
	}
}

// requestPair returns the seq of a request record, not first in its file,
// followed by another request in the same file, in file fi.
func (c *logCopy) requestPair(tb testing.TB, fi int) uint64 {
	tb.Helper()
	for l := 1; l+1 < len(c.lines[fi]); l++ {
		a, b := c.rec(tb, pos{fi, l}), c.rec(tb, pos{fi, l + 1})
		if a.Type == TypeRequest && b.Type == TypeRequest {
			return a.Seq
		}
	}
	tb.Fatalf("no request pair in file %d", fi)
	return 0
}

// buildLog writes a closed log of n requests over several files.
func buildLog(tb testing.TB, key ed25519.PrivateKey, n, idBase int) *logCopy {
	tb.Helper()
	opts := testOptions(tb)
	opts.SigningKey = key
	opts.MaxFileBytes = 2500
	opts.CheckpointEvery = 5
	l := openLog(tb, opts)
	appendN(tb, l, idBase, n)
	closeLog(tb, l)
	return loadCopy(tb, opts.Dir)
}

func TestVerifyDetectsTampering(t *testing.T) {
	keyA, keyB := testKey(1), testKey(2)
	base := buildLog(t, keyA, 30, 0)
	other := buildLog(t, keyB, 30, 5000)
	if len(base.names) < 4 {
		t.Fatalf("base log has %d files, want several", len(base.names))
	}
	lastSeq := base.rec(t, base.last()).Seq
	if rep := verifyCopy(t, base, VerifyOptions{Keys: keys(keyA), RequireSignedTail: true, ExpectLastSeq: lastSeq}); rep.Problem != nil {
		t.Fatalf("untouched log: %v", rep.Problem)
	}

	// want is the position of the first bad record and a phrase of the
	// message; ok means Verify cannot see the change.
	type want struct {
		at  pos
		msg string
		ok  bool
	}
	tests := []struct {
		name   string
		opts   VerifyOptions
		tamper func(t *testing.T, c *logCopy) want
	}{
		{"modify a field", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			r := c.rec(t, p)
			r.Decision = "deny"
			c.set(t, p, r)
			return want{at: p, msg: "hash mismatch"}
		}},
		{"modify a byte without re-encoding", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 2))
			line := c.lines[p.f][p.l]
			i := bytes.Index(line, []byte("kv/app/"))
			line[i] = 'K'
			return want{at: p, msg: "hash mismatch"}
		}},
		{"modify a field and its hash", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			r := c.rec(t, p)
			r.Path = "kv/other"
			hashRecord(r)
			c.set(t, p, r)
			next, _ := c.next(p)
			return want{at: next, msg: "prev is not the hash"}
		}},
		{"modify a field and rechain to the end", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			seq := c.requestPair(t, 1)
			p := c.find(t, seq)
			r := c.rec(t, p)
			r.Identity.Name = "someone-else"
			c.set(t, p, r)
			c.rechain(t, p)
			for q := p; ; q, _ = c.next(q) {
				if c.rec(t, q).Type == TypeCheckpoint {
					return want{at: q, msg: "signature does not verify"}
				}
			}
		}},
		{"non-canonical encoding with a valid hash", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			line := bytes.Replace(c.lines[p.f][p.l], []byte(`"op":`), []byte(`"op": `), 1)
			n := len(line)
			blank := append(slices.Clone(line[:n-hashTailLen+len(`"hash":"`)]), `"}`...)
			sum := sha256.Sum256(blank)
			copy(line[n-hashTailLen+len(`"hash":"`):], hex.EncodeToString(sum[:]))
			c.lines[p.f][p.l] = line
			return want{at: p, msg: "not in canonical form"}
		}},
		{"delete a record", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			c.lines[p.f] = slices.Delete(c.lines[p.f], p.l, p.l+1)
			return want{at: p, msg: "1 record(s) missing"}
		}},
		{"reorder two records", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 2))
			c.lines[p.f][p.l], c.lines[p.f][p.l+1] = c.lines[p.f][p.l+1], c.lines[p.f][p.l]
			return want{at: p, msg: "missing or out of order"}
		}},
		{"duplicate a record", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			c.lines[p.f] = slices.Insert(c.lines[p.f], p.l+1, slices.Clone(c.lines[p.f][p.l]))
			return want{at: pos{p.f, p.l + 1}, msg: "duplicated or out of order"}
		}},
		{"malformed line", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			c.lines[p.f][p.l] = []byte(`{"seq": 7, "time": garbage`)
			return want{at: p, msg: "malformed record"}
		}},
		{"blank line", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			c.lines[p.f] = slices.Insert(c.lines[p.f], p.l, []byte{})
			return want{at: p, msg: "malformed record"}
		}},
		{"truncate the tail mid-line", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.last()
			c.tail = c.lines[p.f][p.l][:40]
			c.lines[p.f] = c.lines[p.f][:p.l]
			return want{at: p, msg: "incomplete last line"}
		}},
		{"truncate the tail at a line boundary, last seq known", VerifyOptions{ExpectLastSeq: lastSeq}, func(t *testing.T, c *logCopy) want {
			p, _ := c.prev(c.last())
			p, _ = c.prev(p)
			c.cutAfter(p) // the last two records are gone
			return want{at: pos{p.f, p.l + 1}, msg: "the tail was cut"}
		}},
		{"truncate the tail at a line boundary, signed tail required", VerifyOptions{RequireSignedTail: true}, func(t *testing.T, c *logCopy) want {
			p, _ := c.prev(c.last()) // drop the closing checkpoint
			c.cutAfter(p)
			q := p
			for ; c.rec(t, q).Type != TypeCheckpoint; q, _ = c.prev(q) {
			}
			first, _ := c.next(q)
			return want{at: first, msg: "not covered by a checkpoint"}
		}},
		{"truncate right after a checkpoint: undetectable without the last seq", VerifyOptions{RequireSignedTail: true}, func(t *testing.T, c *logCopy) want {
			p, _ := c.prev(c.last())
			for ; c.rec(t, p).Type != TypeCheckpoint; p, _ = c.prev(p) {
			}
			c.cutAfter(p)
			return want{ok: true}
		}},
		{"remove a middle file", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			c.names = slices.Delete(c.names, 1, 2)
			c.lines = slices.Delete(c.lines, 1, 2)
			return want{at: pos{1, 0}, msg: "missing"}
		}},
		{"rename a file", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			r := c.rec(t, pos{2, 0})
			c.names[2] = fileName(r.Seq + 1)
			return want{at: pos{2, 0}, msg: "file name says"}
		}},
		{"splice records from another log", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 2))
			seq := c.rec(t, p).Seq
			for i := range 2 { // requestPair: p and the line after it are in one file
				o := other.find(t, seq+uint64(i))
				c.lines[p.f][p.l+i] = slices.Clone(other.lines[o.f][o.l])
			}
			return want{at: p, msg: "prev is not the hash"}
		}},
		{"splice a rechained tail from another log", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			p := c.find(t, c.requestPair(t, 1))
			// Replace every record from p on by the record of the other log with
			// the same seq, keeping this log's file layout, and rechain.
			var firstCP pos
			found := false
			for q, ok := p, true; ok; q, ok = c.next(q) {
				seq := c.rec(t, q).Seq
				o := other.find(t, seq)
				c.lines[q.f][q.l] = slices.Clone(other.lines[o.f][o.l])
				if !found && other.rec(t, o).Type == TypeCheckpoint {
					firstCP, found = q, true
				}
			}
			c.rechain(t, p)
			return want{at: firstCP, msg: "untrusted key"}
		}},
		{"forge a checkpoint signature", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			// Change a record, rechain, and re-sign the next checkpoint with
			// another key under this log's key id.
			p := c.find(t, c.requestPair(t, 1))
			r := c.rec(t, p)
			r.Status = 500
			c.set(t, p, r)
			c.rechain(t, p)
			q := p
			for ; c.rec(t, q).Type != TypeCheckpoint; q, _ = c.next(q) {
			}
			cp := c.rec(t, q)
			cp.Checkpoint.Signature = hex.EncodeToString(ed25519.Sign(keyB, checkpointMessage(cp.Checkpoint.UpTo, cp.Checkpoint.ChainHash)))
			hashRecord(cp)
			c.set(t, q, cp)
			c.rechain(t, q)
			return want{at: q, msg: "signature does not verify"}
		}},
		{"checkpoint renumbered to sign the wrong record", VerifyOptions{}, func(t *testing.T, c *logCopy) want {
			// Swap a checkpoint with the record before it and renumber both, so
			// that seqs and prev links check: the checkpoint's up_to does not.
			q := c.find(t, c.requestPair(t, 1))
			for ; c.rec(t, q).Type != TypeCheckpoint; q, _ = c.next(q) {
			}
			if q.l == 0 {
				t.Fatal("test setup: checkpoint first in its file")
			}
			before := pos{q.f, q.l - 1}
			cp, r := c.rec(t, q), c.rec(t, before)
			cp.Seq, r.Seq = r.Seq, cp.Seq
			c.set(t, before, cp)
			c.set(t, q, r)
			c.rechain(t, before)
			return want{at: before, msg: "up_to"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base.clone()
			w := tt.tamper(t, c)
			opts := tt.opts
			opts.Keys = keys(keyA)
			paths := c.write(t)
			rep := verifyPaths(t, paths, opts)
			if w.ok {
				if rep.Problem != nil {
					t.Fatalf("Verify found %v; this change was expected to be undetectable", rep.Problem)
				}
				return
			}
			p := rep.Problem
			if p == nil {
				t.Fatalf("Verify found no problem, want one at %s:%d", c.names[w.at.f], w.at.l+1)
			}
			t.Logf("problem: %v", p)
			if filepath.Base(p.File) != c.names[w.at.f] || p.Line != w.at.l+1 || !strings.Contains(p.Msg, w.msg) {
				t.Errorf("Verify problem = %v\nwant %s:%d: ...%s...", p, c.names[w.at.f], w.at.l+1, w.msg)
			}
		})
	}
}

func verifyCopy(tb testing.TB, c *logCopy, opts VerifyOptions) *Report {
	tb.Helper()
	return verifyPaths(tb, c.write(tb), opts)
}

func verifyPaths(tb testing.TB, paths []string, opts VerifyOptions) *Report {
	tb.Helper()
	rep, err := VerifyWith(paths, opts)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return rep
}

func TestVerifyKeys(t *testing.T) {
	base := buildLog(t, testKey(1), 12, 0)
	paths := base.write(t)
	tests := []struct {
		name    string
		keys    []ed25519.PublicKey
		problem bool
		err     bool
	}{
		{"signing key", keys(testKey(1)), false, false},
		{"rotated keys include it", keys(testKey(3), testKey(1)), false, false},
		{"other key", keys(testKey(2)), true, false},
		{"no key", nil, false, true},
		{"bad key", []ed25519.PublicKey{make([]byte, 5)}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := VerifyWith(paths, VerifyOptions{Keys: tt.keys})
			if (err != nil) != tt.err {
				t.Fatalf("VerifyWith error = %v, want error %v", err, tt.err)
			}
			if err == nil && (rep.Problem != nil) != tt.problem {
				t.Errorf("Problem = %v, want problem %v", rep.Problem, tt.problem)
			}
		})
	}
	// Verify sorts files by their first seq, whatever order they are given in.
	slices.Reverse(paths)
	if rep, err := Verify(paths, pubOf(testKey(1))); err != nil || rep.Problem != nil {
		t.Errorf("Verify(reversed files) = %+v, %v", rep, err)
	}
	if _, err := Verify([]string{filepath.Join(t.TempDir(), "missing.jsonl")}, pubOf(testKey(1))); err == nil {
		t.Error("Verify(missing file) = nil error")
	}
}
