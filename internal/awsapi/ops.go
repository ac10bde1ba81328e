package awsapi

import (
	"context"
	"fmt"
	"strings"
)

// Capabilities an operation declares besides the policy capabilities
// (read, update, delete) that the pipeline checks on the secret named by
// SecretId.
const (
	capNone   = ""       // any authenticated caller; the operation touches no secret
	capCustom = "custom" // the handler authorizes each secret itself
)

// operation is one X-Amz-Target.
type operation struct {
	name string
	run  func(*call) (any, error)
}

// table is every operation the API answers.
func (a *API) table() []operation {
	return []operation{
		op(a, "CreateSecret", capCustom, a.createSecret),
		op(a, "GetSecretValue", "read", a.getSecretValue),
		op(a, "BatchGetSecretValue", capCustom, a.batchGetSecretValue),
		op(a, "PutSecretValue", "update", a.putSecretValue),
		op(a, "UpdateSecret", "update", a.updateSecret),
		op(a, "DescribeSecret", "read", a.describeSecret),
		op(a, "ListSecrets", capCustom, a.listSecrets),
		op(a, "ListSecretVersionIds", "read", a.listSecretVersionIDs),
		op(a, "UpdateSecretVersionStage", "update", a.updateSecretVersionStage),
		op(a, "DeleteSecret", "delete", a.deleteSecret),
		op(a, "RestoreSecret", "delete", a.restoreSecret),
		op(a, "TagResource", "update", a.tagResource),
		op(a, "UntagResource", "update", a.untagResource),
		op(a, "GetRandomPassword", capNone, a.getRandomPassword),

		op(a, "RotateSecret", "rotate", a.rotateSecret), // rotation.go
		op(a, "CancelRotateSecret", "update", a.cancelRotateSecret),

		op(a, "GetResourcePolicy", capNone, unsupported[secretRef]("resource policies")),
		op(a, "PutResourcePolicy", capNone, unsupported[resourcePolicyIn]("resource policies")),
		op(a, "DeleteResourcePolicy", capNone, unsupported[secretRef]("resource policies")),
		op(a, "ValidateResourcePolicy", capNone, unsupported[validatePolicyIn]("resource policies")),
		op(a, "ReplicateSecretToRegions", capNone, unsupported[replicateIn]("replication")),
		op(a, "RemoveRegionsFromReplication", capNone, unsupported[removeRegionsIn]("replication")),
		op(a, "StopReplicationToReplica", capNone, unsupported[secretRef]("replication")),
	}
}

// targeted is an input that names one secret with SecretId.
type targeted interface{ secretID() string }

// secretRef is embedded in every input that takes a SecretId.
type secretRef struct {
	SecretId *string `json:"SecretId"`
}

func (s secretRef) secretID() string {
	if s.SecretId == nil {
		return ""
	}
	return *s.SecretId
}

// op declares an operation: its input is decoded strictly into In; for a
// policy capability, the pipeline resolves In's SecretId to a secret name
// and authorizes it before fn runs with that name.
func op[In any](a *API, name, capability string, fn func(c *call, in *In, secretName string) (any, error)) operation {
	checked := capability != capNone && capability != capCustom
	if _, ok := any(new(In)).(targeted); checked && !ok {
		panic(fmt.Sprintf("awsapi: %s checks %s on a secret but its input has no SecretId", name, capability))
	}
	return operation{name: name, run: func(c *call) (any, error) {
		in := new(In)
		if err := decode(c.body, in); err != nil {
			return nil, err
		}
		var secretName string
		if checked {
			var err error
			if secretName, err = a.resolve(c.ctx, any(in).(targeted).secretID()); err != nil {
				return nil, err
			}
			c.touch(secretName)
			if err := a.authorize(c, secretName, capability); err != nil {
				return nil, err
			}
		}
		return fn(c, in, secretName)
	}}
}

// resolve turns a SecretId (a name, a full ARN or an ARN without its
// six-character suffix) into a secret name.
func (a *API) resolve(ctx context.Context, id string) (string, error) {
	if id == "" {
		return "", invalidParameter("SecretId is required")
	}
	if err := a.checkID("SecretId", id); err != nil {
		return "", err
	}
	if !strings.HasPrefix(id, "arn:") {
		return id, nil
	}
	parts := strings.SplitN(id, ":", 7)
	if len(parts) != 7 || parts[1] == "" || parts[2] != service || parts[5] != "secret" || parts[6] == "" {
		return "", invalidParameter("SecretId is not a Secrets Manager secret ARN")
	}
	if parts[3] != a.cfg.Region || parts[4] != a.cfg.AccountID {
		return "", resourceNotFound("%s Coffer serves region %s and account %s.", msgNotFound, a.cfg.Region, a.cfg.AccountID)
	}
	rest := parts[6]
	if n := len(rest); n > 7 && rest[n-7] == '-' {
		name := rest[:n-7]
		if m, err := a.core.Secrets.Describe(ctx, name); err == nil && arnSuffix(m.ID) == rest[n-6:] {
			return name, nil
		}
	}
	return rest, nil // a partial ARN: the name alone
}

// unsupported answers operations for AWS features Coffer does not have.
func unsupported[In any](feature string) func(*call, *In, string) (any, error) {
	return func(*call, *In, string) (any, error) {
		switch feature {
		case "resource policies":
			return nil, invalidRequest("Coffer does not support resource policies; access to secrets is governed by Coffer policies (coffer policy)")
		default:
			return nil, invalidRequest("Coffer does not support %s; a Coffer server serves one region", feature)
		}
	}
}

// Inputs of operations Coffer refuses, declared so that their requests
// decode and get the refusal rather than a parse error.
type (
	resourcePolicyIn struct {
		secretRef
		ResourcePolicy    *string `json:"ResourcePolicy"`
		BlockPublicPolicy *bool   `json:"BlockPublicPolicy"`
	}
	validatePolicyIn struct {
		secretRef
		ResourcePolicy *string `json:"ResourcePolicy"`
	}
	replicateIn struct {
		secretRef
		AddReplicaRegions           any  `json:"AddReplicaRegions"`
		ForceOverwriteReplicaSecret bool `json:"ForceOverwriteReplicaSecret"`
	}
	removeRegionsIn struct {
		secretRef
		RemoveReplicaRegions []string `json:"RemoveReplicaRegions"`
	}
)
