package shamir

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// slowMul is an independent reference implementation of GF(2^8)
// multiplication (schoolbook carry-less product followed by polynomial
// reduction modulo 0x11b), used to cross-check mul.
func slowMul(a, b byte) byte {
	var prod uint16
	for i := 0; i < 8; i++ {
		if b&(1<<i) != 0 {
			prod ^= uint16(a) << i
		}
	}
	for i := 15; i >= 8; i-- {
		if prod&(1<<i) != 0 {
			prod ^= 0x11b << (i - 8)
		}
	}
	return byte(prod)
}

// mustSplit splits secret or fails the test.
func mustSplit(t testing.TB, secret []byte, parts, threshold int) [][]byte {
	t.Helper()
	shares, err := Split(secret, parts, threshold)
	if err != nil {
		t.Fatalf("Split(len=%d, parts=%d, threshold=%d): %v", len(secret), parts, threshold, err)
	}
	return shares
}

// mustCombine combines shares or fails the test.
func mustCombine(t testing.TB, shares [][]byte) []byte {
	t.Helper()
	got, err := Combine(shares)
	if err != nil {
		t.Fatalf("Combine(%d shares): %v", len(shares), err)
	}
	return got
}

// fatalfer is the subset of testing.TB that *rapid.T also implements.
type fatalfer interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checkShares verifies the structural contract of Split's output.
func checkShares(t fatalfer, shares [][]byte, secretLen, parts int) {
	t.Helper()
	if len(shares) != parts {
		t.Fatalf("got %d shares, want %d", len(shares), parts)
	}
	var seen [256]bool
	for i, s := range shares {
		if len(s) != secretLen+1 {
			t.Fatalf("share %d has length %d, want %d", i, len(s), secretLen+1)
		}
		x := s[len(s)-1]
		if x == 0 {
			t.Fatalf("share %d has x coordinate 0", i)
		}
		if seen[x] {
			t.Fatalf("share %d reuses x coordinate %d", i, x)
		}
		seen[x] = true
	}
}

func TestMulKnownAnswers(t *testing.T) {
	tests := []struct {
		a, b, want byte
	}{
		{0x57, 0x83, 0xc1}, // FIPS-197 section 4.2 example
		{0x57, 0x13, 0xfe}, // FIPS-197 section 4.2.1 example
		{0x53, 0xca, 0x01}, // well-known inverse pair
		{0x00, 0xff, 0x00},
		{0x01, 0xab, 0xab},
		{0x02, 0x80, 0x1b}, // xtime with reduction
	}
	for _, tt := range tests {
		if got := mul(tt.a, tt.b); got != tt.want {
			t.Errorf("mul(%#02x, %#02x) = %#02x, want %#02x", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestMulMatchesReference(t *testing.T) {
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			if got, want := mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#02x, %#02x) = %#02x, reference %#02x", a, b, got, want)
			}
		}
	}
}

func TestFieldIdentityAndZero(t *testing.T) {
	for a := 0; a < 256; a++ {
		if got := mul(byte(a), 1); got != byte(a) {
			t.Errorf("mul(%#02x, 1) = %#02x", a, got)
		}
		if got := mul(1, byte(a)); got != byte(a) {
			t.Errorf("mul(1, %#02x) = %#02x", a, got)
		}
		if got := mul(byte(a), 0); got != 0 {
			t.Errorf("mul(%#02x, 0) = %#02x", a, got)
		}
	}
}

func TestFieldCommutativity(t *testing.T) {
	for a := 0; a < 256; a++ {
		for b := a + 1; b < 256; b++ {
			if x, y := mul(byte(a), byte(b)), mul(byte(b), byte(a)); x != y {
				t.Fatalf("mul(%#02x, %#02x) = %#02x but mul(%#02x, %#02x) = %#02x", a, b, x, b, a, y)
			}
		}
	}
}

func TestFieldInverse(t *testing.T) {
	if got := inv(0); got != 0 {
		t.Errorf("inv(0) = %#02x, want 0", got)
	}
	for a := 1; a < 256; a++ {
		ia := inv(byte(a))
		if got := mul(byte(a), ia); got != 1 {
			t.Fatalf("mul(%#02x, inv(%#02x)=%#02x) = %#02x, want 1", a, a, ia, got)
		}
		if got := inv(ia); got != byte(a) {
			t.Fatalf("inv(inv(%#02x)) = %#02x", a, got)
		}
	}
}

// TestFieldDistributivityAndAssociativity checks a*(b^c) == a*b ^ a*c and
// (a*b)*c == a*(b*c) for every a and b and every 5th c (~13M products).
func TestFieldDistributivityAndAssociativity(t *testing.T) {
	step := 5
	if testing.Short() {
		step = 37
	}
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			ab := mul(byte(a), byte(b))
			for c := 0; c < 256; c += step {
				if l, r := mul(byte(a), byte(b)^byte(c)), ab^mul(byte(a), byte(c)); l != r {
					t.Fatalf("distributivity fails for a=%#02x b=%#02x c=%#02x: %#02x != %#02x", a, b, c, l, r)
				}
				if l, r := mul(ab, byte(c)), mul(byte(a), mul(byte(b), byte(c))); l != r {
					t.Fatalf("associativity fails for a=%#02x b=%#02x c=%#02x: %#02x != %#02x", a, b, c, l, r)
				}
			}
		}
	}
}

