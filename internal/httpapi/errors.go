package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/authz"
	"github.com/coffer-dev/coffer/internal/barrier"
	"github.com/coffer-dev/coffer/internal/cluster"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/policy"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/seal"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/storage"
)

// apiError is an error the API reports as is.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...)}
}

var errNoRoute = &apiError{http.StatusNotFound, "no_route", "no such endpoint; see docs/api.md"}

// errorBody is the wire shape of every error.
type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// mapError turns a domain error into a status, a stable code and a public
// message. Unknown errors become a generic 500; the caller logs the detail.
func mapError(err error) (int, string, string) {
	var ae *apiError
	var ve *secret.ValidationError
	var mbe *http.MaxBytesError
	var ie *auth.InputError
	var pe *policy.Error
	var lim *ratelimit.Limited
	if status, code, msg, ok := authMethodError(err); ok {
		return status, code, msg
	}
	if status, code, msg, ok := dynamicError(err); ok { // leases and database credentials (dbcred.go)
		return status, code, msg
	}
	if status, code, msg, ok := rotationError(err); ok { // rotation.go
		return status, code, msg
	}
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code, ae.msg
	case errors.As(err, &ve):
		return http.StatusBadRequest, "invalid_request", ve.Error()
	case errors.As(err, &ie):
		return http.StatusBadRequest, "invalid_request", ie.Error()
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated", "missing, invalid, expired or revoked token; set COFFER_TOKEN or run coffer login"
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, "forbidden", forbiddenMessage(err)
	case errors.As(err, &lim):
		return http.StatusTooManyRequests, "throttled", lim.Error()
	case errors.As(err, new(*outcomeUnrecorded)):
		return http.StatusServiceUnavailable, "audit_outcome_unrecorded", "the change was made and its intent is on record, but its outcome could not be recorded; read it back before retrying; see the server log"
	case errors.Is(err, core.ErrAuditUnavailable):
		return http.StatusServiceUnavailable, "audit_unavailable", "the audit log cannot be written, so requests are refused; see the server log"
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, cluster.ErrUnavailable):
		return http.StatusServiceUnavailable, "storage_unavailable", "the storage database cannot be reached; retry shortly"
	case errors.Is(err, barrier.ErrSealed):
		return http.StatusServiceUnavailable, "sealed", "server is sealed; unseal it with coffer operator unseal"
	case errors.Is(err, seal.ErrNotInitialized), errors.Is(err, barrier.ErrNotInitialized):
		return http.StatusServiceUnavailable, "not_initialized", "server is not initialized; run coffer operator init"
	case errors.Is(err, seal.ErrAlreadyInitialized), errors.Is(err, barrier.ErrAlreadyInitialized):
		return http.StatusConflict, "already_initialized", "server is already initialized"
	case errors.Is(err, core.ErrNoRootAttempt), errors.Is(err, core.ErrRootNonce):
		return http.StatusBadRequest, "invalid_request", err.Error()
	case errors.Is(err, core.ErrRootAttemptInProgress):
		return http.StatusConflict, "in_progress", err.Error()
	case errors.Is(err, seal.ErrBadKey), errors.Is(err, seal.ErrInvalidKeys), errors.Is(err, seal.ErrWrongSeal):
		return http.StatusBadRequest, "invalid_unseal_key", err.Error()
	case errors.Is(err, authz.ErrNotFound):
		return http.StatusNotFound, "not_found", "policy not found"
	case errors.Is(err, authz.ErrReserved):
		return http.StatusBadRequest, "invalid_request", err.Error()
	case errors.As(err, &pe):
		return http.StatusBadRequest, "invalid_policy", pe.Error()
	case errors.Is(err, secret.ErrNotFound):
		return http.StatusNotFound, "not_found", "secret not found"
	case errors.Is(err, secret.ErrVersionNotFound):
		return http.StatusNotFound, "version_not_found", err.Error()
	case errors.Is(err, secret.ErrDestroyed):
		return http.StatusGone, "destroyed", "that version's value was destroyed"
	case errors.Is(err, secret.ErrDeleted):
		return http.StatusConflict, "deleted", err.Error()
	case errors.Is(err, secret.ErrNotDeleted):
		return http.StatusConflict, "not_deleted", err.Error()
	case errors.Is(err, secret.ErrExpired):
		return http.StatusConflict, "expired", err.Error()
	case errors.Is(err, secret.ErrCASMismatch):
		return http.StatusPreconditionFailed, "cas_mismatch", casMessage(err)
	case errors.Is(err, secret.ErrIdempotencyConflict):
		return http.StatusConflict, "idempotency_conflict", err.Error()
	case errors.Is(err, secret.ErrStageConflict):
		return http.StatusConflict, "stage_conflict", err.Error()
	}
	return http.StatusInternalServerError, "internal", "internal error; the server log has details under this request id"
}

// writeError writes err and returns the status it chose.
func writeError(w http.ResponseWriter, err error, requestID string) int {
	status, code, msg := mapError(err)
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.RequestID = code, msg, requestID
	var lim *ratelimit.Limited
	switch {
	case errors.As(err, &lim):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(lim.RetryAfter.Seconds()))))
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, body)
	return status
}

// decode reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are errors that name the problem.
func decode(r *request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json"}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.Is(err, io.EOF):
			return badRequest("request body is empty; expected a JSON object")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("request body is not valid JSON (it ends too early)")
		case errors.As(err, &se):
			return badRequest("request body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te) && strings.HasPrefix(te.Value, "a duration"):
			// Duration types describe what they want in Value.
			return badRequest("field %q must be %s", te.Field, te.Value)
		case errors.As(err, &te):
			return badRequest("field %q must be %s", te.Field, jsonKind(te.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			// An error of one of Coffer's own JSON types: its message
			// says what is wrong (never a value it was given).
			return badRequest("request body: %v", err)
		}
	}
	if dec.More() {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "uint32":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "true or false"
	}
	return "of another type"
}

// casMessage keeps the version numbers of a CAS failure; they are not secret.
func casMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, secret.ErrCASMismatch.Error()); i >= 0 {
		return msg[i:]
	}
	return secret.ErrCASMismatch.Error()
}

// forbiddenMessage keeps the reason a denial gives (policy and rule names,
// never values), so "access denied" can be debugged without guessing.
func forbiddenMessage(err error) string {
	if msg := err.Error(); msg != auth.ErrForbidden.Error() {
		return msg
	}
	return "permission denied"
}

// outcomeUnrecorded is a change that was made but whose outcome record
// could not be kept. It is answered 503 like an audit outage, under a code
// of its own: "audit_unavailable" promises that nothing was done (clients
// retry it), and here something was.
type outcomeUnrecorded struct{ err error }

func (e *outcomeUnrecorded) Error() string { return "outcome not recorded: " + e.err.Error() }
func (e *outcomeUnrecorded) Unwrap() error { return e.err }
