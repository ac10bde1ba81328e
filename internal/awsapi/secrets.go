package awsapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/coffer-dev/coffer/internal/secret"
)

// clientToken checks a ClientRequestToken; Coffer stores it as the
// version's idempotency token, which also becomes its VersionId.
func clientToken(tok *string) (string, error) {
	if tok == nil {
		return "", nil
	}
	if n := len(*tok); n < 32 || n > 64 {
		return "", invalidParameter("ClientRequestToken must be 32 to 64 characters (a UUID fits)")
	}
	return *tok, nil
}

// stagesIn maps AWS staging labels to Coffer stages.
func stagesIn(labels []string) ([]string, error) {
	if len(labels) > secret.MaxStagesPerSet {
		return nil, invalidParameter("VersionStages: at most %d labels", secret.MaxStagesPerSet)
	}
	out := make([]string, 0, len(labels))
	for _, l := range labels {
		s, err := cofferStage(l)
		if err != nil {
			return nil, err
		}
		if s == secret.StagePrevious {
			return nil, invalidParameter("Coffer moves AWSPREVIOUS itself when AWSCURRENT moves; it can't be attached directly")
		}
		out = append(out, s)
	}
	return out, nil
}

// liveMeta describes a secret that must exist and not be scheduled for
// deletion.
func (a *API) liveMeta(c *call, name string) (*secret.Metadata, error) {
	m, err := a.core.Secrets.Describe(c.ctx, name)
	if err != nil {
		return nil, err
	}
	if m.DeletedAt != nil {
		return nil, secret.ErrDeleted
	}
	return m, nil
}

type createSecretIn struct {
	Name                        *string         `json:"Name"`
	ClientRequestToken          *string         `json:"ClientRequestToken"`
	Description                 *string         `json:"Description"`
	KmsKeyId                    *string         `json:"KmsKeyId"` // accepted and ignored: the barrier encrypts every value
	SecretBinary                []byte          `json:"SecretBinary"`
	SecretString                *string         `json:"SecretString"`
	Tags                        []tag           `json:"Tags"`
	AddReplicaRegions           []replicaRegion `json:"AddReplicaRegions"`
	ForceOverwriteReplicaSecret bool            `json:"ForceOverwriteReplicaSecret"`
	Type                        *string         `json:"Type"`
}

type replicaRegion struct {
	Region   *string `json:"Region"`
	KmsKeyId *string `json:"KmsKeyId"`
}

type secretVersionOut struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId,omitempty"`
	VersionStages []string `json:"VersionStages,omitempty"`
}

func (a *API) createSecret(c *call, in *createSecretIn, _ string) (any, error) {
	if in.Name == nil || *in.Name == "" {
		return nil, invalidParameter("Name is required")
	}
	if len(*in.Name) > secret.MaxNameLen {
		return nil, invalidParameter("Name is %d bytes; the limit is %d", len(*in.Name), secret.MaxNameLen)
	}
	name := *in.Name
	c.touch(name)
	// update allows any write; create alone allows creating the secret.
	if err := a.authorize(c, name, "create"); err != nil {
		if a.authorize(c, name, "update") != nil {
			return nil, err
		}
	}
	switch {
	case len(in.AddReplicaRegions) > 0:
		return nil, invalidRequest("Coffer does not support replication; a Coffer server serves one region")
	case in.Type != nil && *in.Type != "":
		return nil, invalidRequest("Coffer does not support managed external secrets (Type)")
	}
	data, typ, ok, err := valueIn(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalidRequest("Coffer needs SecretString or SecretBinary to create a secret: a Coffer secret always has a current version")
	}
	tok, err := clientToken(in.ClientRequestToken)
	if err != nil {
		return nil, err
	}
	tags, err := tagsIn(in.Tags)
	if err != nil {
		return nil, err
	}
	desc := ""
	if in.Description != nil {
		desc = *in.Description
	}
	c.sensitive("value", string(data))
	c.sensitive("idempotency_token", tok)
	zero := 0
	res, err := a.core.Secrets.Put(c.ctx, secret.PutInput{Name: name, Value: data, Type: typ, CAS: &zero,
		IdempotencyToken: tok, Actor: c.principal.Name, Description: desc, Tags: tags})
	switch {
	case errors.Is(err, secret.ErrCASMismatch):
		return nil, resourceExists("The operation failed because the secret %s already exists.", name)
	case errors.Is(err, secret.ErrDeleted):
		return nil, invalidRequest("You can't create this secret because a secret with this name is already scheduled for deletion.")
	case err != nil:
		return nil, err
	}
	c.touch(name).version = res.Version
	return a.versionOut(c, name, res.Version, false)
}

