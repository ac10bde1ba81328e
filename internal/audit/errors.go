package audit

import (
	"errors"
	"fmt"
)

// ErrUnavailable is wrapped by every error of Append and Close that means a
// record could not be made durable. The caller must refuse the request the
// record describes.
var ErrUnavailable = errors.New("audit log unavailable")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// ErrInvalidRecord is wrapped by Append's error for a record the Log will not
// write: nil, too large, or claiming a type or field only the Log sets.
var ErrInvalidRecord = errors.New("invalid audit record")

// ErrInvalidOptions is wrapped by Open's error for unusable Options.
var ErrInvalidOptions = errors.New("invalid audit options")

// ErrLocked is returned by Open when another Log holds the directory.
var ErrLocked = errors.New("audit directory is in use by another log")

// ErrTornTail is wrapped by Open's error when the newest file ends with an
// incomplete line and Options.RepairTornTail is not set.
var ErrTornTail = errors.New("audit log ends with an incomplete record")

// ErrCorrupt is matched (with errors.Is) by every *CorruptError, and wrapped
// by Open's error when the chain on disk cannot be continued safely.
var ErrCorrupt = errors.New("audit log is corrupt")

// ErrPruned is returned by NewReader and Reader.Next when the records the
// reader needs next have already been deleted by retention.
var ErrPruned = errors.New("audit records were deleted by retention")

// CorruptError is returned by Reader.Next for a record that fails its checks.
// Problem names the record.
type CorruptError struct {
	Problem Problem
}

func (e *CorruptError) Error() string {
	return "audit log is corrupt: " + e.Problem.String()
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Problem names the first bad record found by Verify or a Reader.
type Problem struct {
	File string `json:"file"` // path of the file holding the record
	Line int    `json:"line"` // 1-based line number in File
	Seq  uint64 `json:"seq"`  // the record's seq, or the seq expected there if unreadable
	Msg  string `json:"message"`
}

// String formats p as file:line: (seq N) msg.
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: (seq %d) %s", p.File, p.Line, p.Seq, p.Msg)
}
