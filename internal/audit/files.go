package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	filePrefix = "audit-"
	fileSuffix = ".jsonl"
	seqDigits  = 20
	lockName   = "LOCK"
)

// fileName is the name of the file whose first record has seq first.
func fileName(first uint64) string {
	return fmt.Sprintf("%s%0*d%s", filePrefix, seqDigits, first, fileSuffix)
}

// parseFileName returns the first seq a log file name announces.
func parseFileName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, fileSuffix)
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	return first, err == nil
}

// logFile is a log file found in a directory.
type logFile struct {
	path  string
	first uint64 // from the name
}

// listFiles returns the log files in dir in seq order. Other names are ignored.
func listFiles(dir string) ([]logFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []logFile
	for _, e := range entries { // ReadDir sorts by name, which is seq order
		if !e.Type().IsRegular() {
			continue
		}
		if first, ok := parseFileName(e.Name()); ok {
			files = append(files, logFile{path: filepath.Join(dir, e.Name()), first: first})
		}
	}
	return files, nil
}

// Files returns the paths of the log files in dir in seq order, ready for
// Verify.
func Files(dir string) ([]string, error) {
	files, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.path
	}
	return paths, nil
}

// recordHead is the part of a record needed to order and age files.
type recordHead struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
}

// readFirst parses the seq and time of the first line of path. It does not
// check the record's hash.
func readFirst(path string) (recordHead, error) {
	var h recordHead
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, MaxRecordBytes+1)).ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return h, fmt.Errorf("%s: no complete first line", path)
		}
		return h, err
	}
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("%s: first line: %w", path, err)
	}
	return h, nil
}

// tail describes the end of a log file.
type tail struct {
	size      int64  // file size
	end       int64  // offset just past the last '\n' (size if there is no torn fragment)
	last      []byte // the last complete line without '\n', nil if none
	lastStart int64  // offset of last
}

// readTail finds the last complete line of f and any incomplete bytes after it.
func readTail(f *os.File) (tail, error) {
	fi, err := f.Stat()
	if err != nil {
		return tail{}, err
	}
	t := tail{size: fi.Size(), end: fi.Size()}
	const maxWindow = 2*MaxRecordBytes + 2
	for n := int64(64 << 10); ; n *= 2 {
		n = min(n, t.size)
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, t.size-n); err != nil && !errors.Is(err, io.EOF) {
			return tail{}, err
		}
		base := t.size - n
		i := bytes.LastIndexByte(buf, '\n')
		if i < 0 && n == t.size {
			t.end = 0 // no complete line at all
			return t, nil
		}
		if i >= 0 {
			j := bytes.LastIndexByte(buf[:i], '\n')
			if j >= 0 || n == t.size {
				t.end = base + int64(i) + 1
				t.last = buf[j+1 : i]
				t.lastStart = base + int64(j) + 1
				return t, nil
			}
		}
		if n >= maxWindow {
			return tail{}, fmt.Errorf("%w: %s: last line longer than %d bytes", ErrCorrupt, f.Name(), MaxRecordBytes)
		}
	}
}

// syncDir fsyncs a directory so that creations, renames and removals in it
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// errLineTooLong is returned by lineReader.next for a line over MaxRecordBytes.
var errLineTooLong = errors.New("line longer than the record size limit")

// lineReader reads '\n'-terminated lines from a file by offset, so that it
// can be resumed after EOF when the file grows (follow mode) and re-reads an
// incomplete last line from its start each time.
type lineReader struct {
	f       *os.File
	off     int64  // file offset of buf[0]: the start of the next unread line
	store   []byte // backing array of buf
	buf     []byte // bytes read from off on
	line    int    // number of lines returned so far
	partial bool   // the last EOF came after an incomplete line
	// beforeRead, if set, runs before each read of the file: every byte in
	// buf was read after its last call.
	beforeRead func()
}

func newLineReader(f *os.File) *lineReader {
	return &lineReader{f: f, store: make([]byte, 64<<10)}
}

// next returns the next complete line without its '\n'; the slice is valid
// until the next call. At the end of the file it returns io.EOF and forgets
// any incomplete line, so the next call reads it again from its start.
func (lr *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(lr.buf, '\n'); i >= 0 {
			line := lr.buf[:i]
			lr.buf = lr.buf[i+1:]
			lr.off += int64(i + 1)
			lr.line++
			lr.partial = false
			return line, nil
		}
		if len(lr.buf) > MaxRecordBytes {
			return nil, errLineTooLong
		}
		// Read the incomplete line again from its start with what follows,
		// rather than append to the bytes already held: the file's tail may
		// have changed since (a failed write is cut off and rewritten), and
		// a line must come from one read.
		had := len(lr.buf)
		if had == len(lr.store) {
			lr.store = append(lr.store, make([]byte, len(lr.store))...)
		}
		if lr.beforeRead != nil {
			lr.beforeRead()
		}
		m, err := lr.f.ReadAt(lr.store, lr.off)
		lr.buf = lr.store[:m]
		if m > had {
			continue
		}
		if err == nil || errors.Is(err, io.EOF) {
			lr.partial = m > 0
			lr.buf = lr.store[:0]
			return nil, io.EOF
		}
		return nil, err
	}
}

// unread puts back the line of length n just returned by next, to be read
// again from the file (not from the buffer, which may be stale by then).
func (lr *lineReader) unread(n int) {
	lr.off -= int64(n + 1)
	lr.line--
	lr.buf = lr.store[:0]
}