// versionOut describes the version a write produced.
func (a *API) versionOut(c *call, name string, n int, withStages bool) (*secretVersionOut, error) {
	m, err := a.core.Secrets.Describe(c.ctx, name)
	if err != nil {
		return nil, err
	}
	out := &secretVersionOut{ARN: a.arn(m), Name: m.Name}
	if v := versionByNumber(m, n); v != nil {
		out.VersionId = versionID(m.ID, v)
		if withStages {
			out.VersionStages = awsStages(v.Stages)
		}
	}
	return out, nil
}

type getSecretValueIn struct {
	secretRef
	VersionId    *string `json:"VersionId"`
	VersionStage *string `json:"VersionStage"`
}

type secretValueOut struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId"`
	SecretString  *string  `json:"SecretString,omitempty"`
	SecretBinary  []byte   `json:"SecretBinary,omitzero"`
	VersionStages []string `json:"VersionStages"`
	CreatedDate   epoch    `json:"CreatedDate,omitzero"`
}

func (a *API) getSecretValue(c *call, in *getSecretValueIn, name string) (any, error) {
	return a.readValue(c, name, in.VersionId, in.VersionStage)
}

// readValue reads the version a VersionId, a staging label, or (neither)
// AWSCURRENT selects.
func (a *API) readValue(c *call, name string, versionIDIn, stageIn *string) (*secretValueOut, error) {
	m, err := a.liveMeta(c, name)
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case versionIDIn != nil:
		v := findVersion(m, *versionIDIn)
		if v == nil {
			return nil, resourceNotFound("Secrets Manager can't find the specified secret value for VersionId: %s", *versionIDIn)
		}
		n = v.Number
		if stageIn != nil {
			st, err := cofferStage(*stageIn)
			if err != nil {
				return nil, err
			}
			if m.Stages[st] != n {
				return nil, resourceNotFound("Secrets Manager can't find the specified secret value for VersionId: %s with staging label: %s", *versionIDIn, *stageIn)
			}
		}
	default:
		label := stageCurrent
		if stageIn != nil {
			label = *stageIn
		}
		st, err := cofferStage(label)
		if err != nil {
			return nil, err
		}
		if n = m.Stages[st]; n == 0 {
			return nil, resourceNotFound("Secrets Manager can't find the specified secret value for staging label: %s", label)
		}
	}
	c.touch(name).version = n
	v, err := a.core.Secrets.Get(c.ctx, name, secret.Selector{Version: n})
	if err != nil {
		return nil, err
	}
	out := &secretValueOut{ARN: a.arn(m), Name: m.Name, VersionStages: awsStages(v.Stages), CreatedDate: epoch(v.CreatedAt)}
	if ver := versionByNumber(m, n); ver != nil {
		out.VersionId = versionID(m.ID, ver)
	}
	out.SecretString, out.SecretBinary = valueOut(v)
	return out, nil
}

type putSecretValueIn struct {
	secretRef
	ClientRequestToken *string  `json:"ClientRequestToken"`
	RotationToken      *string  `json:"RotationToken"` // accepted; Coffer has no rotation functions yet
	SecretBinary       []byte   `json:"SecretBinary"`
	SecretString       *string  `json:"SecretString"`
	VersionStages      []string `json:"VersionStages"`
}

func (a *API) putSecretValue(c *call, in *putSecretValueIn, name string) (any, error) {
	data, typ, ok, err := valueIn(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalidParameter("You must provide either SecretString or SecretBinary.")
	}
	tok, err := clientToken(in.ClientRequestToken)
	if err != nil {
		return nil, err
	}
	stages, err := stagesIn(in.VersionStages)
	if err != nil {
		return nil, err
	}
	return a.writeVersion(c, name, data, typ, tok, stages)
}

// writeVersion adds a version to an existing secret. PutSecretValue must
// not create secrets (the caller's update capability may not extend to
// creating), so the secret's existence is checked first. A secret purged
// between that check and the write would be created again: the window is
// one read, and the caller holds update on the name.
func (a *API) writeVersion(c *call, name string, data []byte, typ, tok string, stages []string) (*secretVersionOut, error) {
	if _, err := a.liveMeta(c, name); err != nil {
		return nil, err
	}
	c.sensitive("value", string(data))
	c.sensitive("idempotency_token", tok)
	res, err := a.core.Secrets.Put(c.ctx, secret.PutInput{Name: name, Value: data, Type: typ,
		IdempotencyToken: tok, Stages: stages, Actor: c.principal.Name})
	if err != nil {
		return nil, err
	}
	c.touch(name).version = res.Version
	return a.versionOut(c, name, res.Version, true)
}

