// Package snapshot writes and reads Coffer backups: every storage record,
// taken from one consistent read transaction while the server serves, in
// a self-checking stream. Values are stored as the barrier encrypted them,
// so a snapshot is as protected as the data files: restoring one needs the
// unseal keys (or key file) of the server it came from. Secret names (the
// storage keys) are not encrypted, as in the data files.
//
// Format: the line "COFFER-SNAPSHOT-1\n", then for each record a uvarint
// key length, the key, a uvarint value length and the value, then a zero
// key length, the record count as uvarint, and the SHA-256 of everything
// before it.
package snapshot

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/coffer-dev/coffer/internal/storage"
)

const magic = "COFFER-SNAPSHOT-1\n"

// Limits on what Read accepts.
const (
	maxKey   = storage.MaxKeyLen
	maxValue = 16 << 20
)

// ErrCorrupt means a snapshot is truncated, altered or not a snapshot.
var ErrCorrupt = errors.New("snapshot is corrupt or truncated")

// Write streams every record of src to w and returns how many it wrote.
func Write(ctx context.Context, src storage.Snapshotter, w io.Writer) (int, error) {
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	if _, err := bw.WriteString(magic); err != nil {
		return 0, err
	}
	n := 0
	var buf [binary.MaxVarintLen64]byte
	put := func(b []byte) error {
		if _, err := bw.Write(buf[:binary.PutUvarint(buf[:], uint64(len(b)))]); err != nil {
			return err
		}
		_, err := bw.Write(b)
		return err
	}
	err := src.ForEach(ctx, func(k string, v []byte) error {
		n++
		if err := put([]byte(k)); err != nil {
			return err
		}
		return put(v)
	})
	if err != nil {
		return n, err
	}
	bw.Write(buf[:binary.PutUvarint(buf[:], 0)])
	bw.Write(buf[:binary.PutUvarint(buf[:], uint64(n))])
	if err := bw.Flush(); err != nil {
		return n, err
	}
	_, err = w.Write(h.Sum(nil))
	return n, err
}

// Parse verifies a whole snapshot and calls fn for each record, in order.
// Nothing is passed to fn unless the checksum and structure are intact, so
// a corrupt snapshot changes nothing.
func Parse(data []byte, fn func(key string, value []byte) error) (int, error) {
	if len(data) < len(magic)+sha256.Size || string(data[:len(magic)]) != magic {
		return 0, fmt.Errorf("%w: not a Coffer snapshot", ErrCorrupt)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); string(got[:]) != string(sum) {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	rest := body[len(magic):]
	next := func(limit uint64) ([]byte, bool) {
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > limit || uint64(len(rest)-n) < l {
			return nil, false
		}
		b := rest[n : n+int(l)]
		rest = rest[n+int(l):]
		return b, true
	}
	type rec struct{ k, v []byte }
	var recs []rec
	for {
		k, ok := next(maxKey)
		if !ok {
			return 0, ErrCorrupt
		}
		if len(k) == 0 {
			break
		}
		v, ok := next(maxValue)
		if !ok {
			return 0, ErrCorrupt
		}
		recs = append(recs, rec{k, v})
	}
	count, n := binary.Uvarint(rest)
	if n <= 0 || count != uint64(len(recs)) || n != len(rest) {
		return 0, fmt.Errorf("%w: record count does not match", ErrCorrupt)
	}
	for _, r := range recs {
		if err := fn(string(r.k), r.v); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}
