package awsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/awsapi/sigv4"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/secret"
)

// awsError is an error the API reports as is.
type awsError struct {
	status int
	typ    string
	msg    string
}

func (e *awsError) Error() string { return e.typ + ": " + e.msg }

func invalidParameter(format string, args ...any) error {
	return &awsError{http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf(format, args...)}
}

func invalidRequest(format string, args ...any) error {
	return &awsError{http.StatusBadRequest, "InvalidRequestException", fmt.Sprintf(format, args...)}
}

func resourceNotFound(format string, args ...any) error {
	return &awsError{http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf(format, args...)}
}

func resourceExists(format string, args ...any) error {
	return &awsError{http.StatusBadRequest, "ResourceExistsException", fmt.Sprintf(format, args...)}
}

func serialization(format string, args ...any) error {
	return &awsError{http.StatusBadRequest, "SerializationException", fmt.Sprintf(format, args...)}
}

var errInvalidNextToken = &awsError{http.StatusBadRequest, "InvalidNextTokenException", "The NextToken value is invalid."}

// Messages AWS uses, so that code matching on them keeps working.
const (
	msgNotFound      = "Secrets Manager can't find the specified secret."
	msgValueNotFound = "Secrets Manager can't find the specified secret value."
	msgDeleted       = "You can't perform this operation on the secret because it was marked for deletion."
	msgVersionExists = "You can't modify an existing version, you can only create a new version."
)

// mapError turns an error into an HTTP status, an AWS error type and a
// public message. Unknown errors become a generic InternalServiceError; the
// caller logs the detail.
func mapError(err error) (int, string, string) {
	var ae *awsError
	var ve *secret.ValidationError
	var ie *auth.InputError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.typ, ae.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "InvalidRequestException", fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)

	case errors.Is(err, sigv4.ErrMissing):
		return http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token"
	case errors.Is(err, sigv4.ErrMalformed):
		return http.StatusBadRequest, "IncompleteSignatureException", err.Error()
	case errors.Is(err, sigv4.ErrExpired), errors.Is(err, sigv4.ErrScope):
		return http.StatusBadRequest, "InvalidSignatureException", err.Error()
	case errors.Is(err, sigv4.ErrMismatch):
		return http.StatusBadRequest, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	case errors.Is(err, auth.ErrUnauthenticated):
		return errUnknownKey.status, errUnknownKey.typ, errUnknownKey.msg
	case errors.Is(err, auth.ErrForbidden):
		// Denials name the policy and rule that decided (never a value).
		return http.StatusBadRequest, "AccessDeniedException", err.Error()
	case errors.Is(err, ratelimit.ErrLimited):
		// AWS SDKs retry ThrottlingException with backoff, honoring Retry-After.
		return http.StatusBadRequest, "ThrottlingException", "Rate exceeded"
	case errors.Is(err, core.ErrAuditUnavailable):
		return http.StatusServiceUnavailable, "ServiceUnavailable", "Coffer's audit log cannot be written, so requests are refused; see the server log"
	case errors.Is(err, core.ErrSealed):
		return http.StatusServiceUnavailable, "ServiceUnavailable", "Coffer is sealed; an operator must unseal it (coffer operator unseal)"

	case errors.Is(err, secret.ErrNotFound):
		return http.StatusBadRequest, "ResourceNotFoundException", msgNotFound
	case errors.Is(err, secret.ErrVersionNotFound):
		return http.StatusBadRequest, "ResourceNotFoundException", msgValueNotFound
	case errors.Is(err, secret.ErrDestroyed):
		return http.StatusBadRequest, "ResourceNotFoundException", "The value of that secret version was destroyed in Coffer."
	case errors.Is(err, secret.ErrDeleted):
		return http.StatusBadRequest, "InvalidRequestException", msgDeleted
	case errors.Is(err, secret.ErrExpired):
		return http.StatusBadRequest, "InvalidRequestException", "The secret has expired in Coffer; update its expires_at to use it."
	case errors.Is(err, secret.ErrIdempotencyConflict):
		return http.StatusBadRequest, "ResourceExistsException", msgVersionExists
	case errors.Is(err, secret.ErrStageConflict):
		return http.StatusBadRequest, "InvalidParameterException", err.Error()
	case errors.Is(err, secret.ErrNotDeleted):
		return http.StatusBadRequest, "InvalidRequestException", "The secret is not scheduled for deletion."
	case errors.Is(err, secret.ErrCASMismatch):
		return http.StatusBadRequest, "InvalidRequestException", "The secret changed while the request ran; retry it."
	case errors.As(err, &ve):
		return http.StatusBadRequest, "InvalidParameterException", awsField(ve.Field) + ": " + ve.Msg
	case errors.As(err, &ie):
		return http.StatusBadRequest, "InvalidParameterException", ie.Error()
	}
	return http.StatusInternalServerError, "InternalServiceError", "An internal error occurred; the server log has details under the request id."
}

// awsField names a Coffer validation field the way the AWS API calls it.
func awsField(f string) string {
	switch f {
	case "name":
		return "Name"
	case "value":
		return "SecretString or SecretBinary"
	case "idempotency_token":
		return "ClientRequestToken"
	case "stage", "stages":
		return "VersionStage"
	case "description":
		return "Description"
	case "tags":
		return "Tags"
	case "version":
		return "VersionId"
	}
	return f
}

// errorBody is the wire shape of every error. Both spellings of the message
// are sent: SDKs differ in which they read.
type errorBody struct {
	Type     string `json:"__type"`
	Message  string `json:"message"`
	MessageU string `json:"Message"`
}

// writeError writes err the way AWS JSON services do.
func writeError(w http.ResponseWriter, err error, requestID string) {
	status, typ, msg := mapError(err)
	if status >= 500 && typ == "InternalServiceError" {
		msg += " Request id: " + requestID
	}
	w.Header().Set("X-Amzn-Errortype", typ)
	var lim *ratelimit.Limited
	switch {
	case errors.As(err, &lim):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(lim.RetryAfter.Seconds()))))
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, errorBody{Type: typ, Message: msg, MessageU: msg})
}

// decode reads a JSON body strictly: unknown fields, trailing data and type
// mismatches are errors that name the problem. An empty body is {}.
func decode(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return serialization("the request body is not complete JSON")
		case errors.As(err, &se):
			return serialization("the request body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return serialization("%s has the wrong type", te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return serialization("Coffer does not support the parameter %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case strings.Contains(err.Error(), "base64"):
			return serialization("SecretBinary must be base64")
		default:
			return serialization("the request body is not valid JSON")
		}
	}
	if dec.More() {
		return serialization("the request body has data after the JSON object")
	}
	return nil
}
