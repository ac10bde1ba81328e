package audit

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Report is the outcome of Verify.
type Report struct {
	Records     uint64 `json:"records"`     // records checked before the first problem (all if none)
	FirstSeq    uint64 `json:"first_seq"`   // seq of the first record, 1 unless retention removed older files
	LastSeq     uint64 `json:"last_seq"`    // seq of the last good record
	Checkpoints int    `json:"checkpoints"` // valid checkpoints
	// Unsigned counts the good records after the last valid checkpoint. A
	// log that was closed cleanly has none; see the package comment.
	Unsigned uint64 `json:"unsigned"`
	// Problem names the first bad record; nil when everything checks.
	Problem *Problem `json:"problem"`
}

// VerifyOptions configures VerifyWith.
type VerifyOptions struct {
	// Keys are the public keys whose checkpoint signatures are trusted; a
	// checkpoint names its key by PublicKeyID. A checkpoint by any other key
	// is a problem. At least one key is required.
	Keys []ed25519.PublicKey

	// ExpectLastSeq, if not zero, is the seq the log is known to have
	// reached, from a source the log's attacker could not rewrite (a remote
	// sink, a metric, an earlier run). A log ending anywhere else is a
	// problem: this is the only way to detect a tail cut at a line boundary
	// right after a checkpoint.
	ExpectLastSeq uint64

	// MinLastSeq, if not zero, is a seq the log is known to have reached
	// while it may have grown since (noted from a sink or a metric while
	// the server runs): a log ending before it had its tail cut.
	MinLastSeq uint64

	// FirstSeq, if not zero, is the seq the log must start at: 1 for a log
	// whose files retention never removed. A later first seq then means
	// the oldest files were deleted.
	FirstSeq uint64

	// RequireSignedTail makes records after the last checkpoint a problem,
	// naming the first of them. Use it for a log whose writer was closed
	// cleanly.
	RequireSignedTail bool
}

// Verify checks the log files with checkpoints signed by pub; see VerifyWith.
func Verify(files []string, pub ed25519.PublicKey) (*Report, error) {
	return VerifyWith(files, VerifyOptions{Keys: []ed25519.PublicKey{pub}})
}

// VerifyWith checks the given log files as one chain, ordered by the seq of
// their first record (so renamed files are still checked in chain order):
// every line must be a canonical record whose hash verifies; seqs must
// follow each other without gap or repeat; every prev must be the hash of
// the record before it (and empty for seq 1); each file's name must match
// its first seq; checkpoints must sign the record before them with a
// trusted key. The first record's prev is not checked unless it is seq 1,
// since retention removes older files. An incomplete last line is a problem.
// What truncation of the tail can be detected is described in the package
// comment and VerifyOptions.
//
// Verify stops at the first problem and describes it in Report.Problem. Its
// error is for files it cannot read (or unusable options), not for bad
// content. Verify reads the files while a Log writes them only with care:
// the last line may be incomplete while a write is in flight.
func VerifyWith(files []string, opts VerifyOptions) (*Report, error) {
	if len(opts.Keys) == 0 {
		return nil, errors.New("verify: no public key given")
	}
	keys := make(map[string]ed25519.PublicKey, len(opts.Keys))
	for _, k := range opts.Keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("verify: public key is not an Ed25519 key")
		}
		keys[PublicKeyID(k)] = k
	}
	type ordered struct {
		path string
		key  uint64
	}
	order := make([]ordered, len(files))
	for i, path := range files {
		o := ordered{path: path}
		if head, err := readFirst(path); err == nil {
			o.key = head.Seq
		} else if first, ok := parseFileName(filepath.Base(path)); ok {
			o.key = first
		}
		order[i] = o
	}
	slices.SortStableFunc(order, func(a, b ordered) int { return cmp.Compare(a.key, b.key) })

	v := &verifier{keys: keys}
	for _, o := range order {
		if err := v.file(o.path); err != nil {
			return nil, err
		}
		if v.rep.Problem != nil {
			return &v.rep, nil
		}
	}
	rep := &v.rep
	switch {
	case opts.ExpectLastSeq != 0 && rep.LastSeq != opts.ExpectLastSeq:
		msg := fmt.Sprintf("log ends at seq %d, but seq %d was expected: the tail was cut", rep.LastSeq, opts.ExpectLastSeq)
		if rep.LastSeq > opts.ExpectLastSeq {
			msg = fmt.Sprintf("log ends at seq %d, past the expected seq %d", rep.LastSeq, opts.ExpectLastSeq)
		}
		rep.Problem = &Problem{File: v.lastFile, Line: v.lastLine + 1, Seq: rep.LastSeq + 1, Msg: msg}
	case opts.MinLastSeq != 0 && rep.LastSeq < opts.MinLastSeq:
		rep.Problem = &Problem{File: v.lastFile, Line: v.lastLine + 1, Seq: rep.LastSeq + 1,
			Msg: fmt.Sprintf("log ends at seq %d, but it had reached seq %d: the tail was cut", rep.LastSeq, opts.MinLastSeq)}
	case opts.FirstSeq != 0 && rep.Records > 0 && rep.FirstSeq != opts.FirstSeq:
		rep.Problem = &Problem{File: v.firstFile, Line: 1, Seq: rep.FirstSeq,
			Msg: fmt.Sprintf("log starts at seq %d, not %d: the files holding the records before it are missing", rep.FirstSeq, opts.FirstSeq)}
	case opts.RequireSignedTail && rep.Unsigned > 0:
		p := v.unsignedAt
		p.Msg = fmt.Sprintf("%d record(s) from here to the end are not covered by a checkpoint: the log was not closed cleanly, or its tail was cut", rep.Unsigned)
		rep.Problem = &p
	}
	return rep, nil
}

