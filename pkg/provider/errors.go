package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Class is what an error proves about a key. verify-destroyed depends on it.
type Class string

const (
	// ClassNone is the class of a nil error.
	ClassNone Class = ""
	// Destroyed: the key material is gone; proof.
	Destroyed Class = "DESTROYED"
	// Revoked: unreachable now (disabled, pending deletion, access denied)
	// but reversible.
	Revoked Class = "REVOKED"
	// Misuse: wrong key, wrong AAD, corrupt ciphertext, bad request.
	Misuse Class = "MISUSE"
	// Transient: network, throttling, 5xx: retry with backoff; never proof
	// of anything. Errors of unknown origin are classed Transient too, so
	// that nothing unexplained ever counts as proof.
	Transient Class = "TRANSIENT"
)

// Error is a classified provider error. Provider adapters return it for every
// failure of a KMS call.
type Error struct {
	Provider  string // "file-kms", "aws-kms", "gcp-kms", "vault-transit"
	Op        string // "wrap", "unwrap", "describe", "rotate", ...
	Class     Class
	Code      string // the KMS's own error code (e.g. "DisabledException")
	Message   string // the KMS's own message, free of secrets
	RequestID string // the KMS request ID, where the KMS returns one
	Err       error  // the underlying error, if any
}

func (e *Error) Error() string {
	msg := e.Provider + ": " + e.Op
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Code == "" && e.Message == "" && e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a classified error with a formatted message.
func Errorf(provider, op string, class Class, code, format string, args ...any) *Error {
	return &Error{Provider: provider, Op: op, Class: class, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Classify returns the class of any error a provider returned. A nil error
// is ClassNone. Context cancellation, deadlines and network errors are
// Transient; an unclassified error is Transient too (never proof).
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	var pe *Error
	if errors.As(err, &pe) && pe.Class != ClassNone {
		return pe.Class
	}
	return Transient
}

// IsTransientNetwork reports whether err is a network-level failure or a
// deadline: the kind of error every adapter classes Transient.
func IsTransientNetwork(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Details returns the KMS code and message of err for reports, or "" and the
// error text when err is not a classified provider error.
func Details(err error) (code, message string) {
	if err == nil {
		return "", ""
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code, pe.Message
	}
	return "", err.Error()
}
