package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error kinds. Every error the client returns matches at most one of them
// with errors.Is, so that the command line maps them to exit codes in one
// place.
var (
	// ErrAuth: 401 or 403 (after the IAM-propagation retries on enable).
	ErrAuth = errors.New("cloud api: not authorized")
	// ErrNotFound: 404, e.g. no such cluster.
	ErrNotFound = errors.New("cloud api: not found")
	// ErrRejected: any other 4xx but 429: the API refused the request and
	// said why.
	ErrRejected = errors.New("cloud api: request rejected")
	// ErrFailed: a region reached a *_FAILED status (see *FailedError).
	ErrFailed = errors.New("cloud api: cmek operation failed")
	// ErrTimeout: Wait gave up before every region settled.
	ErrTimeout = errors.New("cloud api: timed out")
	// ErrUnavailable: 429 (rate limited), 5xx or a network error after the
	// retries, or 503 (the cluster is busy) on a write that is not retried.
	ErrUnavailable = errors.New("cloud api: unavailable")
)

// APIError is an error response of the API: the HTTP status and the body
// {"code", "message", "details"}. The message is the API's own, with the
// API key scrubbed out should the server ever echo it.
type APIError struct {
	Op      string // "enable cmek", "get cmek", "list backups", ...
	Method  string
	Path    string
	Status  int              // HTTP status
	Code    int              // the API's (gRPC) code
	Message string           // the API's message
	Details []map[string]any // the API's details (google.protobuf.Any)
	// RetryAfter is the wait a 429 or 503 answer's Retry-After header asked
	// for (capped at MaxRetryAfter), or 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("cloud api: %s (%s %s): %d %s", e.Op, e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is matches the error kind of the HTTP status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrAuth:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRejected:
		return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusUnauthorized &&
			e.Status != http.StatusForbidden && e.Status != http.StatusNotFound && e.Status != http.StatusTooManyRequests
	case ErrUnavailable:
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	return false
}

// FailedError is a region (or the cluster) in a *_FAILED status, with the
// user_message that says why.
type FailedError struct {
	ClusterID   string
	Region      string // empty when only the cluster's status says
	Status      Status
	UserMessage string
}

func (e *FailedError) Error() string {
	where := "cluster " + e.ClusterID
	if e.Region != "" {
		where += " region " + e.Region
	}
	msg := fmt.Sprintf("cloud api: %s: cmek %s", where, e.Status)
	if e.UserMessage != "" {
		msg += ": " + e.UserMessage
	}
	return msg
}

func (e *FailedError) Is(target error) bool { return target == ErrFailed }

// kindError gives err an error kind without changing its text.
type kindError struct {
	err  error
	kind error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// parseAPIError builds an *APIError from a non-2xx response body. A body
// that is not the API's JSON error becomes the message, cut short and on
// one line.
func parseAPIError(op, method, path string, status int, body []byte, scrub func(string) string) *APIError {
	e := &APIError{Op: op, Method: method, Path: path, Status: status}
	body = []byte(scrub(string(body)))
	var wire struct {
		Code    int              `json:"code"`
		Message string           `json:"message"`
		Details []map[string]any `json:"details"`
	}
	if err := json.Unmarshal(body, &wire); err == nil {
		e.Code, e.Message, e.Details = wire.Code, wire.Message, wire.Details
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	e.Message = oneLine(scrub(e.Message), 500)
	return e
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