// TestCombineKnownAnswer checks interpolation against shares built by hand
// from f(x) = 0x42 + 0x01*x and g(x) = 0x07 + 0x53*x, independent of Split.
func TestCombineKnownAnswer(t *testing.T) {
	shares := [][]byte{
		{0x42 ^ 0x01, 0x07 ^ 0x53, 1},               // x = 1
		{0x42 ^ 0x02, 0x07 ^ mul(0x53, 0x02), 2},    // x = 2
		{0x42 ^ 0xca, 0x07 ^ 0x01, 0xca},            // x = 0xca (0x53*0xca = 1)
		{0x42 ^ 0x80, 0x07 ^ mul(0x53, 0x80), 0x80}, // x = 0x80
	}
	want := []byte{0x42, 0x07}
	for i := range shares {
		for j := i + 1; j < len(shares); j++ {
			if got := mustCombine(t, [][]byte{shares[i], shares[j]}); !bytes.Equal(got, want) {
				t.Errorf("Combine(shares %d,%d) = %x, want %x", i, j, got, want)
			}
		}
	}
	if got := mustCombine(t, shares); !bytes.Equal(got, want) {
		t.Errorf("Combine(all) = %x, want %x", got, want)
	}
}

func TestSplitCombineTable(t *testing.T) {
	tests := []struct {
		name             string
		secretLen        int
		parts, threshold int
	}{
		{"1-of-1", 16, 1, 1},
		{"2-of-2", 1, 2, 2},
		{"3-of-5", 32, 5, 3},
		{"5-of-5", 7, 5, 5},
		{"2-of-255", 4, 255, 2},
		{"255-of-255", 4, 255, 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := bytes.Repeat([]byte{0xa5}, tt.secretLen)
			for i := range secret {
				secret[i] ^= byte(i * 31)
			}
			orig := bytes.Clone(secret)
			shares := mustSplit(t, secret, tt.parts, tt.threshold)
			if !bytes.Equal(secret, orig) {
				t.Fatal("Split modified the secret")
			}
			checkShares(t, shares, tt.secretLen, tt.parts)
			if tt.parts == 1 && !bytes.Equal(shares[0][:tt.secretLen], secret) {
				t.Fatal("1-of-1 share does not start with the secret")
			}
			snapshot := make([][]byte, len(shares))
			for i, s := range shares {
				snapshot[i] = bytes.Clone(s)
			}
			if got := mustCombine(t, shares[:tt.threshold]); !bytes.Equal(got, secret) {
				t.Fatalf("Combine(first %d) did not recover the secret", tt.threshold)
			}
			if got := mustCombine(t, shares[len(shares)-tt.threshold:]); !bytes.Equal(got, secret) {
				t.Fatalf("Combine(last %d) did not recover the secret", tt.threshold)
			}
			for i := range shares {
				if !bytes.Equal(shares[i], snapshot[i]) {
					t.Fatalf("Combine modified share %d", i)
				}
			}
		})
	}
}

func TestSplitSharesDoNotAlias(t *testing.T) {
	secret := []byte("correct horse battery staple")
	shares := mustSplit(t, secret, 3, 2)
	want := bytes.Clone(secret)
	clear(secret)
	// Appending to one share must not clobber its neighbour.
	_ = append(shares[0], 0xff, 0xff)
	if got := mustCombine(t, shares[:2]); !bytes.Equal(got, want) {
		t.Fatal("shares alias the secret or each other")
	}
}

