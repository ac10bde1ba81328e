package secret

import (
	"fmt"
	"strings"
	"time"
)

// Limits on what a caller may store.
const (
	MaxNameLen         = 512
	MaxValueSize       = 64 << 10
	MaxDescriptionLen  = 2048
	MaxTags            = 50
	MaxTagKeyLen       = 128
	MaxTagValueLen     = 256
	MaxStageLen        = 128
	MaxStagesPerSet    = 20
	MaxVersionsLimit   = 1000
	MaxTokenLen        = 64
	DefaultMaxVersions = 10
	MaxListLimit       = 1000
	DefaultListLimit   = 100

	DefaultRecoveryWindow = 30 * 24 * time.Hour
	MinRecoveryWindow     = 24 * time.Hour
	MaxRecoveryWindow     = 90 * 24 * time.Hour
)

// Well-known stages.
const (
	StageCurrent  = "current"
	StagePrevious = "previous"
	StagePending  = "pending"
)

// ValidationError reports a bad input field. Its message never includes the
// offending value when that value could be secret.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("/_+=.@-", c) >= 0
}

// ValidateName checks a secret name: 1 to 512 characters from
// [A-Za-z0-9/_+=.@-], slash-separated segments that are neither empty nor
// "." or "..", with no leading or trailing slash, and a first segment other
// than "sys" and "auth", which policies use for server operations.
func ValidateName(name string) error {
	if name == "" {
		return invalid("name", "must not be empty")
	}
	if len(name) > MaxNameLen {
		return invalid("name", "is %d characters; the limit is %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return invalid("name", "has a character outside [A-Za-z0-9/_+=.@-] at offset %d", i)
		}
	}
	if first, _, _ := strings.Cut(name, "/"); first == "sys" || first == "auth" {
		return invalid("name", "must not start with sys/ or auth/: those paths name server operations in policies")
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return invalid("name", "must not start or end with / or contain //")
		case ".", "..":
			return invalid("name", "must not contain . or .. segments")
		}
	}
	return nil
}

// ValidatePrefix checks a list prefix: empty, or a name optionally ending in /.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateName(strings.TrimSuffix(prefix, "/")); err != nil {
		return invalid("prefix", "%s", err.(*ValidationError).Msg)
	}
	return nil
}

// ValidateStage checks a stage label: 1 to 128 characters from [A-Za-z0-9_.-].
func ValidateStage(s string) error {
	if s == "" || len(s) > MaxStageLen {
		return invalid("stage", "must be 1 to %d characters", MaxStageLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return invalid("stage", "has a character outside [A-Za-z0-9_.-]")
		}
	}
	return nil
}

func validateToken(tok string) error {
	if tok == "" {
		return nil
	}
	if len(tok) > MaxTokenLen {
		return invalid("idempotency_token", "must be at most %d characters", MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return invalid("idempotency_token", "has a character outside [A-Za-z0-9_-]")
		}
	}
	return nil
}

func validateDescription(d string) error {
	if len(d) > MaxDescriptionLen {
		return invalid("description", "is %d bytes; the limit is %d", len(d), MaxDescriptionLen)
	}
	return nil
}

func validateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return invalid("tags", "has %d tags; the limit is %d", len(tags), MaxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > MaxTagKeyLen {
			return invalid("tags", "keys must be 1 to %d characters", MaxTagKeyLen)
		}
		if len(v) > MaxTagValueLen {
			return invalid("tags", "value of %q is longer than %d characters", k, MaxTagValueLen)
		}
	}
	return nil
}

func validateMaxVersions(n int) error {
	if n < 1 || n > MaxVersionsLimit {
		return invalid("max_versions", "must be between 1 and %d", MaxVersionsLimit)
	}
	return nil
}
