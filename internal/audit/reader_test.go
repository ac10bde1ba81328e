package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// drain reads r until io.EOF and returns the records.
func drain(tb testing.TB, r *Reader) []*Record {
	tb.Helper()
	var recs []*Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			tb.Fatalf("Next: %v", err)
		}
		recs = append(recs, rec)
	}
}

func checkSeqs(tb testing.TB, recs []*Record, first, last uint64) {
	tb.Helper()
	if len(recs) != int(last-first+1) {
		tb.Fatalf("got %d records, want seqs %d..%d", len(recs), first, last)
	}
	for i, rec := range recs {
		if rec.Seq != first+uint64(i) {
			tb.Fatalf("record %d has seq %d, want %d", i, rec.Seq, first+uint64(i))
		}
	}
}

func TestReaderFollow(t *testing.T) {
	opts := testOptions(t)
	opts.MaxFileBytes = 2000
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(opts.Dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if recs := drain(t, r); len(recs) != 0 {
		t.Fatalf("empty directory gave %d records", len(recs))
	}

	l := openLog(t, opts)
	appendN(t, l, 0, 2)
	checkSeqs(t, drain(t, r), 1, 3)
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at the end = %v, want io.EOF", err)
	}

	appendN(t, l, 2, 20) // several rotations
	if n := len(fileNames(t, opts.Dir)); n < 3 {
		t.Fatalf("%d files, want rotations", n)
	}
	checkSeqs(t, drain(t, r), 4, l.LastSeq())
	closeLog(t, l)
	recs := drain(t, r)
	if len(recs) != 1 || recs[0].Type != TypeCheckpoint {
		t.Fatalf("after Close got %v, want the closing checkpoint", recs)
	}

	// A Reader can start anywhere.
	for _, after := range []uint64{0, 1, 7, l.LastSeq() - 1, l.LastSeq()} {
		r, err := NewReader(opts.Dir, after)
		if err != nil {
			t.Fatal(err)
		}
		checkSeqs(t, drain(t, r), after+1, l.LastSeq())
		r.Close()
	}
}

// TestReaderIncompleteLine shows that a line being written is returned only
// once complete.
func TestReaderIncompleteLine(t *testing.T) {
	src := buildLog(t, testKey(1), 3, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, src.names[0])
	var data []byte
	for _, l := range src.lines[0] {
		data = append(append(data, l...), '\n')
	}
	cut := bytes.LastIndexByte(data[:len(data)-1], '\n') + 30 // into the last line
	if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := len(src.lines[0])
	checkSeqs(t, drain(t, r), 1, uint64(n-1))
	appendBytes(t, path, data[cut:])
	checkSeqs(t, drain(t, r), uint64(n), uint64(n))
}

// TestLogReaderDurableOnly shows that Log.NewReader does not return a record
// that is written but not yet fsynced, while a plain Reader may.
func TestLogReaderDurableOnly(t *testing.T) {
	opts := testOptions(t)
	arm, entered, release := blockNextSync(&opts)
	l := openLog(t, opts)
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkSeqs(t, drain(t, r), 1, 1)

	arm()
	done := make(chan error)
	go func() { done <- l.Append(context.Background(), request(1)) }()
	<-entered // record 2 is written, its fsync has not run

	raw, err := NewReader(opts.Dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	checkSeqs(t, drain(t, raw), 2, 2)
	if recs := drain(t, r); len(recs) != 0 {
		t.Errorf("Log reader returned seq %d before its fsync", recs[0].Seq)
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, drain(t, r), 2, 2)
}

func TestReaderCorrupt(t *testing.T) {
	src := buildLog(t, testKey(1), 12, 0)
	tests := []struct {
		name   string
		tamper func(c *logCopy) pos
		cutEOL bool // remove the newline ending the first file
	}{
		{"changed byte", func(c *logCopy) pos {
			c.lines[1][1][20] ^= 1
			return pos{1, 1}
		}, false},
		{"deleted record", func(c *logCopy) pos {
			c.lines[1] = append(c.lines[1][:1], c.lines[1][2:]...)
			return pos{1, 1}
		}, false},
		{"incomplete line in a rotated file", func(c *logCopy) pos {
			last := len(c.lines[0]) - 1
			c.lines[0][last] = c.lines[0][last][:10]
			return pos{0, last}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := src.clone()
			want := tt.tamper(c)
			paths := c.write(t)
			if tt.cutEOL {
				data, err := os.ReadFile(paths[0])
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(paths[0], data[:len(data)-1], 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r, err := NewReader(filepath.Dir(paths[0]), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var cerr *CorruptError
			for err == nil {
				_, err = r.Next()
			}
			if !errors.As(err, &cerr) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Next = %v, want a CorruptError", err)
			}
			if p := cerr.Problem; filepath.Base(p.File) != c.names[want.f] || p.Line != want.l+1 {
				t.Errorf("problem at %s:%d, want %s:%d (%v)", filepath.Base(p.File), p.Line, c.names[want.f], want.l+1, p)
			}
			if _, again := r.Next(); !errors.Is(again, ErrCorrupt) {
				t.Errorf("Next after corruption = %v, want the same error", again)
			}
		})
	}
}

// TestReaderLimitAppliesWhenRead: a record is returned only if it was
// durable before its bytes were read. Here the bytes of seq 3 are read
// while only seq 2 is durable; by the time they are checked, a seq 3 is
// durable, but a different one (the first write failed and was cut off):
// the Reader must read the file again, not hand out what it read first.
func TestReaderLimitAppliesWhenRead(t *testing.T) {
	opts := testOptions(t)
	l := openLog(t, opts)
	appendN(t, l, 1, 1) // seq 2 (seq 1 is the start record)
	closeLog(t, l)      // seq 3 is the closing checkpoint: cut it, and write our own seq 3s
	files, err := listFiles(opts.Dir)
	if err != nil || len(files) != 1 {
		t.Fatal(files, err)
	}
	path := files[0].path
	recs := readAll(t, opts.Dir)
	two := recs[1]
	raw, _ := os.ReadFile(path)
	end := bytes.Index(raw, []byte("\n"))
	end += 1 + bytes.Index(raw[end+1:], []byte("\n")) + 1 // after seq 2's line
	line := func(id string) []byte {
		body, err := encodeBody(&Record{Time: two.Time, Type: TypeRequest, RequestID: id})
		if err != nil {
			t.Fatal(err)
		}
		c := chain{seq: two.Seq, hash: two.Hash}
		return c.appendLine(nil, body, TypeRequest)
	}
	if err := os.WriteFile(path, append(raw[:end:end], line("refused")...), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	r, err := NewReader(opts.Dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.limit = func() uint64 {
		if calls.Add(1) == 1 {
			// Meanwhile the write of seq 3 failed, was cut off and was
			// replaced by the real seq 3, now durable. A Reader that read
			// the file before asking would hold the cut-off record.
			if err := os.WriteFile(path, append(raw[:end:end], line("real")...), 0o600); err != nil {
				t.Error(err)
			}
		}
		return 3
	}
	rec, err := r.Next()
	for errors.Is(err, io.EOF) {
		rec, err = r.Next()
	}
	if err != nil || rec.RequestID != "real" {
		t.Fatalf("Next = %+v, %v; want the durable seq 3 (real), never the one cut off", rec, err)
	}
}
