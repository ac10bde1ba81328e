package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coffer-dev/coffer/internal/rotation/password"
)

// randomRoutes serve random passwords, like AWS GetRandomPassword; they
// need read on sys/tools/random, as GetRandomPassword needs its own permission.
func (a *API) randomRoutes() []route {
	return []route{
		{"GET", "/v1/sys/tools/random", Op{"sys.random", "read"}, authenticated, a.randomPassword, fixed("sys/tools/random")},
		{"POST", "/v1/sys/tools/random", Op{"sys.random", "read"}, authenticated, a.randomPassword, fixed("sys/tools/random")},
	}
}

// RandomRequest is the body of POST /v1/sys/tools/random (GET takes the
// same fields as query parameters). Every field is optional: the default
// is 32 characters from all four classes, each at least once.
type RandomRequest struct {
	Length             int    `json:"length,omitempty"`
	ExcludeCharacters  string `json:"exclude_characters,omitempty"`
	ExcludeLowercase   bool   `json:"exclude_lowercase,omitempty"`
	ExcludeUppercase   bool   `json:"exclude_uppercase,omitempty"`
	ExcludeNumbers     bool   `json:"exclude_numbers,omitempty"`
	ExcludePunctuation bool   `json:"exclude_punctuation,omitempty"`
	IncludeSpace       bool   `json:"include_space,omitempty"`
	// RequireEachIncludedType defaults to true.
	RequireEachIncludedType *bool `json:"require_each_included_type,omitempty"`
}

func (a *API) randomPassword(r *request) (any, error) {
	var in RandomRequest
	if r.Method == http.MethodPost {
		if r.ContentLength != 0 {
			if err := decode(r, &in); err != nil {
				return nil, err
			}
		}
	} else if err := randomFromQuery(r.URL.Query(), &in); err != nil {
		return nil, err
	}
	p := password.Policy{Length: in.Length, ExcludeCharacters: in.ExcludeCharacters, ExcludeLowercase: in.ExcludeLowercase,
		ExcludeUppercase: in.ExcludeUppercase, ExcludeNumbers: in.ExcludeNumbers, ExcludePunctuation: in.ExcludePunctuation,
		IncludeSpace: in.IncludeSpace, AnyClass: in.RequireEachIncludedType != nil && !*in.RequireEachIncludedType}
	pw, err := p.Generate()
	var pe *password.Error
	if errors.As(err, &pe) {
		return nil, badRequest("%s", pe.Error())
	}
	if err != nil {
		return nil, err
	}
	return map[string]string{"password": pw}, nil
}

func randomFromQuery(q url.Values, in *RandomRequest) error {
	for k := range q {
		switch k {
		case "length", "exclude_characters", "exclude_lowercase", "exclude_uppercase", "exclude_numbers",
			"exclude_punctuation", "include_space", "require_each_included_type":
		default:
			return badRequest("unknown parameter %s", k)
		}
	}
	if v := q.Get("length"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return badRequest("length must be a number")
		}
		in.Length = n
	}
	in.ExcludeCharacters = q.Get("exclude_characters")
	for name, dst := range map[string]*bool{"exclude_lowercase": &in.ExcludeLowercase, "exclude_uppercase": &in.ExcludeUppercase,
		"exclude_numbers": &in.ExcludeNumbers, "exclude_punctuation": &in.ExcludePunctuation, "include_space": &in.IncludeSpace} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return badRequest("%s must be true or false", name)
			}
			*dst = b
		}
	}
	if v := q.Get("require_each_included_type"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest("require_each_included_type must be true or false")
		}
		in.RequireEachIncludedType = &b
	}
	return nil
}
