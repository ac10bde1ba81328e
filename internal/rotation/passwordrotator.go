package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"

	"github.com/coffer-dev/coffer/internal/rotation/password"
	"github.com/coffer-dev/coffer/internal/secret"
)

// DecodeOptions decodes rotator options strictly: unknown fields and
// trailing data are errors naming the problem. Empty options decode as {}.
func DecodeOptions(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return optionsError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("options", "have data after the JSON object")
	}
	return nil
}

// optionsError turns a decoding error into a validation error that names
// the option, without Go's type names: `options.length must be a whole
// number, not a string`.
func optionsError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		var path []string
		for seg := range strings.SplitSeq(te.Field, ".") {
			if seg != "" && !unicode.IsUpper(rune(seg[0])) { // skip embedded Go struct names
				path = append(path, seg)
			}
		}
		field := strings.Join(append([]string{"options"}, path...), ".")
		if strings.HasPrefix(te.Value, "a duration") {
			return invalid(field, "must be %s", te.Value)
		}
		return invalid(field, "must be %s, not %s", jsonKind(te.Type), article(te.Value))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return invalid("options", "are not valid JSON: %v", err)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return invalid("options", "unknown option %s", name)
	}
	return invalid("options", "%s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind describes the JSON a Go type takes.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}

// article puts "a"/"an" before a JSON kind as encoding/json names it
// ("string", "number", "array", "object", "bool", "number 1.5").
func article(v string) string {
	switch {
	case v == "":
		return "that value"
	case strings.ContainsAny(v[:1], "aeiou"):
		return "an " + v
	}
	return "a " + v
}

// PasswordOptions configure the password rotator.
type PasswordOptions struct {
	password.Policy
	// Field, when set, names the field of a JSON object value that gets the
	// new password; the other fields are kept.
	Field string `json:"field,omitempty"`
}

// PasswordRotator generates a new value from a password policy. It has no
// target system: the application reads the new current value (with the
// agent or coffer run --watch), and the previous value stays readable for
// the grace window, after which its previous stage is removed.
type PasswordRotator struct{}

// Check validates the options.
func (PasswordRotator) Check(opts, _ json.RawMessage, _ PolicyInfo) (json.RawMessage, error) {
	var o PasswordOptions
	if err := DecodeOptions(opts, &o); err != nil {
		return nil, err
	}
	if err := o.Policy.Validate(); err != nil {
		var pe *password.Error
		if errors.As(err, &pe) {
			return nil, invalid("options."+pe.Field, "%s", pe.Msg)
		}
		return nil, err
	}
	if len(o.Field) > 128 {
		return nil, invalid("options.field", "is longer than 128 characters")
	}
	return json.Marshal(o)
}

// Create generates the new value.
func (PasswordRotator) Create(_ context.Context, j *Job) ([]byte, string, error) {
	var o PasswordOptions
	if err := DecodeOptions(j.Options, &o); err != nil {
		return nil, "", err
	}
	pw, err := o.Policy.Generate()
	if err != nil {
		return nil, "", err
	}
	if o.Field == "" {
		return []byte(pw), secret.TypeText, nil
	}
	obj := map[string]json.RawMessage{}
	if j.Current != nil {
		if err := json.Unmarshal(j.Current.Data, &obj); err != nil || obj == nil {
			return nil, "", fmt.Errorf("options.field is set but the current value is not a JSON object")
		}
	}
	obj[o.Field], _ = json.Marshal(pw)
	out, err := json.Marshal(obj)
	return out, secret.TypeJSON, err
}

// Set does nothing: there is no target.
func (PasswordRotator) Set(context.Context, *Job) error { return nil }

// Test does nothing: there is no target.
func (PasswordRotator) Test(context.Context, *Job, *secret.Value) error { return nil }

// Finish does nothing: there is no target.
func (PasswordRotator) Finish(context.Context, *Job) error { return nil }

// Revoke does nothing: removing the previous stage is the engine's part.
func (PasswordRotator) Revoke(context.Context, *Job) error { return nil }
