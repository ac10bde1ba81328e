package awsapi

import (
	"crypto/sha256"
	"encoding/base64"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/internal/secret"
)

// AWS staging labels with a Coffer meaning.
const (
	stageCurrent  = "AWSCURRENT"
	stagePrevious = "AWSPREVIOUS"
	stagePending  = "AWSPENDING"
)

// cofferStage maps an AWS staging label to a Coffer stage. Coffer's own
// names for the three well-known stages are refused, so that no label can
// mean two things.
func cofferStage(label string) (string, error) {
	switch label {
	case stageCurrent:
		return secret.StageCurrent, nil
	case stagePrevious:
		return secret.StagePrevious, nil
	case stagePending:
		return secret.StagePending, nil
	case secret.StageCurrent, secret.StagePrevious, secret.StagePending:
		return "", invalidParameter("the staging label %q is reserved in Coffer; use AWSCURRENT, AWSPREVIOUS or AWSPENDING", label)
	}
	if secret.ValidateStage(label) != nil {
		return "", invalidParameter("Coffer staging labels are 1 to %d characters from [A-Za-z0-9_.-]", secret.MaxStageLen)
	}
	return label, nil
}

// awsStage maps a Coffer stage to its AWS staging label.
func awsStage(stage string) string {
	switch stage {
	case secret.StageCurrent:
		return stageCurrent
	case secret.StagePrevious:
		return stagePrevious
	case secret.StagePending:
		return stagePending
	}
	return stage
}

func awsStages(stages []string) []string {
	out := make([]string, len(stages))
	for i, s := range stages {
		out[i] = awsStage(s)
	}
	sort.Strings(out)
	return out
}

// versionID returns the AWS VersionId of a version: the idempotency token
// it was written with, or a UUID-shaped id derived from the secret's id and
// the version number, stable for the life of the secret.
func versionID(secretID string, v *secret.Version) string {
	if v.IdempotencyToken != "" {
		return v.IdempotencyToken
	}
	sum := sha256.Sum256([]byte("coffer/aws/version-id\x00" + secretID + "\x00" + strconv.Itoa(v.Number)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80 // UUID version 8: custom
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// findVersion returns the version with the AWS VersionId id, or nil.
func findVersion(m *secret.Metadata, id string) *secret.Version {
	for i := range m.Versions {
		if versionID(m.ID, &m.Versions[i]) == id {
			return &m.Versions[i]
		}
	}
	return nil
}

func versionByNumber(m *secret.Metadata, n int) *secret.Version {
	for i := range m.Versions {
		if m.Versions[i].Number == n {
			return &m.Versions[i]
		}
	}
	return nil
}

// versionsToStages maps the VersionId of each version holding a stage to
// its AWS staging labels.
func versionsToStages(m *secret.Metadata) map[string][]string {
	out := map[string][]string{}
	for i := range m.Versions {
		v := &m.Versions[i]
		if len(v.Stages) > 0 {
			out[versionID(m.ID, v)] = awsStages(v.Stages)
		}
	}
	return out
}

const arnAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// arnSuffix derives the six characters AWS appends to a secret's name in
// its ARN from the secret's id: a secret deleted and created again under the
// same name gets another ARN, as with AWS.
func arnSuffix(secretID string) string {
	sum := sha256.Sum256([]byte("coffer/aws/arn\x00" + secretID))
	b := make([]byte, 6)
	for i := range b {
		b[i] = arnAlphabet[int(sum[i])%len(arnAlphabet)]
	}
	return string(b)
}

func (a *API) arn(m *secret.Metadata) string {
	return a.arnPrefix() + m.Name + "-" + arnSuffix(m.ID)
}

func (a *API) arnPrefix() string {
	return "arn:aws:secretsmanager:" + a.cfg.Region + ":" + a.cfg.AccountID + ":secret:"
}

// valueIn turns SecretString or SecretBinary into a Coffer value.
func valueIn(s *string, b []byte) (data []byte, typ string, ok bool, err error) {
	switch {
	case s != nil && b != nil:
		return nil, "", false, invalidParameter("You can't specify both a binary secret value and a string secret value in the same secret.")
	case s != nil:
		return []byte(*s), secret.TypeText, true, nil
	case b != nil:
		return b, secret.TypeBinary, true, nil
	}
	return nil, "", false, nil
}

// valueOut returns a Coffer value as SecretString (text and JSON) or
// SecretBinary (binary, and text that is not UTF-8, which a JSON string
// could not carry intact).
func valueOut(v *secret.Value) (*string, []byte) {
	if v.Type != secret.TypeBinary && utf8.Valid(v.Data) {
		s := string(v.Data)
		return &s, nil
	}
	return nil, v.Data
}

// epoch is a timestamp on the wire: seconds since 1970 as a JSON number.
type epoch time.Time

func (e epoch) IsZero() bool { return time.Time(e).IsZero() }

func (e epoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(e).UnixMilli())/1000, 'f', -1, 64)), nil
}

func epochPtr(t *time.Time) epoch {
	if t == nil {
		return epoch{}
	}
	return epoch(*t)
}

// tag is an AWS tag.
type tag struct {
	Key   *string `json:"Key,omitempty"`
	Value *string `json:"Value,omitempty"`
}

func tagsIn(tags []tag) (map[string]string, error) {
	if len(tags) > secret.MaxTags {
		return nil, invalidParameter("Tags: at most %d tags", secret.MaxTags)
	}
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		if t.Key == nil || *t.Key == "" {
			return nil, invalidParameter("Tags: every tag needs a Key")
		}
		if _, dup := out[*t.Key]; dup {
			return nil, invalidParameter("Tags: the key %q appears twice", *t.Key)
		}
		v := ""
		if t.Value != nil {
			v = *t.Value
		}
		out[*t.Key] = v
	}
	return out, nil
}

func tagsOut(m map[string]string) []tag {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]tag, len(keys))
	for i, k := range keys {
		k, v := k, m[k]
		out[i] = tag{Key: &k, Value: &v}
	}
	return out
}

// pageToken encodes a pagination position; decodePageToken refuses tokens
// it did not make.
func pageToken(kind, pos string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + pos))
}

func decodePageToken(kind, tok string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", errInvalidNextToken
	}
	pos, ok := strings.CutPrefix(string(raw), kind+":")
	if !ok || pos == "" {
		return "", errInvalidNextToken
	}
	return pos, nil
}