func TestSplitErrors(t *testing.T) {
	secret := []byte("secret")
	tests := []struct {
		name             string
		secret           []byte
		parts, threshold int
		want             error
	}{
		{"parts zero", secret, 0, 0, ErrInvalidParts},
		{"parts negative", secret, -1, 2, ErrInvalidParts},
		{"parts 256", secret, 256, 2, ErrInvalidParts},
		{"threshold above parts", secret, 3, 4, ErrInvalidThreshold},
		{"threshold zero", secret, 3, 0, ErrInvalidThreshold},
		{"threshold negative", secret, 3, -2, ErrInvalidThreshold},
		{"threshold 1 with parts 2", secret, 2, 1, ErrInvalidThreshold},
		{"threshold 0 with parts 1", secret, 1, 0, ErrInvalidThreshold},
		{"empty secret", []byte{}, 3, 2, ErrEmptySecret},
		{"nil secret", nil, 3, 2, ErrEmptySecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shares, err := Split(tt.secret, tt.parts, tt.threshold)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Split error = %v, want %v", err, tt.want)
			}
			if shares != nil {
				t.Fatalf("Split returned %d shares alongside an error", len(shares))
			}
			checkErrorMessage(t, err, tt.secret)
		})
	}
}

type failingReader struct{}

var errEntropy = errors.New("no entropy")

func (failingReader) Read([]byte) (int, error) { return 0, errEntropy }

func TestSplitRandomFailure(t *testing.T) {
	old := randReader
	randReader = failingReader{}
	t.Cleanup(func() { randReader = old })
	if _, err := Split([]byte("secret"), 3, 2); !errors.Is(err, errEntropy) {
		t.Fatalf("Split error = %v, want wrapped %v", err, errEntropy)
	}
}

func TestCombineErrors(t *testing.T) {
	tests := []struct {
		name   string
		shares [][]byte
		want   error
	}{
		{"nil", nil, ErrTooFewShares},
		{"empty", [][]byte{}, ErrTooFewShares},
		{"single empty share", [][]byte{{}}, ErrShareTooShort},
		{"single one-byte share", [][]byte{{0x01}}, ErrShareTooShort},
		{"second share too short", [][]byte{{0xaa, 0x01}, {0x02}}, ErrShareTooShort},
		{"nil share", [][]byte{{0xaa, 0x01}, nil}, ErrShareTooShort},
		{"mismatched lengths", [][]byte{{0xaa, 0xbb, 0x01}, {0xcc, 0x02}}, ErrShareLengthMismatch},
		{"duplicate x", [][]byte{{0xaa, 0x07}, {0xbb, 0x03}, {0xcc, 0x07}}, ErrDuplicateX},
		{"identical shares", [][]byte{{0xaa, 0x07}, {0xaa, 0x07}}, ErrDuplicateX},
		{"zero x", [][]byte{{0xaa, 0x01}, {0xbb, 0x00}}, ErrZeroX},
		{"single share zero x", [][]byte{{0xaa, 0x00}}, ErrZeroX},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Combine(tt.shares)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Combine error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Fatalf("Combine returned %x alongside an error", got)
			}
			for _, s := range tt.shares {
				checkErrorMessage(t, err, s)
			}
		})
	}
}

// checkErrorMessage asserts that err's message is lowercase-prefixed and does
// not leak data (in raw or hex form) when data is at least 2 bytes long.
func checkErrorMessage(t *testing.T, err error, data []byte) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "shamir: ") || strings.ToLower(msg[:9]) != msg[:9] {
		t.Errorf("error %q should start with lowercase %q", msg, "shamir: ")
	}
	if len(data) < 2 {
		return
	}
	if strings.Contains(msg, string(data)) || strings.Contains(msg, hex.EncodeToString(data)) {
		t.Errorf("error %q leaks input bytes", msg)
	}
}

// drawSplit draws a secret of at least minLen bytes and valid parameters
// with at least minParts parts, and splits the secret.
func drawSplit(t *rapid.T, minLen, minParts int) (secret []byte, threshold int, shares [][]byte) {
	secret = rapid.SliceOfN(rapid.Byte(), minLen, 64).Draw(t, "secret")
	parts := rapid.IntRange(minParts, 20).Draw(t, "parts")
	threshold = 1
	if parts > 1 {
		threshold = rapid.IntRange(2, parts).Draw(t, "threshold")
	}
	shares, err := Split(secret, parts, threshold)
	if err != nil {
		t.Fatalf("Split(len=%d, parts=%d, threshold=%d): %v", len(secret), parts, threshold, err)
	}
	checkShares(t, shares, len(secret), parts)
	return secret, threshold, shares
}

