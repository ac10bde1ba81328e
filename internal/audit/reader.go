package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Reader iterates the records of a log directory in seq order across
// rotated files, starting after a given seq. It checks each record's hash
// and its link to the record before it, but not checkpoint signatures (use
// Verify). A Reader is for one goroutine at a time; it must be closed.
type Reader struct {
	dir   string
	after uint64        // records up to this seq are skipped
	limit func() uint64 // if set, records past limit() are not returned yet

	f     *os.File    // current file, nil until one is opened
	path  string      // current file's path
	first uint64      // current file's first seq, from its name
	lr    *lineReader // reads f
	next  *logFile    // a newer file seen at EOF: switch to it after draining f once more

	readLimit uint64 // limit() just before the bytes in lr were read

	have     bool   // prevSeq and prevHash hold the last record read
	prevSeq  uint64 // seq of the last record read (returned or skipped)
	prevHash string // its hash
	err      error  // sticky: a corrupt record stops the Reader
}

// NewReader returns a Reader that returns the records of the log in dir
// with seq greater than afterSeq; afterSeq 0 starts at the oldest record on
// disk. It returns an error wrapping ErrPruned if afterSeq > 0 and record
// afterSeq+1 has been deleted by retention. The directory may be empty; its
// records are returned once they appear.
//
// A Reader on a directory a Log is writing may return a record whose write
// has not been fsynced yet (and could be rolled back if the fsync fails);
// Log.NewReader returns only durable records.
func NewReader(dir string, afterSeq uint64) (*Reader, error) {
	r := &Reader{dir: dir, after: afterSeq}
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	if err := r.openStart(); err != nil {
		return nil, err
	}
	return r, nil
}

// Next returns the next record. At the current end of the log it returns
// io.EOF; calling Next again later returns records appended since (follow
// mode). A record that fails its checks yields a *CorruptError (matching
// ErrCorrupt), which every later call returns too.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	for {
		if r.f == nil {
			if err := r.openStart(); err != nil {
				return nil, err
			}
			if r.f == nil {
				return nil, io.EOF
			}
		}
		line, err := r.lr.next()
		if err == nil {
			rec, err := r.accept(line)
			if err != nil {
				return nil, err
			}
			if rec != nil {
				return rec, nil
			}
			continue
		}
		if errors.Is(err, errLineTooLong) {
			return nil, r.corrupt(r.lr.line+1, r.prevSeq+1, err.Error())
		}
		if !errors.Is(err, io.EOF) {
			return nil, err
		}
		if r.next == nil {
			next, err := r.newerFile()
			if err != nil {
				return nil, err
			}
			if next == nil {
				return nil, io.EOF
			}
			// A rotation finishes the old file before it creates the new one,
			// so reading the old file once more now sees all of it.
			r.next = next
			continue
		}
		if r.lr.partial {
			return nil, r.corrupt(r.lr.line+1, r.prevSeq+1, "incomplete last line in a rotated file")
		}
		if err := r.open(*r.next); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("%w: %s", ErrPruned, r.next.path)
			}
			return nil, err
		}
	}
}

// accept checks line and returns its record, or nil if it is to be skipped.
func (r *Reader) accept(line []byte) (*Record, error) {
	rec, msg := decodeLine(line)
	seq := r.prevSeq + 1
	if rec != nil {
		seq = rec.Seq
	}
	if msg != "" {
		return nil, r.corrupt(r.lr.line, seq, msg)
	}
	if r.limit != nil && rec.Seq > r.readLimit {
		r.lr.unread(len(line))
		return nil, io.EOF
	}
	switch {
	case r.have && rec.Seq != r.prevSeq+1:
		return nil, r.corrupt(r.lr.line, seq, fmt.Sprintf("seq %d follows seq %d", rec.Seq, r.prevSeq))
	case r.have && rec.Prev != r.prevHash:
		return nil, r.corrupt(r.lr.line, seq, "prev does not match the hash of the record before it")
	case !r.have && rec.Seq == 1 && rec.Prev != "":
		return nil, r.corrupt(r.lr.line, seq, "first record has a prev hash")
	case !r.have && r.after > 0 && rec.Seq > r.after+1:
		return nil, r.corrupt(r.lr.line, seq, fmt.Sprintf("seq %d found where seq %d was expected", rec.Seq, r.after+1))
	}
	r.have, r.prevSeq, r.prevHash = true, rec.Seq, rec.Hash
	if rec.Seq <= r.after {
		return nil, nil
	}
	return rec, nil
}

func (r *Reader) corrupt(line int, seq uint64, msg string) error {
	r.err = &CorruptError{Problem{File: r.path, Line: line, Seq: seq, Msg: msg}}
	return r.err
}

// openStart opens the file holding record after+1, if any file exists.
func (r *Reader) openStart() error {
	files, err := listFiles(r.dir)
	if err != nil || len(files) == 0 {
		return err
	}
	start := files[0]
	if r.after > 0 {
		if files[0].first > r.after+1 {
			return fmt.Errorf("%w: seq %d is gone, the oldest file starts at seq %d", ErrPruned, r.after+1, files[0].first)
		}
		for _, f := range files {
			if f.first <= r.after+1 {
				start = f
			}
		}
	}
	return r.open(start)
}

// open makes f the current file.
func (r *Reader) open(f logFile) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.path, r.first, r.next = fh, f.path, f.first, nil
	r.lr = newLineReader(fh)
	// A record is returned only if it was durable before its bytes were
	// read: a record read before its fsync failed may have been cut off
	// and its seq reused since. (limit may be set after the file opened.)
	r.lr.beforeRead = func() {
		if r.limit != nil {
			r.readLimit = r.limit()
		}
	}
	return nil
}

// newerFile returns the oldest file after the current one, or nil.
func (r *Reader) newerFile() (*logFile, error) {
	files, err := listFiles(r.dir)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.first > r.first {
			return &f, nil
		}
	}
	return nil, nil
}

// Close releases the Reader's file. Next then returns os.ErrClosed.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	r.err = os.ErrClosed
	return err
}
