package awsapi

import (
	"math"
	"strings"
	"testing"
)

func password(t *testing.T, in randomPasswordIn) (string, error) {
	t.Helper()
	var a API
	out, err := a.getRandomPassword(nil, &in, "")
	if err != nil {
		return "", err
	}
	return out.(*randomPasswordOut).RandomPassword, nil
}

func ptr[T any](v T) *T { return &v }

func TestGetRandomPasswordOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      randomPasswordIn
		length  int
		allowed string
		needs   []string
	}{
		{"defaults", randomPasswordIn{}, 32, lowerChars + upperChars + digitChars + punctuationChars,
			[]string{lowerChars, upperChars, digitChars, punctuationChars}},
		{"no punctuation", randomPasswordIn{ExcludePunctuation: ptr(true), PasswordLength: ptr(int64(20))}, 20,
			lowerChars + upperChars + digitChars, []string{lowerChars, upperChars, digitChars}},
		{"digits only", randomPasswordIn{ExcludeLowercase: ptr(true), ExcludeUppercase: ptr(true), ExcludePunctuation: ptr(true), PasswordLength: ptr(int64(6))}, 6,
			digitChars, []string{digitChars}},
		{"exclude characters", randomPasswordIn{ExcludeCharacters: ptr(`"'\/@` + "`"), PasswordLength: ptr(int64(64))}, 64,
			strings.NewReplacer(`"`, "", "'", "", `\`, "", "/", "", "@", "", "`", "").Replace(lowerChars + upperChars + digitChars + punctuationChars), nil},
		{"space", randomPasswordIn{IncludeSpace: ptr(true), ExcludeLowercase: ptr(true), ExcludeUppercase: ptr(true), ExcludeNumbers: ptr(true), ExcludePunctuation: ptr(true), PasswordLength: ptr(int64(3))}, 3,
			" ", nil},
		{"one of each in four characters", randomPasswordIn{PasswordLength: ptr(int64(4))}, 4,
			lowerChars + upperChars + digitChars + punctuationChars, []string{lowerChars, upperChars, digitChars, punctuationChars}},
		{"tiny class required", randomPasswordIn{ExcludeCharacters: ptr("012345678"), PasswordLength: ptr(int64(4))}, 4,
			lowerChars + upperChars + "9" + punctuationChars, []string{lowerChars, upperChars, "9", punctuationChars}},
		{"not required", randomPasswordIn{RequireEachIncludedType: ptr(false), PasswordLength: ptr(int64(1))}, 1,
			lowerChars + upperChars + digitChars + punctuationChars, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				pw, err := password(t, tt.in)
				if err != nil {
					t.Fatal(err)
				}
				if len(pw) != tt.length {
					t.Fatalf("length %d, want %d", len(pw), tt.length)
				}
				for _, c := range pw {
					if !strings.ContainsRune(tt.allowed, c) {
						t.Fatalf("password %q has %q", pw, c)
					}
				}
				for _, class := range tt.needs {
					if !strings.ContainsAny(pw, class) {
						t.Fatalf("password %q lacks a character of %q", pw, class)
					}
				}
			}
		})
	}
}

func TestGetRandomPasswordRefusals(t *testing.T) {
	for _, in := range []randomPasswordIn{
		{PasswordLength: ptr(int64(0))},
		{PasswordLength: ptr(int64(4097))},
		{PasswordLength: ptr(int64(3))}, // four types required
		{ExcludeLowercase: ptr(true), ExcludeUppercase: ptr(true), ExcludeNumbers: ptr(true), ExcludePunctuation: ptr(true)},
		{ExcludeCharacters: ptr(lowerChars + upperChars + digitChars + punctuationChars)},
	} {
		if _, err := password(t, in); err == nil {
			t.Errorf("GetRandomPassword(%+v) succeeded", in)
		} else if _, typ, _ := mapError(err); typ != "InvalidParameterException" {
			t.Errorf("GetRandomPassword(%+v) = %s", in, typ)
		}
	}
}

// TestIntnUniform checks that rejection sampling favors no value: with
// n = 3 a modulo reduction of a byte would give 0 about 0.4% more often.
func TestIntnUniform(t *testing.T) {
	r := newRNG()
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
