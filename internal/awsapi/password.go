package awsapi

import (
	"errors"

	"github.com/coffer-dev/coffer/internal/rotation/password"
)

type randomPasswordIn struct {
	ExcludeCharacters       *string `json:"ExcludeCharacters"`
	ExcludeLowercase        *bool   `json:"ExcludeLowercase"`
	ExcludeNumbers          *bool   `json:"ExcludeNumbers"`
	ExcludePunctuation      *bool   `json:"ExcludePunctuation"`
	ExcludeUppercase        *bool   `json:"ExcludeUppercase"`
	IncludeSpace            *bool   `json:"IncludeSpace"`
	PasswordLength          *int64  `json:"PasswordLength"`
	RequireEachIncludedType *bool   `json:"RequireEachIncludedType"`
}

type randomPasswordOut struct {
	RandomPassword string `json:"RandomPassword"`
}

func flag(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// getRandomPassword answers GetRandomPassword with the generator the
// password rotator uses (package password): every character drawn
// uniformly from crypto/rand, redrawn until each required class appears.
func (a *API) getRandomPassword(_ *call, in *randomPasswordIn, _ string) (any, error) {
	p := password.Policy{
		Length:             password.DefaultLength,
		ExcludeLowercase:   flag(in.ExcludeLowercase, false),
		ExcludeUppercase:   flag(in.ExcludeUppercase, false),
		ExcludeNumbers:     flag(in.ExcludeNumbers, false),
		ExcludePunctuation: flag(in.ExcludePunctuation, false),
		IncludeSpace:       flag(in.IncludeSpace, false),
		AnyClass:           !flag(in.RequireEachIncludedType, true),
	}
	if in.PasswordLength != nil {
		if *in.PasswordLength < 1 || *in.PasswordLength > password.MaxLength {
			return nil, invalidParameter("PasswordLength must be between 1 and %d", password.MaxLength)
		}
		p.Length = int(*in.PasswordLength)
	}
	if in.ExcludeCharacters != nil {
		p.ExcludeCharacters = *in.ExcludeCharacters
	}
	pw, err := p.Generate()
	var pe *password.Error
	if errors.As(err, &pe) {
		return nil, invalidParameter("%s", awsPasswordMessage(pe))
	}
	if err != nil {
		return nil, err
	}
	return &randomPasswordOut{RandomPassword: pw}, nil
}

// awsPasswordMessage names the AWS parameter a policy error is about.
func awsPasswordMessage(e *password.Error) string {
	field := map[string]string{"length": "PasswordLength", "exclude_characters": "ExcludeCharacters"}[e.Field]
	if field == "" {
		field = e.Field
	}
	return field + " " + e.Msg
}
