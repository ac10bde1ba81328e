package awsapi

import (
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/secret"
)

// Bounds of the list operations.
const (
	maxListResults  = 100
	maxBatchResults = 20
	maxBatchIDs     = 20
	// maxScan bounds how many names one ListSecrets call examines; past
	// it the call returns what it found and a NextToken, as AWS may.
	maxScan   = 5000
	listChunk = 200
)

type filter struct {
	Key    string   `json:"Key"`
	Values []string `json:"Values"`
}

// filterKeys are the ListSecrets filter keys AWS defines.
var filterKeys = map[string]bool{"description": true, "name": true, "tag-key": true, "tag-value": true,
	"primary-region": true, "owning-service": true, "all": true}

func checkFilters(fs []filter) error {
	if len(fs) > 10 {
		return invalidParameter("Filters: at most 10 filters")
	}
	for _, f := range fs {
		if !filterKeys[f.Key] {
			return invalidParameter("Filters: unknown key %q; use description, name, tag-key, tag-value, primary-region, owning-service or all", f.Key)
		}
		if len(f.Values) == 0 || len(f.Values) > 10 {
			return invalidParameter("Filters: each filter needs 1 to 10 values")
		}
		for _, v := range f.Values {
			if v == "" || v == "!" || len(v) > 512 {
				return invalidParameter("Filters: values must be 1 to 512 characters")
			}
		}
	}
	return nil
}

// metadataFilter reports whether a filter key tests metadata that needs
// read (description and tags), not the name that list shows.
func metadataFilter(key string) bool {
	return key == "description" || key == "tag-key" || key == "tag-value"
}

// matches reports whether a secret passes every filter. Within a filter,
// plain values are alternatives and values starting with ! exclude. A
// secret whose metadata the caller may not read (readable false) never
// passes a description or tag filter, negated or not, and all sees its
// name only: the filters are no oracle over what the caller cannot read.
func matches(m *secret.Metadata, readable bool, fs []filter) bool {
	if !readable {
		for _, f := range fs {
			if metadataFilter(f.Key) {
				return false
			}
		}
		m = &secret.Metadata{Name: m.Name}
	}
	for _, f := range fs {
		anyPositive, positiveHit := false, false
		for _, v := range f.Values {
			neg := strings.HasPrefix(v, "!")
			hit := matchOne(m, f.Key, strings.TrimPrefix(v, "!"))
			if neg && hit {
				return false
			}
			if !neg {
				anyPositive = true
				positiveHit = positiveHit || hit
			}
		}
		if anyPositive && !positiveHit {
			return false
		}
	}
	return true
}

