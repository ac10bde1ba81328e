package vaultapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/token"
	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/seal"
	"github.com/coffer-dev/coffer/internal/secret"
)

// errorBody is Vault's error shape.
type errorBody struct {
	Errors []string `json:"errors"`
}

// apiError is an error this package reports as is.
type apiError struct {
	status int
	msgs   []string
}

func (e *apiError) Error() string {
	if len(e.msgs) == 0 {
		return http.StatusText(e.status)
	}
	return e.msgs[0]
}

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, []string{fmt.Sprintf(format, args...)}}
}

// errNotFound is Vault's answer for a path with nothing at it: 404 and no message.
var errNotFound = &apiError{http.StatusNotFound, []string{}}

// Vault's messages, kept word for word: clients and scripts match them.
const (
	msgPermissionDenied = "permission denied"
	msgSealed           = "Vault is sealed"
	msgCASMismatch      = "check-and-set parameter did not match the current version"
)

// mapError turns an error into a status and Vault's error list. Unknown
// errors become a generic 500; the pipeline logs the detail.
func mapError(err error) (int, []string) {
	var ae *apiError
	var ve *secret.ValidationError
	var ie *auth.InputError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.msgs
	case errors.As(err, &ve):
		return http.StatusBadRequest, []string{ve.Error()}
	case errors.As(err, &ie):
		return http.StatusBadRequest, []string{ie.Error()}
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, []string{fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, auth.ErrUnauthenticated):
		// Vault answers a missing, unknown or expired token like a denial.
		return http.StatusForbidden, []string{msgPermissionDenied}
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, []string{forbiddenMessage(err)}
	case errors.Is(err, barrier.ErrSealed), errors.Is(err, token.ErrSealed):
		return http.StatusServiceUnavailable, []string{msgSealed}
	case errors.Is(err, ratelimit.ErrLimited):
		return http.StatusTooManyRequests, []string{err.Error()}
	case errors.Is(err, core.ErrAuditUnavailable):
		return http.StatusServiceUnavailable, []string{"audit log unavailable; request refused"}
	case errors.Is(err, seal.ErrNotInitialized), errors.Is(err, barrier.ErrNotInitialized):
		return http.StatusServiceUnavailable, []string{"Vault is not initialized; run coffer operator init"}
	case errors.Is(err, secret.ErrNotFound), errors.Is(err, secret.ErrVersionNotFound),
		errors.Is(err, secret.ErrDestroyed), errors.Is(err, secret.ErrExpired):
		return http.StatusNotFound, []string{}
	case errors.Is(err, secret.ErrCASMismatch):
		// Vault answers 400 here; 412 would make its client retry.
		return http.StatusBadRequest, []string{msgCASMismatch}
	case errors.Is(err, secret.ErrDeleted):
		return http.StatusBadRequest, []string{"secret is deleted: Coffer deletes whole secrets; undelete it first"}
	case errors.Is(err, secret.ErrStageConflict):
		return http.StatusBadRequest, []string{err.Error()}
	case errors.Is(err, token.ErrNotRenewable):
		return http.StatusBadRequest, []string{"token is not renewable"}
	}
	return http.StatusInternalServerError, []string{"internal error"}
}

// forbiddenMessage keeps the reason a denial gives (policy and rule names,
// never values), like the native API; it always starts with "permission
// denied", which clients match.
func forbiddenMessage(err error) string {
	if msg := err.Error(); msg != auth.ErrForbidden.Error() {
		return msg
	}
	return msgPermissionDenied
}
