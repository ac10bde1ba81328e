// Package shamir implements Shamir's secret sharing over GF(2^8).
//
// The field is the one used by AES: GF(2^8) with the reduction polynomial
// x^8 + x^4 + x^3 + x + 1 (0x11b). Every byte of the secret is shared
// independently: for each byte a fresh random polynomial of degree
// threshold-1 is drawn whose constant term is that byte, and each share holds
// the polynomial evaluations at the share's x coordinate.
//
// A share is laid out as len(secret) y values followed by a single byte
// holding the share's x coordinate, so every share is len(secret)+1 bytes
// long. x coordinates are distinct and non-zero.
//
// Security notes:
//   - Polynomial coefficients are read from crypto/rand.
//   - Field multiplication and inversion run in constant time with respect to
//     their operands: there are no data-dependent branches, loop bounds or
//     table lookups (see mul and inv).
//   - Error messages never contain secret or share bytes; they mention only
//     counts, lengths and share indices.
//
// Combine cannot detect that it was given fewer shares than the threshold
// used at Split time, nor that a share was corrupted or comes from a
// different split: in those cases it silently returns a wrong secret. Callers
// that need integrity must authenticate the secret separately (for example by
// storing a MAC or by using the secret as an AEAD key).
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// Errors returned by Split and Combine. They may be wrapped with additional
// context (never containing secret or share bytes); test with errors.Is.
var (
	// ErrInvalidParts is returned by Split when parts is outside 1..255.
	ErrInvalidParts = errors.New("shamir: parts must be between 1 and 255")
	// ErrInvalidThreshold is returned by Split when threshold is not in
	// 2..parts, unless parts and threshold are both 1.
	ErrInvalidThreshold = errors.New("shamir: threshold must be between 2 and parts (or 1 when parts is 1)")
	// ErrEmptySecret is returned by Split when the secret is empty.
	ErrEmptySecret = errors.New("shamir: secret must not be empty")
	// ErrTooFewShares is returned by Combine when no shares are given.
	ErrTooFewShares = errors.New("shamir: too few shares")
	// ErrShareTooShort is returned by Combine when a share is shorter than
	// two bytes (at least one y value plus the x coordinate).
	ErrShareTooShort = errors.New("shamir: share too short")
	// ErrShareLengthMismatch is returned by Combine when the shares do not
	// all have the same length.
	ErrShareLengthMismatch = errors.New("shamir: shares have different lengths")
	// ErrDuplicateX is returned by Combine when two shares have the same x
	// coordinate.
	ErrDuplicateX = errors.New("shamir: duplicate share x coordinate")
	// ErrZeroX is returned by Combine when a share has x coordinate 0, which
	// Split never produces (f(0) is the secret itself).
	ErrZeroX = errors.New("shamir: share x coordinate is zero")
)

// randReader is the source of randomness; it is crypto/rand.Reader and is a
// variable only so tests could substitute it. Production code never changes it.
var randReader io.Reader = rand.Reader

// Split divides secret into parts shares such that any threshold of them
// recover the secret with Combine and any threshold-1 of them reveal nothing
// about it.
//
// Requirements: secret is non-empty and 2 <= threshold <= parts <= 255. As a
// special case parts == 1 && threshold == 1 is accepted and yields a single
// share equal to secret followed by a random non-zero x coordinate.
//
// Each returned share is len(secret)+1 bytes: the y values followed by the x
// coordinate. The x coordinates are the first parts entries of a uniformly
// random permutation of 1..255, so they are distinct and non-zero. The
// returned shares do not alias secret and are independent slices (appending
// to one never overwrites another). Split does not modify secret.
//
// Errors: ErrInvalidParts, ErrInvalidThreshold, ErrEmptySecret, or a wrapped
// error from the random source.
func Split(secret []byte, parts, threshold int) ([][]byte, error) {
	if parts < 1 || parts > 255 {
		return nil, fmt.Errorf("%w (got %d)", ErrInvalidParts, parts)
	}
	if !(threshold >= 2 && threshold <= parts) && !(parts == 1 && threshold == 1) {
		return nil, fmt.Errorf("%w (got threshold %d, parts %d)", ErrInvalidThreshold, threshold, parts)
	}
	if len(secret) == 0 {
		return nil, ErrEmptySecret
	}

	xs, err := randomXs(parts)
	if err != nil {
		return nil, err
	}

	// coeffs[j*(threshold-1)+k] is the coefficient of x^(k+1) in the
	// polynomial for secret byte j.
	degree := threshold - 1
	coeffs := make([]byte, len(secret)*degree)
	defer clear(coeffs)
	if _, err := io.ReadFull(randReader, coeffs); err != nil {
		return nil, fmt.Errorf("shamir: reading random coefficients: %w", err)
	}

	n := len(secret) + 1
	buf := make([]byte, parts*n)
	shares := make([][]byte, parts)
	for i := range shares {
		share := buf[i*n : (i+1)*n : (i+1)*n]
		x := xs[i]
		for j, s := range secret {
			c := coeffs[j*degree : (j+1)*degree]
			// Horner's rule: ((c[d-1]*x + c[d-2])*x + ... + c[0])*x + s.
			var y byte
			for k := degree - 1; k >= 0; k-- {
				y = mul(y, x) ^ c[k]
			}
			share[j] = mul(y, x) ^ s
		}
		share[n-1] = x
		shares[i] = share
	}
	return shares, nil
}