// matchOne applies one filter value as AWS documents it: prefix matches,
// case-sensitive except for description and all; all splits the value into
// words that must each appear in some attribute.
func matchOne(m *secret.Metadata, key, v string) bool {
	switch key {
	case "name":
		return strings.HasPrefix(m.Name, v)
	case "description":
		return strings.HasPrefix(strings.ToLower(m.Description), strings.ToLower(v))
	case "tag-key":
		for k := range m.Tags {
			if strings.HasPrefix(k, v) {
				return true
			}
		}
	case "tag-value":
		for _, tv := range m.Tags {
			if strings.HasPrefix(tv, v) {
				return true
			}
		}
	case "all":
		attrs := []string{strings.ToLower(m.Name), strings.ToLower(m.Description)}
		for k, tv := range m.Tags {
			attrs = append(attrs, strings.ToLower(k), strings.ToLower(tv))
		}
		for _, w := range strings.Fields(strings.ToLower(v)) {
			found := false
			for _, at := range attrs {
				if strings.Contains(at, w) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	// primary-region and owning-service: Coffer secrets have neither.
	return false
}

// namePrefix returns a prefix for the store's list when a single name
// filter makes one safe to use.
func namePrefix(fs []filter) string {
	prefix := ""
	for _, f := range fs {
		if f.Key != "name" {
			continue
		}
		if prefix != "" || len(f.Values) != 1 || strings.HasPrefix(f.Values[0], "!") {
			return ""
		}
		prefix = f.Values[0]
	}
	if secret.ValidatePrefix(prefix) != nil {
		return ""
	}
	return prefix
}

// listed is a secret a scan found, and whether the caller may read its
// metadata (list shows its name only).
type listed struct {
	*secret.Metadata
	readable bool
}

// scan walks secret names from cursor in name order and returns up to max
// secrets the caller may list and the filters accept, and the cursor to
// resume from ("" at the end).
func (a *API) scan(c *call, fs []filter, cursor string, max int, includeDeleted bool) ([]listed, string, error) {
	prefix := namePrefix(fs)
	var out []listed
	scanned := 0
	for {
		page, err := a.core.Secrets.List(c.ctx, secret.ListInput{Prefix: prefix, Cursor: cursor, Limit: listChunk, IncludeDeleted: includeDeleted})
		if err != nil {
			return nil, "", err
		}
		for _, it := range page.Items {
			if len(out) == max || scanned == maxScan {
				return out, cursor, nil // resume after the last name examined
			}
			cursor = it.Name
			scanned++
			if err := a.allowed(c, it.Name, "list"); err != nil {
				if errors.Is(err, auth.ErrForbidden) {
					continue // names the caller may not list never leave the server
				}
				return nil, "", err
			}
			readable := true
			if err := a.allowed(c, it.Name, "read"); err != nil {
				if !errors.Is(err, auth.ErrForbidden) {
					return nil, "", err
				}
				readable = false
			}
			m, err := a.core.Secrets.Describe(c.ctx, it.Name)
			if errors.Is(err, secret.ErrNotFound) {
				continue // purged meanwhile
			}
			if err != nil {
				return nil, "", err
			}
			if matches(m, readable, fs) {
				out = append(out, listed{m, readable})
			}
		}
		if page.NextCursor == "" {
			return out, "", nil
		}
	}
}

type listSecretsIn struct {
	Filters                []filter `json:"Filters"`
	IncludePlannedDeletion *bool    `json:"IncludePlannedDeletion"`
	MaxResults             *int32   `json:"MaxResults"`
	NextToken              *string  `json:"NextToken"`
	SortBy                 string   `json:"SortBy"`
	SortOrder              string   `json:"SortOrder"`
}

type secretListEntry struct {
	ARN                    string              `json:"ARN"`
	Name                   string              `json:"Name"`
	Description            string              `json:"Description,omitempty"`
	RotationEnabled        *bool               `json:"RotationEnabled,omitempty"`
	CreatedDate            epoch               `json:"CreatedDate,omitzero"`
	LastChangedDate        epoch               `json:"LastChangedDate,omitzero"`
	DeletedDate            epoch               `json:"DeletedDate,omitzero"`
	Tags                   []tag               `json:"Tags,omitempty"`
	SecretVersionsToStages map[string][]string `json:"SecretVersionsToStages,omitempty"`
	RotationRules          *rotationRulesOut   `json:"RotationRules,omitempty"`
	LastRotatedDate        epoch               `json:"LastRotatedDate,omitzero"`
	NextRotationDate       epoch               `json:"NextRotationDate,omitzero"`
}

type listSecretsOut struct {
	SecretList []secretListEntry `json:"SecretList"`
	NextToken  string            `json:"NextToken,omitempty"`
}

const listToken = "ls"

func pageSize(v *int32, max int) (int, error) {
	if v == nil {
		return max, nil
	}
	if *v < 1 || int(*v) > max {
		return 0, invalidParameter("MaxResults must be between 1 and %d", max)
	}
	return int(*v), nil
}

// decodeCursor opens a ListSecrets or BatchGetSecretValue NextToken. The
// position it holds is the last name examined, often one the caller may
// not see, so it is sealed (core.SealCursor), never merely encoded.
func (a *API) decodeCursor(c *call, tok *string) (string, error) {
	if tok == nil || *tok == "" {
		return "", nil
	}
	cursor, err := a.core.OpenCursor(c.ctx, listToken, *tok)
	if errors.Is(err, core.ErrBadCursor) || err == nil && secret.ValidateName(cursor) != nil {
		return "", errInvalidNextToken
	}
	return cursor, err
}

// nextTokenString seals the position where a list page stopped ("" at the end).
func (a *API) nextTokenString(c *call, pos string) (string, error) {
	return a.core.SealCursor(c.ctx, listToken, pos)
}

// listSecrets lists the secrets the caller may list (the list capability
// on each name, as in the native API), in name order. A secret the caller
// may list but not read is shown by name, ARN and (scheduled for deletion)
// DeletedDate only; metadata needs read. Each secret whose metadata the
// page shows is charged to the caller's rate limit for that secret, as a
// DescribeSecret would be: a page stops before a secret whose bucket is
// empty, and a page that would start with one is throttled.
func (a *API) listSecrets(c *call, in *listSecretsIn, _ string) (any, error) {
	if err := checkFilters(in.Filters); err != nil {
		return nil, err
	}
	if in.SortBy != "" && in.SortBy != "name" {
		return nil, invalidParameter("Coffer lists secrets in name order; SortBy must be name")
	}
	if in.SortOrder != "" && in.SortOrder != "asc" {
		return nil, invalidParameter("Coffer lists secrets in ascending name order; SortOrder must be asc")
	}
	max, err := pageSize(in.MaxResults, maxListResults)
	if err != nil {
		return nil, err
	}
	cursor, err := a.decodeCursor(c, in.NextToken)
	if err != nil {
		return nil, err
	}
	deleted := in.IncludePlannedDeletion != nil && *in.IncludePlannedDeletion
	ms, next, err := a.scan(c, in.Filters, cursor, max, deleted)
	if err != nil {
		return nil, err
	}
	for i, m := range ms {
		if !m.readable {
			continue
		}
		if err := a.core.Limits.AllowIdentity(m.Name, limitKey(c.principal)); err != nil {
			if i == 0 {
				return nil, err
			}
			ms, next = ms[:i], ms[i-1].Name // resume at the throttled secret
			break
		}
	}
	out := &listSecretsOut{SecretList: make([]secretListEntry, 0, len(ms))}
	for _, m := range ms {
		if !m.readable {
			out.SecretList = append(out.SecretList, secretListEntry{ARN: a.arn(m.Metadata), Name: m.Name, DeletedDate: epochPtr(m.DeletedAt)})
			continue
		}
		d := a.describeOut(m.Metadata)
		a.addRotation(c, d, m.Name)
		out.SecretList = append(out.SecretList, secretListEntry{ARN: d.ARN, Name: d.Name, Description: d.Description,
			CreatedDate: d.CreatedDate, LastChangedDate: d.LastChangedDate, DeletedDate: d.DeletedDate, Tags: d.Tags,
			SecretVersionsToStages: d.VersionIdsToStages, RotationEnabled: &d.RotationEnabled, RotationRules: d.RotationRules,
			LastRotatedDate: d.LastRotatedDate, NextRotationDate: d.NextRotationDate})
	}
	if out.NextToken, err = a.nextTokenString(c, next); err != nil {
		return nil, err
	}
	return out, nil
}

type batchGetIn struct {
	Filters      []filter `json:"Filters"`
	MaxResults   *int32   `json:"MaxResults"`
	NextToken    *string  `json:"NextToken"`
	SecretIdList []string `json:"SecretIdList"`
}

type apiErrorEntry struct {
	SecretId  string `json:"SecretId"`
	ErrorCode string `json:"ErrorCode"`
	Message   string `json:"Message"`
}

type batchGetOut struct {
	SecretValues []*secretValueOut `json:"SecretValues"`
	Errors       []apiErrorEntry   `json:"Errors,omitempty"`
	NextToken    string            `json:"NextToken,omitempty"`
}

// batchGetSecretValue reads the current value of up to 20 secrets, named
// in SecretIdList or selected by Filters. Each secret needs read (and, with
// Filters, list; description and tag filters never select a secret the
// caller may not read) and is charged to the caller's rate limit for that
// secret, as a GetSecretValue would be; a secret that fails (throttled
// included) is reported in Errors, not as a failure of the whole call.
func (a *API) batchGetSecretValue(c *call, in *batchGetIn, _ string) (any, error) {
	switch {
	case len(in.SecretIdList) > 0 && len(in.Filters) > 0:
		return nil, invalidParameter("give SecretIdList or Filters, not both")
	case len(in.SecretIdList) == 0 && len(in.Filters) == 0:
		return nil, invalidParameter("give SecretIdList or Filters")
	case len(in.SecretIdList) > maxBatchIDs:
		return nil, invalidParameter("SecretIdList: at most %d ids", maxBatchIDs)
	case len(in.SecretIdList) > 0 && (in.MaxResults != nil || in.NextToken != nil):
		return nil, invalidParameter("MaxResults and NextToken go with Filters, not SecretIdList")
	}
	out := &batchGetOut{SecretValues: []*secretValueOut{}}
	// read reads one secret; a failure that is the caller's (not the
	// server's) goes to Errors and to that secret's audit record.
	read := func(id, name string) error {
		err := func() error {
			if name == "" {
				var err error
				if name, err = a.resolve(c.ctx, id); err != nil {
					return err
				}
			}
			c.touch(name)
			if err := a.core.Limits.AllowIdentity(name, limitKey(c.principal)); err != nil {
				return err
			}
			if err := a.authorize(c, name, "read"); err != nil {
				return err
			}
			v, err := a.readValue(c, name, nil, nil)
			if err != nil {
				return err
			}
			out.SecretValues = append(out.SecretValues, v)
			return nil
		}()
		if err == nil {
			return nil
		}
		status, typ, msg := mapError(err)
		if status >= 500 {
			return err
		}
		out.Errors = append(out.Errors, apiErrorEntry{SecretId: id, ErrorCode: typ, Message: msg})
		if name != "" {
			c.touch(name).errType = typ
		}
		return nil
	}
	if len(in.SecretIdList) > 0 {
		for _, id := range in.SecretIdList {
			if err := read(id, ""); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if err := checkFilters(in.Filters); err != nil {
		return nil, err
	}
	max, err := pageSize(in.MaxResults, maxBatchResults)
	if err != nil {
		return nil, err
	}
	cursor, err := a.decodeCursor(c, in.NextToken)
	if err != nil {
		return nil, err
	}
	ms, next, err := a.scan(c, in.Filters, cursor, max, false)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if err := read(m.Name, m.Name); err != nil {
			return nil, err
		}
	}
	if out.NextToken, err = a.nextTokenString(c, next); err != nil {
		return nil, err
	}
	return out, nil
}

type listVersionsIn struct {
	secretRef
	IncludeDeprecated *bool   `json:"IncludeDeprecated"`
	MaxResults        *int32  `json:"MaxResults"`
	NextToken         *string `json:"NextToken"`
}

type versionEntry struct {
	VersionId     string   `json:"VersionId"`
	VersionStages []string `json:"VersionStages,omitempty"`
	CreatedDate   epoch    `json:"CreatedDate,omitzero"`
}

type listVersionsOut struct {
	ARN       string         `json:"ARN"`
	Name      string         `json:"Name"`
	Versions  []versionEntry `json:"Versions"`
	NextToken string         `json:"NextToken,omitempty"`

	lastNumber int // the number of the last version listed
}

const versionsToken = "lv"

// listSecretVersionIDs lists a secret's versions, newest first. Versions
// without a staging label are left out unless IncludeDeprecated.
func (a *API) listSecretVersionIDs(c *call, in *listVersionsIn, name string) (any, error) {
	max, err := pageSize(in.MaxResults, maxListResults)
	if err != nil {
		return nil, err
	}
	below := 0 // list versions numbered below this; 0: from the newest
	if in.NextToken != nil && *in.NextToken != "" {
		pos, err := decodePageToken(versionsToken, *in.NextToken)
		if err != nil {
			return nil, err
		}
		if below, err = strconv.Atoi(pos); err != nil || below < 1 {
			return nil, errInvalidNextToken
		}
	}
	m, err := a.core.Secrets.Describe(c.ctx, name)
	if err != nil {
		return nil, err
	}
	deprecated := in.IncludeDeprecated != nil && *in.IncludeDeprecated
	vs := m.Versions
	sort.Slice(vs, func(i, j int) bool { return vs[i].Number > vs[j].Number })
	out := &listVersionsOut{ARN: a.arn(m), Name: m.Name, Versions: []versionEntry{}}
	for i := range vs {
		v := &vs[i]
		if below != 0 && v.Number >= below {
			continue
		}
		if len(v.Stages) == 0 && !deprecated {
			continue
		}
		if len(out.Versions) == max {
			out.NextToken = pageToken(versionsToken, strconv.Itoa(out.lastNumber))
			break
		}
		out.Versions = append(out.Versions, versionEntry{VersionId: versionID(m.ID, v), VersionStages: awsStages(v.Stages), CreatedDate: epoch(v.CreatedAt)})
		out.lastNumber = v.Number
	}
	return out, nil
}