type updateSecretIn struct {
	secretRef
	ClientRequestToken *string `json:"ClientRequestToken"`
	Description        *string `json:"Description"`
	KmsKeyId           *string `json:"KmsKeyId"` // accepted and ignored
	SecretBinary       []byte  `json:"SecretBinary"`
	SecretString       *string `json:"SecretString"`
	Type               *string `json:"Type"`
}

func (a *API) updateSecret(c *call, in *updateSecretIn, name string) (any, error) {
	if in.Type != nil && *in.Type != "" {
		return nil, invalidRequest("Coffer does not support managed external secrets (Type)")
	}
	data, typ, hasValue, err := valueIn(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	tok, err := clientToken(in.ClientRequestToken)
	if err != nil {
		return nil, err
	}
	m, err := a.liveMeta(c, name)
	if err != nil {
		return nil, err
	}
	if in.Description != nil {
		if m, err = a.core.Secrets.UpdateMetadata(c.ctx, name, secret.Patch{Description: in.Description}); err != nil {
			return nil, err
		}
	}
	if !hasValue {
		return &secretVersionOut{ARN: a.arn(m), Name: m.Name}, nil
	}
	out, err := a.writeVersion(c, name, data, typ, tok, nil)
	if err != nil {
		return nil, err
	}
	out.VersionStages = nil // UpdateSecret answers ARN, Name and VersionId only
	return out, nil
}

type describeSecretOut struct {
	ARN                string              `json:"ARN"`
	Name               string              `json:"Name"`
	Description        string              `json:"Description,omitempty"`
	RotationEnabled    bool                `json:"RotationEnabled"`
	CreatedDate        epoch               `json:"CreatedDate,omitzero"`
	LastChangedDate    epoch               `json:"LastChangedDate,omitzero"`
	DeletedDate        epoch               `json:"DeletedDate,omitzero"`
	Tags               []tag               `json:"Tags,omitempty"`
	VersionIdsToStages map[string][]string `json:"VersionIdsToStages,omitempty"`
	// Set by DescribeSecret from the rotation engine (rotation.go).
	RotationRules    *rotationRulesOut `json:"RotationRules,omitempty"`
	LastRotatedDate  epoch             `json:"LastRotatedDate,omitzero"`
	NextRotationDate epoch             `json:"NextRotationDate,omitzero"`
}

func (a *API) describeSecret(c *call, _ *secretRef, name string) (any, error) {
	m, err := a.core.Secrets.Describe(c.ctx, name)
	if err != nil {
		return nil, err
	}
	out := a.describeOut(m)
	a.addRotation(c, out, name)
	return out, nil
}

func (a *API) describeOut(m *secret.Metadata) *describeSecretOut {
	changed := m.UpdatedAt
	if changed.IsZero() {
		changed = m.CreatedAt
	}
	return &describeSecretOut{ARN: a.arn(m), Name: m.Name, Description: m.Description,
		CreatedDate: epoch(m.CreatedAt), LastChangedDate: epoch(changed), DeletedDate: epochPtr(m.DeletedAt),
		Tags: tagsOut(m.Tags), VersionIdsToStages: versionsToStages(m)}
}

type deleteSecretIn struct {
	secretRef
	ForceDeleteWithoutRecovery *bool  `json:"ForceDeleteWithoutRecovery"`
	RecoveryWindowInDays       *int64 `json:"RecoveryWindowInDays"`
}

type deleteSecretOut struct {
	ARN          string `json:"ARN"`
	Name         string `json:"Name"`
	DeletionDate epoch  `json:"DeletionDate,omitzero"`
}

func (a *API) deleteSecret(c *call, in *deleteSecretIn, name string) (any, error) {
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if force && in.RecoveryWindowInDays != nil {
		return nil, invalidParameter("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, invalidParameter("RecoveryWindowInDays must be between 7 and 30 days.")
		}
	}
	m, err := a.core.Secrets.Describe(c.ctx, name)
	if err != nil {
		return nil, err
	}
	out := &deleteSecretOut{ARN: a.arn(m), Name: m.Name}
	if force {
		if _, err := a.core.Secrets.Delete(c.ctx, name, secret.DeleteInput{Force: true}); err != nil {
			return nil, err
		}
		out.DeletionDate = epoch(a.now())
		return out, nil
	}
	d, err := a.core.Secrets.Delete(c.ctx, name, secret.DeleteInput{RecoveryWindow: time.Duration(days) * 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	out.DeletionDate = epochPtr(d.PurgeAt)
	return out, nil
}

type nameOut struct {
	ARN  string `json:"ARN"`
	Name string `json:"Name"`
}

func (a *API) restoreSecret(c *call, _ *secretRef, name string) (any, error) {
	m, err := a.core.Secrets.Restore(c.ctx, name)
	if errors.Is(err, secret.ErrNotDeleted) {
		// Restoring a secret that is not deleted changes nothing, as with AWS.
		m, err = a.core.Secrets.Describe(c.ctx, name)
	}
	if err != nil {
		return nil, err
	}
	return &nameOut{ARN: a.arn(m), Name: m.Name}, nil
}

type tagResourceIn struct {
	secretRef
	Tags []tag `json:"Tags"`
}

type untagResourceIn struct {
	secretRef
	TagKeys []string `json:"TagKeys"`
}

type empty struct{}

func (a *API) tagResource(c *call, in *tagResourceIn, name string) (any, error) {
	if len(in.Tags) == 0 {
		return nil, invalidParameter("Tags is required")
	}
	tags, err := tagsIn(in.Tags)
	if err != nil {
		return nil, err
	}
	if _, err := a.core.Secrets.UpdateMetadata(c.ctx, name, secret.Patch{SetTags: tags}); err != nil {
		return nil, err
	}
	return empty{}, nil
}

func (a *API) untagResource(c *call, in *untagResourceIn, name string) (any, error) {
	if len(in.TagKeys) == 0 {
		return nil, invalidParameter("TagKeys is required")
	}
	if len(in.TagKeys) > secret.MaxTags {
		return nil, invalidParameter("TagKeys: at most %d keys", secret.MaxTags)
	}
	if _, err := a.core.Secrets.UpdateMetadata(c.ctx, name, secret.Patch{RemoveTags: in.TagKeys}); err != nil {
		return nil, err
	}
	return empty{}, nil
}

type updateStageIn struct {
	secretRef
	VersionStage        *string `json:"VersionStage"`
	MoveToVersionId     *string `json:"MoveToVersionId"`
	RemoveFromVersionId *string `json:"RemoveFromVersionId"`
}

// updateSecretVersionStage moves or removes a staging label. As with AWS,
// moving a label that is attached elsewhere needs RemoveFromVersionId to
// name where it is, and AWSCURRENT can be moved but not removed; moving
// AWSCURRENT gives AWSPREVIOUS to the version that held it.
func (a *API) updateSecretVersionStage(c *call, in *updateStageIn, name string) (any, error) {
	if in.VersionStage == nil || *in.VersionStage == "" {
		return nil, invalidParameter("VersionStage is required")
	}
	label := *in.VersionStage
	stage, err := cofferStage(label)
	if err != nil {
		return nil, err
	}
	m, err := a.liveMeta(c, name)
	if err != nil {
		return nil, err
	}
	lookup := func(id string) (int, error) {
		v := findVersion(m, id)
		if v == nil {
			return 0, resourceNotFound("Secrets Manager can't find the specified secret version: %s", id)
		}
		return v.Number, nil
	}
	holder := m.Stages[stage]
	from := 0
	if in.RemoveFromVersionId != nil {
		if from, err = lookup(*in.RemoveFromVersionId); err != nil {
			return nil, err
		}
		if holder != from {
			return nil, invalidParameter("The staging label %s is not attached to version %s.", label, *in.RemoveFromVersionId)
		}
	}
	switch {
	case in.MoveToVersionId != nil:
		to, err := lookup(*in.MoveToVersionId)
		if err != nil {
			return nil, err
		}
		if stage == secret.StagePrevious {
			return nil, invalidParameter("Coffer moves AWSPREVIOUS itself when AWSCURRENT moves; it can't be moved directly")
		}
		if holder != 0 && holder != to && from == 0 {
			where := fmt.Sprintf("number %d", holder)
			if v := versionByNumber(m, holder); v != nil {
				where = versionID(m.ID, v)
			}
			return nil, invalidParameter("The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.",
				label, where)
		}
		if holder != to {
			if m, err = a.core.Secrets.MoveStage(c.ctx, name, stage, to, holder, c.principal.Name); err != nil {
				return nil, err
			}
		}
	case in.RemoveFromVersionId != nil:
		if stage == secret.StageCurrent {
			return nil, invalidParameter("You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.")
		}
		if m, err = a.core.Secrets.RemoveStage(c.ctx, name, stage); err != nil {
			return nil, err
		}
	default:
		return nil, invalidParameter("give MoveToVersionId, RemoveFromVersionId or both")
	}
	return &nameOut{ARN: a.arn(m), Name: m.Name}, nil
}
