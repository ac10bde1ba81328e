package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/awskey"
)

// awsKeyPath is the policy path of every access-key admin route.
const awsKeyPath = "auth/awskey/keys"

// awsKeyRoutes declares the admin routes of AWS access keys, which sign
// requests to the AWS Secrets Manager API:
//
//	POST   /v1/auth/awskey/keys         update on auth/awskey/keys: create a key (the secret is shown once)
//	GET    /v1/auth/awskey/keys         list on auth/awskey/keys: list keys (never their secrets)
//	DELETE /v1/auth/awskey/keys/{akid}  delete on auth/awskey/keys: delete a key
func (a *API) awsKeyRoutes(keys *awskey.Service) []route {
	h := awsKeyHandlers{keys}
	return []route{
		{"POST", "/v1/auth/awskey/keys", Op{"awskey.create", "update"}, authenticated, h.create, fixed(awsKeyPath)},
		{"GET", "/v1/auth/awskey/keys", Op{"awskey.list", "list"}, authenticated, h.list, fixed(awsKeyPath)},
		{"DELETE", "/v1/auth/awskey/keys/{akid}", Op{"awskey.delete", "delete"}, authenticated, h.delete, fixed(awsKeyPath)},
	}
}

type awsKeyHandlers struct{ keys *awskey.Service }

// AWSKeyCreateRequest is the body of POST /v1/auth/awskey/keys.
type AWSKeyCreateRequest struct {
	Name     string        `json:"name"`
	Policies []string      `json:"policies,omitempty"`
	TTL      auth.Duration `json:"ttl,omitempty"` // 0: 90 days; at most 366 days
}

// AWSKeyCreated is the answer of POST /v1/auth/awskey/keys: the only time
// the secret access key is shown.
type AWSKeyCreated struct {
	AccessKeyID     string      `json:"access_key_id"`
	SecretAccessKey string      `json:"secret_access_key"`
	Key             *awskey.Key `json:"key"`
}

// AWS access key lifetimes: keys do expire, and a rotation is a new key.
const (
	defaultAWSKeyTTL = 90 * 24 * time.Hour
	maxAWSKeyTTL     = 366 * 24 * time.Hour
)

var errAWSKeyNotFound = &apiError{http.StatusNotFound, "not_found", "access key not found"}

func (h awsKeyHandlers) create(r *request) (any, error) {
	var in AWSKeyCreateRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	// Like child tokens: a key gets no policy its creator lacks, an
	// emergency token cannot mint lasting credentials, and keys expire.
	if err := auth.CheckDelegation(r.principal, in.Policies); err != nil {
		return nil, err
	}
	ttl := time.Duration(in.TTL)
	switch {
	case ttl == 0:
		ttl = defaultAWSKeyTTL
	case ttl > maxAWSKeyTTL:
		return nil, badRequest("ttl must be at most %s", maxAWSKeyTTL)
	}
	id, secret, k, err := h.keys.Create(r.ctx, awskey.Input{Name: in.Name, Policies: in.Policies,
		TTL: ttl, CreatedBy: r.principal.Name})
	if err != nil {
		return nil, err
	}
	r.status = http.StatusCreated
	return AWSKeyCreated{AccessKeyID: id, SecretAccessKey: secret, Key: k}, nil
}

func (h awsKeyHandlers) list(r *request) (any, error) {
	keys, err := h.keys.List(r.ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"keys": keys}, nil
}

func (h awsKeyHandlers) delete(r *request) (any, error) {
	err := h.keys.Delete(r.ctx, r.PathValue("akid"))
	if errors.Is(err, awskey.ErrNotFound) {
		return nil, errAWSKeyNotFound
	}
	return nil, err
}
