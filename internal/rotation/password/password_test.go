package password

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		name   string
		p      Policy
		length int
		allow  string
		each   []string
	}{
		{"default", Policy{}, 32, Lower + Upper + Digits + Punctuation, []string{Lower, Upper, Digits, Punctuation}},
		{"short each class", Policy{Length: 4}, 4, Lower + Upper + Digits + Punctuation, []string{Lower, Upper, Digits, Punctuation}},
		{"no punctuation", Policy{Length: 20, ExcludePunctuation: true}, 20, Lower + Upper + Digits, []string{Lower, Upper, Digits}},
		{"digits only", Policy{Length: 6, ExcludeLowercase: true, ExcludeUppercase: true, ExcludePunctuation: true}, 6, Digits, []string{Digits}},
		{"excluded chars", Policy{Length: 64, ExcludeCharacters: "'\"\\`abc0"}, 64, strings.Map(func(r rune) rune {
			if strings.ContainsRune("'\"\\`abc0", r) {
				return -1
			}
			return r
		}, Lower+Upper+Digits+Punctuation), nil},
		{"space", Policy{Length: 200, IncludeSpace: true, AnyClass: true}, 200, Lower + Upper + Digits + Punctuation + " ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				pw, err := tt.p.Generate()
				if err != nil {
					t.Fatalf("Generate(%+v) error %v", tt.p, err)
				}
				if len(pw) != tt.length {
					t.Fatalf("len(%q) = %d, want %d", pw, len(pw), tt.length)
				}
				for _, r := range pw {
					if !strings.ContainsRune(tt.allow, r) {
						t.Fatalf("Generate(%+v) = %q has %q outside the alphabet", tt.p, pw, r)
					}
				}
				for _, set := range tt.each {
					if !strings.ContainsAny(pw, set) {
						t.Fatalf("Generate(%+v) = %q lacks a character of %q", tt.p, pw, set)
					}
				}
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name  string
		p     Policy
		field string
	}{
		{"too long", Policy{Length: MaxLength + 1}, "length"},
		{"negative", Policy{Length: -1}, "length"},
		{"nothing left", Policy{ExcludeLowercase: true, ExcludeUppercase: true, ExcludeNumbers: true, ExcludePunctuation: true}, "exclude_characters"},
		{"too short for classes", Policy{Length: 3}, "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.Generate()
			var pe *Error
			if !errors.As(err, &pe) || pe.Field != tt.field {
				t.Fatalf("Generate(%+v) error = %v, want a policy error on %s", tt.p, err, tt.field)
			}
		})
	}
}

func TestGenerateDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		pw, err := Policy{Length: 16}.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if seen[pw] {
			t.Fatalf("password %q generated twice", pw)
		}
		seen[pw] = true
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (Policy{}).Generate(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIntnUniform checks that rejection sampling favors no value: with
// n = 3 a modulo reduction of a byte would give 0 about 0.4% more often.
func TestIntnUniform(t *testing.T) {
	r := &rng{off: len(rng{}.buf)}
	for _, n := range []int{3, 62, 95, 200, 1000} {
		const draws = 200000
		counts := make([]int, n)
		for range draws {
			v := r.intn(n)
			if v < 0 || v >= n {
				t.Fatalf("intn(%d) = %d", n, v)
			}
			counts[v]++
		}
		// Chi-squared against uniform; the bound is far in the tail
		// (about 6 standard deviations) so the test does not flake.
		want := float64(draws) / float64(n)
		chi := 0.0
		for _, c := range counts {
			d := float64(c) - want
			chi += d * d / want
		}
		df := float64(n - 1)
		if chi > df+6*math.Sqrt(2*df)+10 {
			t.Errorf("intn(%d): chi-squared %.1f with %v degrees of freedom", n, chi, df)
		}
	}
}
