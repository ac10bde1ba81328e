package awsapi

import (
	"strings"
	"testing"

	"github.com/coffer-dev/coffer/internal/rotation/password"
)

func randomPW(t *testing.T, in randomPasswordIn) (string, error) {
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
		{"defaults", randomPasswordIn{}, 32, password.Lower + password.Upper + password.Digits + password.Punctuation,
			[]string{password.Lower, password.Upper, password.Digits, password.Punctuation}},
		{"no punctuation", randomPasswordIn{ExcludePunctuation: ptr(true), PasswordLength: ptr(int64(20))}, 20,
			password.Lower + password.Upper + password.Digits, []string{password.Lower, password.Upper, password.Digits}},
		{"digits only", randomPasswordIn{ExcludeLowercase: ptr(true), ExcludeUppercase: ptr(true), ExcludePunctuation: ptr(true), PasswordLength: ptr(int64(6))}, 6,
			password.Digits, []string{password.Digits}},
		{"exclude characters", randomPasswordIn{ExcludeCharacters: ptr(`"'\/@` + "`"), PasswordLength: ptr(int64(64))}, 64,
			strings.NewReplacer(`"`, "", "'", "", `\`, "", "/", "", "@", "", "`", "").Replace(password.Lower + password.Upper + password.Digits + password.Punctuation), nil},
		{"space", randomPasswordIn{IncludeSpace: ptr(true), ExcludeLowercase: ptr(true), ExcludeUppercase: ptr(true), ExcludeNumbers: ptr(true), ExcludePunctuation: ptr(true), PasswordLength: ptr(int64(3))}, 3,
			" ", nil},
		{"one of each in four characters", randomPasswordIn{PasswordLength: ptr(int64(4))}, 4,
			password.Lower + password.Upper + password.Digits + password.Punctuation, []string{password.Lower, password.Upper, password.Digits, password.Punctuation}},
		{"tiny class required", randomPasswordIn{ExcludeCharacters: ptr("012345678"), PasswordLength: ptr(int64(4))}, 4,
			password.Lower + password.Upper + "9" + password.Punctuation, []string{password.Lower, password.Upper, "9", password.Punctuation}},
		{"not required", randomPasswordIn{RequireEachIncludedType: ptr(false), PasswordLength: ptr(int64(1))}, 1,
			password.Lower + password.Upper + password.Digits + password.Punctuation, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				pw, err := randomPW(t, tt.in)
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
		{ExcludeCharacters: ptr(password.Lower + password.Upper + password.Digits + password.Punctuation)},
	} {
		if _, err := randomPW(t, in); err == nil {
			t.Errorf("GetRandomPassword(%+v) succeeded", in)
		} else if _, typ, _ := mapError(err); typ != "InvalidParameterException" {
			t.Errorf("GetRandomPassword(%+v) = %s", in, typ)
		}
	}
}
