package domain

import (
	"errors"
	"fmt"
)

// Code is a stable error code, sent to clients as extensions.code.
type Code string

// The error codes of the API contract.
const (
	CodeUnauthenticated      Code = "UNAUTHENTICATED"
	CodeForbidden            Code = "FORBIDDEN"
	CodeNotFound             Code = "NOT_FOUND"
	CodeBadUserInput         Code = "BAD_USER_INPUT"
	CodeNotEligible          Code = "NOT_ELIGIBLE"
	CodeConsentRequired      Code = "CONSENT_REQUIRED"
	CodeInvalidTransition    Code = "INVALID_TRANSITION"
	CodeConflict             Code = "CONFLICT"
	CodeIdempotencyKeyReused Code = "IDEMPOTENCY_KEY_REUSED"
	CodeRateLimited          Code = "RATE_LIMITED"
	CodeQueryTooComplex      Code = "QUERY_TOO_COMPLEX"
	CodeInternal             Code = "INTERNAL"
)

// Error is an error a client may see: a code and a message safe to show.
type Error struct {
	Code    Code
	Message string
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or CodeInternal for anything that is not
// an *Error: what we did not name is internal and is never shown as is.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrNotFound is the one answer for anything missing or outside the caller's
// scope, so the two cannot be told apart.
func ErrNotFound(kind string) *Error { return Errorf(CodeNotFound, "%s not found", kind) }