// pickSubset returns k of shares chosen (and ordered) at random.
func pickSubset(t *rapid.T, shares [][]byte, k int) [][]byte {
	idx := make([]int, len(shares))
	for i := range idx {
		idx[i] = i
	}
	idx = rapid.Permutation(idx).Draw(t, "order")
	subset := make([][]byte, k)
	for i := range subset {
		subset[i] = shares[idx[i]]
	}
	return subset
}

func TestPropertyThresholdRecovers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		secret, threshold, shares := drawSplit(t, 1, 1)
		k := rapid.IntRange(threshold, len(shares)).Draw(t, "k")
		got, err := Combine(pickSubset(t, shares, k))
		if err != nil {
			t.Fatalf("Combine: %v", err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("Combine of %d shares (threshold %d) = %x, want %x", k, threshold, got, secret)
		}
	})
}

// TestPropertyBelowThresholdFails checks that threshold-1 shares do not yield
// the secret. Each wrong result is uniformly random, so a false failure needs
// a chance match of probability 2^-(8*len) <= 2^-32; hence len >= 4.
func TestPropertyBelowThresholdFails(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// parts >= 2 forces threshold >= 2, so threshold-1 >= 1 shares.
		secret, threshold, shares := drawSplit(t, 4, 2)
		got, err := Combine(pickSubset(t, shares, threshold-1))
		if err != nil {
			t.Fatalf("Combine: %v", err)
		}
		if bytes.Equal(got, secret) {
			t.Fatalf("Combine of %d shares recovered a secret with threshold %d", threshold-1, threshold)
		}
	})
}

// FuzzCombine feeds arbitrary share sets to Combine, which must never panic.
// The input is decoded as a sequence of shares, each a length byte followed
// by up to that many bytes (truncated at the end of the input).
func FuzzCombine(f *testing.F) {
	// Valid 2-of-3 split of "hi": f(x) = 'h' + 0x01*x, 'i' + 0x02*x; two shares.
	f.Add([]byte{3, 'h' ^ 0x01, 'i' ^ 0x02, 1, 3, 'h' ^ 0x02, 'i' ^ 0x04, 2})
	// A real split of a 32-byte secret.
	shares, err := Split(bytes.Repeat([]byte{0x5c}, 32), 5, 3)
	if err != nil {
		f.Fatal(err)
	}
	var enc []byte
	for _, s := range shares {
		enc = append(enc, byte(len(s)))
		enc = append(enc, s...)
	}
	f.Add(enc)
	f.Add([]byte{})                             // no shares
	f.Add([]byte{0})                            // one empty share
	f.Add([]byte{1, 0x07})                      // one share too short
	f.Add([]byte{2, 0xaa, 0x00})                // single share with x = 0
	f.Add([]byte{2, 0xaa, 0x05, 2, 0xbb, 0x05}) // duplicate x
	f.Add([]byte{3, 0xaa, 0xbb, 0x01, 2, 0xcc}) // mismatched (truncated) lengths
	f.Add([]byte{255, 1, 2, 3})                 // length byte exceeding the input

	f.Fuzz(func(t *testing.T, data []byte) {
		var in [][]byte
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			in = append(in, data[1:1+n])
			data = data[1+n:]
		}
		got, err := Combine(in)
		if err != nil {
			if got != nil {
				t.Fatalf("Combine returned a secret alongside error %v", err)
			}
			return
		}
		if want := len(in[0]) - 1; len(got) != want {
			t.Fatalf("Combine returned %d bytes, want %d", len(got), want)
		}
	})
}

func BenchmarkSplit(b *testing.B) {
	secret := bytes.Repeat([]byte{0x42}, 32)
	b.ReportAllocs()
	b.SetBytes(int64(len(secret)))
	for b.Loop() {
		if _, err := Split(secret, 5, 3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCombine(b *testing.B) {
	secret := bytes.Repeat([]byte{0x42}, 32)
	shares := mustSplit(b, secret, 5, 3)[:3]
	b.ReportAllocs()
	b.SetBytes(int64(len(secret)))
	for b.Loop() {
		if _, err := Combine(shares); err != nil {
			b.Fatal(err)
		}
	}
}