// randomXs returns the first n entries of a uniformly random permutation of
// 1..255 (a partial Fisher-Yates shuffle driven by crypto/rand).
func randomXs(n int) ([]byte, error) {
	var perm [255]byte
	for i := range perm {
		perm[i] = byte(i + 1)
	}
	r := byteSource{r: randReader}
	for i := 0; i < n; i++ {
		j, err := r.uniform(255 - i)
		if err != nil {
			return nil, fmt.Errorf("shamir: choosing x coordinates: %w", err)
		}
		perm[i], perm[i+j] = perm[i+j], perm[i]
	}
	out := make([]byte, n)
	copy(out, perm[:n])
	return out, nil
}

// byteSource hands out random bytes from r, buffered.
type byteSource struct {
	r   io.Reader
	buf [64]byte
	pos int
	n   int
}

// uniform returns a uniformly distributed integer in [0, bound) for
// 1 <= bound <= 256, using rejection sampling to avoid modulo bias.
func (s *byteSource) uniform(bound int) (int, error) {
	limit := 256 - 256%bound // largest multiple of bound that is <= 256
	for {
		if s.pos == s.n {
			if _, err := io.ReadFull(s.r, s.buf[:]); err != nil {
				return 0, err
			}
			s.pos, s.n = 0, len(s.buf)
		}
		b := int(s.buf[s.pos])
		s.pos++
		if b < limit {
			return b % bound, nil
		}
	}
}

// Combine reconstructs a secret from shares produced by Split, using Lagrange
// interpolation at x = 0. The order of shares does not matter.
//
// At least threshold shares from the same Split call must be given;
// Combine cannot check this, and with too few (or corrupted, or mixed)
// shares it returns a wrong secret without error. As a special case a single
// share is accepted and its y values (share[:len(share)-1]) are returned,
// which recovers the secret of a 1-of-1 split.
//
// Errors: ErrTooFewShares (no shares), ErrShareTooShort (a share shorter than
// 2 bytes), ErrShareLengthMismatch, ErrZeroX, ErrDuplicateX. Combine does not
// modify shares; the returned slice is newly allocated.
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) == 0 {
		return nil, ErrTooFewShares
	}
	n := len(shares[0])
	for i, s := range shares {
		if len(s) < 2 {
			return nil, fmt.Errorf("%w: share %d has %d bytes, need at least 2", ErrShareTooShort, i, len(s))
		}
		if len(s) != n {
			return nil, fmt.Errorf("%w: share %d has %d bytes, share 0 has %d", ErrShareLengthMismatch, i, len(s), n)
		}
	}

	// The x coordinates are public (they are not secret material), so
	// checking them with branches is fine.
	var seen [256]int // 1 + index of the share using each x, 0 if unused
	xs := make([]byte, len(shares))
	for i, s := range shares {
		x := s[n-1]
		if x == 0 {
			return nil, fmt.Errorf("%w: share %d", ErrZeroX, i)
		}
		if prev := seen[x]; prev != 0 {
			return nil, fmt.Errorf("%w: shares %d and %d", ErrDuplicateX, prev-1, i)
		}
		seen[x] = i + 1
		xs[i] = x
	}

	secret := make([]byte, n-1)
	if len(shares) == 1 {
		copy(secret, shares[0][:n-1])
		return secret, nil
	}

	// Lagrange basis polynomials evaluated at 0:
	//   l_i(0) = prod_{m != i} (0 - x_m) / (x_i - x_m)
	//          = prod_{m != i} x_m / (x_i ^ x_m)     (subtraction is XOR)
	// They depend only on the x coordinates, so compute them once.
	weights := make([]byte, len(shares))
	for i, xi := range xs {
		num, den := byte(1), byte(1)
		for m, xm := range xs {
			if m == i {
				continue
			}
			num = mul(num, xm)
			den = mul(den, xi^xm)
		}
		weights[i] = mul(num, inv(den))
	}

	for i, s := range shares {
		w := weights[i]
		for j := range secret {
			secret[j] ^= mul(s[j], w)
		}
	}
	return secret, nil
}

// mul multiplies a and b in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
//
// It runs in constant time: a fixed 8-iteration shift-and-add ("Russian
// peasant") loop in which the conditional add of a and the conditional
// reduction by 0x1b are performed with all-ones/all-zeros masks derived from
// the operand bits, so there are no data-dependent branches and no table
// lookups (which could leak through cache timing).
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a  // add a if the low bit of b is set
		carry := -(a >> 7) // 0xff if the high bit of a is set, else 0x00
		a = (a << 1) ^ (carry & 0x1b)
		b >>= 1
	}
	return p
}

// inv returns the multiplicative inverse of a in GF(2^8), computed as a^254
// (since a^255 = 1 for every non-zero a). It uses a fixed sequence of 13
// constant-time multiplications, so it is constant time as well. inv(0) is 0.
func inv(a byte) byte {
	// 254 = 0b11111110, so a^254 = a^2 * a^4 * a^8 * ... * a^128.
	sq := mul(a, a) // a^2
	r := sq
	for range 6 {
		sq = mul(sq, sq) // a^4, a^8, ..., a^128
		r = mul(r, sq)
	}
	return r
}
