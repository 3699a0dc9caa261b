package cloudtest

import (
	"net/http"
	"strconv"
	"time"
)

// statusFault is an injected error answer: status on the next n requests
// of a method.
type statusFault struct {
	status int
	n      int
}

// FailRegion makes region's next operation end in its *_FAILED status
// (ENABLE_FAILED, ROTATE_FAILED or REVOKE_FAILED) with userMessage.
func (s *Server) FailRegion(region, userMessage string) {
	s.mu.Lock()
	s.fail[region] = userMessage
	s.mu.Unlock()
}

// Busy makes the next n calls answer 503: the cluster is busy.
func (s *Server) Busy(n int) { s.mu.Lock(); s.busy = n; s.mu.Unlock() }

// BusyRetryAfter makes the 503s that Busy arms carry Retry-After: d (whole
// seconds); 0 sends none.
func (s *Server) BusyRetryAfter(d time.Duration) { s.mu.Lock(); s.busyAfter = d; s.mu.Unlock() }

// Lock puts the primary cluster in the LOCKED state (an exclusive
// operation runs) for its next n cluster GETs: meanwhile every CMEK write
// and cluster PATCH is answered 503, as the API does while the cluster is
// busy, until a client waits for the cluster to be ready.
func (s *Server) Lock(n int) {
	s.mu.Lock()
	s.clusters[s.primary].locked = n
	s.mu.Unlock()
}

// RateLimit makes the next n GETs answer 429 Too Many Requests with
// Retry-After: after (whole seconds).
func (s *Server) RateLimit(n int, after time.Duration) {
	s.mu.Lock()
	s.limited, s.limitFor = n, after
	s.mu.Unlock()
}

// IAMDenied makes the next n POSTs answer 403, as while the cluster's
// access to the key has not propagated yet.
func (s *Server) IAMDenied(n int) { s.mu.Lock(); s.iamDenied = n; s.mu.Unlock() }

// GETErrors makes the next n GETs answer 500.
func (s *Server) GETErrors(n int) { s.ServerErrors("GET", n) }

// ServerErrors makes the next n requests with method answer 500.
func (s *Server) ServerErrors(method string, n int) {
	s.StatusErrors(method, http.StatusInternalServerError, n)
}

// StatusErrors makes the next n requests with method answer status (a 4xx
// or 5xx, e.g. 501 or 502), with the API's error body.
func (s *Server) StatusErrors(method string, status, n int) {
	s.mu.Lock()
	s.errs[method] = statusFault{status: status, n: n}
	s.mu.Unlock()
}

// EchoAuth makes every error message quote the request's Authorization
// header, so that tests can prove the client scrubs what a server echoes.
func (s *Server) EchoAuth(on bool) { s.mu.Lock(); s.echoAuth = on; s.mu.Unlock() }

// injected answers an armed fault, if one applies to r; it runs with s.mu
// held and reports whether it answered.
func (s *Server) injected(w http.ResponseWriter, r *http.Request, clusterID string, fail func(int, int, string, ...any)) bool {
	retryAfter := func(d time.Duration) {
		if d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(d/time.Second)))
		}
	}
	switch f := s.errs[r.Method]; {
	case s.busy > 0:
		s.busy--
		retryAfter(s.busyAfter)
		fail(http.StatusServiceUnavailable, codeUnavailable, "cluster %s is busy: another operation is in progress; try again later", clusterID)
	case r.Method == "GET" && s.limited > 0:
		s.limited--
		retryAfter(s.limitFor)
		fail(http.StatusTooManyRequests, codeResourceExhausted, "rate limit exceeded: too many requests")
	case f.n > 0:
		f.n--
		s.errs[r.Method] = f
		code, msg := codeInternal, http.StatusText(f.status)
		if f.status == http.StatusInternalServerError {
			msg = "internal error"
		} else if f.status == http.StatusNotImplemented {
			code = codeUnimplemented
		} else if f.status < 500 {
			code = codeInvalidArgument
		}
		fail(f.status, code, "%s", msg)
	case r.Method == "POST" && s.iamDenied > 0:
		s.iamDenied--
		fail(http.StatusForbidden, codePermissionDenied, "cannot access the customer-managed key: permission denied by the key's IAM policy")
	default:
		return false
	}
	return true
}
