package barrier

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/mem"
)

func newUnsealed(t testing.TB) (*Barrier, *mem.Backend, []byte) {
	t.Helper()
	be := mem.New()
	b := New(be, nil)
	root, err := NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Initialize(ctx, root); err != nil {
		t.Fatal(err)
	}
	if !b.Sealed() {
		t.Fatal("barrier unsealed after Initialize")
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	return b, be, root
}

func put(t testing.TB, b *Barrier, key string, v []byte) {
	t.Helper()
	if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put(key, v) }); err != nil {
		t.Fatalf("Put(%q) = %v", key, err)
	}
}

func TestRoundTripProperty(t *testing.T) {
	b, be, _ := newUnsealed(t)
	rapid.Check(t, func(t *rapid.T) {
		key := "p/" + rapid.StringMatching(`[a-z0-9/]{1,40}`).Draw(t, "key")
		val := rapid.SliceOfN(rapid.Byte(), 0, 4096).Draw(t, "val")
		if err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put(key, val) }); err != nil {
			t.Fatal(err)
		}
		got, err := b.Get(context.Background(), key)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("Get(%q) = %x, %v, want %x", key, got, err, val)
		}
		raw, _ := be.Get(context.Background(), key)
		if len(val) >= 8 && bytes.Contains(raw, val) {
			t.Fatalf("plaintext visible in storage for %q", key)
		}
	})
}

func TestTamperDetection(t *testing.T) {
	ctx := context.Background()
	b, be, _ := newUnsealed(t)
	put(t, b, "a", []byte("alpha-secret"))
	put(t, b, "b", []byte("bravo-secret"))
	rawA, _ := be.Get(ctx, "a")
	rawB, _ := be.Get(ctx, "b")

	tests := []struct {
		name  string
		write func(tx storage.Tx) error
		key   string
	}{
		{"flipped ciphertext bit", func(tx storage.Tx) error {
			r := bytes.Clone(rawA)
			r[len(r)-1] ^= 1
			return tx.Put("a", r)
		}, "a"},
		{"flipped nonce bit", func(tx storage.Tx) error {
			r := bytes.Clone(rawA)
			r[headerSize] ^= 0x80
			return tx.Put("a", r)
		}, "a"},
		{"changed term", func(tx storage.Tx) error {
			r := bytes.Clone(rawA)
			r[4] = 9
			return tx.Put("a", r)
		}, "a"},
		{"swapped records (wrong AAD)", func(tx storage.Tx) error { return tx.Put("a", rawB) }, "a"},
		{"moved record", func(tx storage.Tx) error { return tx.Put("c", rawA) }, "c"},
		{"truncated", func(tx storage.Tx) error { return tx.Put("a", rawA[:10]) }, "a"},
		{"empty", func(tx storage.Tx) error { return tx.Put("a", nil) }, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := be.Update(ctx, tt.write); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { be.Update(ctx, func(tx storage.Tx) error { return tx.Put("a", rawA) }) })
			if _, err := b.Get(ctx, tt.key); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Get(%q) = %v, want ErrDecrypt", tt.key, err)
			}
		})
	}
}

func TestSealAndWrongKey(t *testing.T) {
	ctx := context.Background()
	b, _, root := newUnsealed(t)
	put(t, b, "k", []byte("v"))
	b.Seal()
	if _, err := b.Get(ctx, "k"); !errors.Is(err, ErrSealed) {
		t.Fatalf("Get while sealed = %v, want ErrSealed", err)
	}
	if err := b.Update(ctx, func(storage.Tx) error { return nil }); !errors.Is(err, ErrSealed) {
		t.Fatalf("Update while sealed = %v, want ErrSealed", err)
	}
	wrong := bytes.Clone(root)
	wrong[0] ^= 1
	if err := b.Unseal(ctx, wrong); !errors.Is(err, ErrInvalidRootKey) {
		t.Fatalf("Unseal(wrong key) = %v, want ErrInvalidRootKey", err)
	}
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after unseal = %q, %v", got, err)
	}
	if err := b.Initialize(ctx, root); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second Initialize = %v, want ErrAlreadyInitialized", err)
	}
}

func TestReservedKeys(t *testing.T) {
	b, _, _ := newUnsealed(t)
	for _, k := range []string{KeyringPath, PlaintextPrefix + "seal"} {
		err := b.Update(context.Background(), func(tx storage.Tx) error { return tx.Put(k, []byte("x")) })
		if !errors.Is(err, ErrReservedKey) {
			t.Errorf("Put(%q) = %v, want ErrReservedKey", k, err)
		}
	}
}

func TestRotateAndRewrap(t *testing.T) {
	ctx := context.Background()
	b, be, root := newUnsealed(t)
	for _, k := range []string{"x/1", "x/2", "x/3"} {
		put(t, b, k, []byte("value of "+k))
	}
	term, err := b.Rotate(ctx)
	if err != nil || term != 2 {
		t.Fatalf("Rotate = %d, %v, want 2", term, err)
	}
	put(t, b, "x/4", []byte("value of x/4"))
	if got := termOf(t, be, "x/1"); got != 1 {
		t.Fatalf("term of x/1 before rewrap = %d, want 1", got)
	}
	if got := termOf(t, be, "x/4"); got != 2 {
		t.Fatalf("term of x/4 = %d, want 2", got)
	}
	n, err := b.Rewrap(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Rewrap = %d, %v, want 3", n, err)
	}
	// The rotated keyring survives a seal/unseal cycle with the same root key.
	b.Seal()
	if err := b.Unseal(ctx, root); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"x/1", "x/2", "x/3", "x/4"} {
		if got := termOf(t, be, k); got != 2 {
			t.Errorf("term of %s after rewrap = %d, want 2", k, got)
		}
		if v, err := b.Get(ctx, k); err != nil || string(v) != "value of "+k {
			t.Errorf("Get(%q) = %q, %v", k, v, err)
		}
	}
	if st, _ := b.Status(); st.Term != 2 || st.Terms != 2 {
		t.Errorf("Status = %+v, want term 2 of 2", st)
	}
}

func termOf(t testing.TB, be storage.Backend, key string) uint32 {
	t.Helper()
	raw, err := be.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	term, _ := recordTerm(raw)
	return term
}

func BenchmarkGet(b *testing.B) {
	br, _, _ := newUnsealed(b)
	put(b, br, "bench", bytes.Repeat([]byte("x"), 100))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Get(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncrypt100B(b *testing.B) {
	br, _, _ := newUnsealed(b)
	ks := br.keys.Load()
	v := bytes.Repeat([]byte("x"), 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encrypt(ks.aeads[ks.active], ks.active, "secret/v/abc/1", v); err != nil {
			b.Fatal(err)
		}
	}
}
