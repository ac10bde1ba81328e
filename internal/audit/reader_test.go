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
	var armed atomic.Bool
	entered := make(chan struct{})
	release := make(chan struct{})
	opts := testOptions(t)
	opts.beforeSync = func() {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
	}
	l := openLog(t, opts)
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkSeqs(t, drain(t, r), 1, 1)

	armed.Store(true)
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
