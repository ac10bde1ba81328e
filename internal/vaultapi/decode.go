package vaultapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bounds on inputs that the domain does not bound itself.
const (
	maxVersionList = 1000 // versions in one delete, undelete or destroy
	maxDuration    = 100 * 365 * 24 * time.Hour
)

// decode reads a JSON object body strictly: unknown fields, trailing data
// and bodies over MaxBodySize are errors that name the problem. An empty
// body is an empty object when emptyOK. Like Vault, it reads JSON whatever
// the Content-Type says (the official client sends none); PATCH handlers
// check for application/merge-patch+json themselves.
func decode(r *request, v any, emptyOK bool) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.Is(err, io.EOF):
			if emptyOK {
				return nil
			}
			return badRequest("request body is empty; expected a JSON object")
		case errors.As(err, &se):
			return badRequest("request body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			if te.Field == "" {
				return badRequest("request body must be a JSON object")
			}
			return badRequest("field %q has the wrong type", te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return badRequest("unknown field %s: Coffer's Vault API does not support it", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			var fe *fieldError
			if errors.As(err, &fe) {
				return badRequest("%s", fe.Error())
			}
			return badRequest("request body is not valid JSON")
		}
	}
	if dec.More() {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

// fieldError is returned by the flexible types' UnmarshalJSON; the message
// names the expectation, never the value.
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

// flexInt is an integer that also reads from a numeric string, as Vault's
// weakly typed fields do ("cas": "3").
type flexInt struct {
	set bool
	n   int
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*f = flexInt{}
		return nil
	}
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return &fieldError{"expected an integer"}
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
		return &fieldError{"expected an integer"}
	}
	*f = flexInt{set: true, n: int(n)}
	return nil
}

// intList is Vault's comma-int-slice: [1, 2], ["1", "2"], "1,2" or 1.
type intList []int

func (l *intList) UnmarshalJSON(b []byte) error {
	var raw any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return &fieldError{"versions: expected a list of version numbers"}
	}
	var items []any
	switch v := raw.(type) {
	case nil:
		*l = nil
		return nil
	case []any:
		items = v
	case string:
		for _, p := range strings.Split(v, ",") {
			items = append(items, strings.TrimSpace(p))
		}
	default:
		items = []any{v}
	}
	if len(items) > maxVersionList {
		return &fieldError{"versions: at most 1000 version numbers"}
	}
	out := make(intList, 0, len(items))
	for _, it := range items {
		var s string
		switch v := it.(type) {
		case json.Number:
			s = v.String()
		case string:
			s = v
		default:
			return &fieldError{"versions: expected a list of version numbers"}
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > math.MaxInt32 {
			return &fieldError{"versions: version numbers must be positive integers"}
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// duration is Vault's duration-second: a number of seconds, or text like
// "90s", "30m", "24h" or "3600".
type duration struct {
	set bool
	d   time.Duration
}

func (d *duration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*d = duration{}
		return nil
	}
	v, err := parseDuration(b)
	if err != nil {
		return err
	}
	*d = duration{set: true, d: v}
	return nil
}

func parseDuration(b []byte) (time.Duration, error) {
	bad := &fieldError{"expected a duration: a number of seconds or text like \"30m\" or \"24h\""}
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, bad
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > int64(maxDuration/time.Second) {
			return 0, bad
		}
		d = time.Duration(n) * time.Second
	} else {
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 || v > maxDuration {
			return 0, bad
		}
		d = v
	}
	return d, nil
}

// seconds renders a duration as whole seconds, the way Vault reports TTLs.
func seconds(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64(d / time.Second)
}

// requireMergePatch refuses a PATCH whose Content-Type is not
// application/merge-patch+json, as Vault does.
func requireMergePatch(r *request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/merge-patch+json" {
		return &apiError{http.StatusUnsupportedMediaType, []string{"PATCH requires Content-Type application/merge-patch+json"}}
	}
	return nil
}
