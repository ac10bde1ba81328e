package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func fill(t testing.TB, n int) *mem.Backend {
	t.Helper()
	b := mem.New()
	b.Update(context.Background(), func(tx storage.Tx) error {
		for i := 0; i < n; i++ {
			tx.Put(fmt.Sprintf("k/%03d", i), []byte(fmt.Sprintf("value %d", i)))
		}
		tx.Put("empty", nil)
		return nil
	})
	return b
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	n, err := Write(context.Background(), fill(t, 100), &buf)
	if err != nil || n != 101 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := map[string]string{}
	m, err := Parse(buf.Bytes(), func(k string, v []byte) error { got[k] = string(v); return nil })
	if err != nil || m != 101 || got["k/042"] != "value 42" || got["empty"] != "" {
		t.Fatalf("Parse = %d, %v (%d records)", m, err, len(got))
	}
}

func TestCorruption(t *testing.T) {
	var buf bytes.Buffer
	Write(context.Background(), fill(t, 10), &buf)
	good := buf.Bytes()
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not a snapshot", []byte("hello world, this is not a snapshot at all, no")},
		{"truncated", good[:len(good)-1]},
		{"flipped byte", func() []byte { b := bytes.Clone(good); b[30] ^= 1; return b }()},
		{"appended", append(bytes.Clone(good), 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			_, err := Parse(tt.data, func(string, []byte) error { called = true; return nil })
			if !errors.Is(err, ErrCorrupt) || called {
				t.Fatalf("Parse = %v (fn called %v), want ErrCorrupt before any record", err, called)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	Write(context.Background(), fill(f, 3), &buf)
	f.Add(buf.Bytes())
	f.Add([]byte(magic))
	f.Add([]byte(magic + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")) // a huge length
	f.Fuzz(func(t *testing.T, data []byte) {
		Parse(data, func(string, []byte) error { return nil })
	})
}