// verifier carries the chain across files.
type verifier struct {
	keys       map[string]ed25519.PublicKey
	rep        Report
	have       bool    // prevHash holds the last record's hash
	prevHash   string  // hash of the last good record
	unsignedAt Problem // where the unsigned tail starts (valid if rep.Unsigned > 0)
	firstFile  string  // file of the first record
	lastFile   string  // file and line of the last good record
	lastLine   int
}

// file checks one file, setting v.rep.Problem at the first bad record.
func (v *verifier) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	nameSeq, named := parseFileName(filepath.Base(path))
	lr := newLineReader(f)
	for {
		line, err := lr.next()
		switch {
		case errors.Is(err, io.EOF):
			if lr.partial {
				v.problem(path, lr.line+1, v.rep.LastSeq+1, "incomplete last line: the record was cut")
			}
			return nil
		case errors.Is(err, errLineTooLong):
			v.problem(path, lr.line+1, v.rep.LastSeq+1, err.Error())
			return nil
		case err != nil:
			return err
		}
		if msg := v.record(line, lr.line == 1 && named, nameSeq, path, lr.line); msg != "" {
			return nil
		}
	}
}

func (v *verifier) problem(path string, line int, seq uint64, msg string) string {
	v.rep.Problem = &Problem{File: path, Line: line, Seq: seq, Msg: msg}
	return msg
}

// record checks one line; it returns the problem's message, or "".
func (v *verifier) record(line []byte, checkName bool, nameSeq uint64, path string, n int) string {
	rec, msg := decodeLine(line)
	seq := v.rep.LastSeq + 1
	if rec != nil && rec.Seq != 0 {
		seq = rec.Seq
	}
	if msg != "" {
		return v.problem(path, n, seq, msg)
	}
	switch {
	case rec.Seq == 0:
		return v.problem(path, n, seq, "seq 0")
	case v.have && rec.Seq <= v.rep.LastSeq:
		return v.problem(path, n, seq, fmt.Sprintf("seq %d after seq %d: a record is duplicated or out of order", rec.Seq, v.rep.LastSeq))
	case v.have && rec.Seq > v.rep.LastSeq+1:
		return v.problem(path, n, seq, fmt.Sprintf("seq %d after seq %d: %d record(s) missing or out of order", rec.Seq, v.rep.LastSeq, rec.Seq-v.rep.LastSeq-1))
	case v.have && rec.Prev != v.prevHash:
		return v.problem(path, n, seq, fmt.Sprintf("prev is not the hash of seq %d: a record was changed, removed or spliced in", v.rep.LastSeq))
	case rec.Seq == 1 && rec.Prev != "":
		return v.problem(path, n, seq, "seq 1 has a prev hash")
	case checkName && rec.Seq != nameSeq:
		return v.problem(path, n, seq, fmt.Sprintf("file name says the first seq is %d, the first record is seq %d", nameSeq, rec.Seq))
	}
	if rec.Type == TypeCheckpoint || rec.Checkpoint != nil {
		if msg := checkCheckpoint(rec, v.keys); msg != "" {
			return v.problem(path, n, seq, msg)
		}
		v.rep.Checkpoints++
		v.rep.Unsigned = 0
	} else {
		if v.rep.Unsigned == 0 {
			v.unsignedAt = Problem{File: path, Line: n, Seq: rec.Seq}
		}
		v.rep.Unsigned++
	}
	if !v.have {
		v.rep.FirstSeq, v.firstFile = rec.Seq, path
	}
	v.have, v.prevHash = true, rec.Hash
	v.rep.Records++
	v.rep.LastSeq = rec.Seq
	v.lastFile, v.lastLine = path, n
	return ""
}
