package cloud

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"context"
)

// policy is a retry rule, after the vendor's Terraform provider
// (terraform-provider-cockroach: its HTTP client is go-retryablehttp with
// retryGetRequestsOnly; its CMEK resource retries enable by hand).
type policy int

const (
	// retryRead: GET. Network errors (but TLS-certificate, redirect, scheme
	// and header errors), 429 and 5xx (but 501): GETAttempts tries, 1 s
	// doubling to 30 s, or what Retry-After says on 429 and 503.
	retryRead policy = iota
	// retryNone: PUT, PATCH. Never retried: a failed write may have changed
	// the cluster all the same, and the API takes no idempotency key.
	retryNone
	// retryEnable: POST .../cmek. 400, 401 and 403 for IAMPropagationWindow
	// from the first of them; on 503, wait for the cluster to be ready
	// (WaitClusterReady) and try again; ClusterReadyTimeout in all.
	retryEnable
)

type call struct {
	op      string // for messages: "get cmek", "enable cmek", ...
	method  string
	path    string // escaped
	query   url.Values
	body    any
	out     any
	policy  policy
	cluster string // retryEnable: the cluster to wait for on 503
}

// getBackoff is the delay before a GET's try attempt+1: 1 s doubling to 30 s.
func getBackoff(attempt int) time.Duration {
	d := RetryWaitMin
	for i := 1; i < attempt && d < RetryWaitMax; i++ {
		d *= 2
	}
	return min(d, RetryWaitMax)
}

// retryAfter reads a Retry-After header of a 429 or 503 answer: seconds or
// an HTTP date, capped at MaxRetryAfter. ok is false when there is none
// (or it does not parse).
func retryAfter(status int, h http.Header, now time.Time) (time.Duration, bool) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return 0, false
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		d = time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, MaxRetryAfter), true
}

// Compiled on first use, not at every cmekctl start (issue 18).
var (
	redirectsErr = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`stopped after \d+ redirects\z`) })
	schemeErr    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`unsupported protocol scheme`) })
	headerErr    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`invalid header`) })
)

// retryableNetErr reports whether a transport error may go away by itself.
// A TLS certificate the client does not trust, too many redirects, an
// unsupported scheme or an invalid header will not: they fail at once.
func retryableNetErr(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.Is(err, errCrossOriginRedirect) {
		return false
	}
	s := err.Error()
	return !redirectsErr().MatchString(s) && !schemeErr().MatchString(s) && !headerErr().MatchString(s) &&
		!strings.Contains(s, "certificate is not trusted")
}

// retryableStatus: 429 and 5xx but 501 Not Implemented.
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || (status >= 500 && status != http.StatusNotImplemented)
}

func isIAMStatus(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden
}

// do runs one API call with its retry policy and decodes a 2xx body into
// cl.out.
func (c *Client) do(ctx context.Context, cl call) error {
	return c.guard(c.doRetry(ctx, cl))
}

func (c *Client) doRetry(ctx context.Context, cl call) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("cloud api: %s: encode request: %w", cl.op, err)
		}
	}
	where := fmt.Sprintf("cloud api: %s (%s %s)", cl.op, cl.method, cl.path)
	start := c.now()
	var iamSince time.Time // the first 400/401/403 of an enable
	iamDelay := firstDelay
	for attempt := 1; ; attempt++ {
		status, hdr, body, err := c.roundTrip(ctx, cl, payload)
		if err == nil && status >= 200 && status < 300 {
			if cl.out == nil {
				return nil
			}
			if err := json.Unmarshal(body, cl.out); err != nil {
				return &kindError{err: fmt.Errorf("%s: decode response: %w", where, err), kind: ErrUnavailable}
			}
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%s: %w", where, ctxErr)
		}
		var final error
		if err != nil {
			final = &kindError{err: fmt.Errorf("%s: %w", where, err), kind: ErrUnavailable}
		} else {
			apiErr := parseAPIError(cl.op, cl.method, cl.path, status, body, c.scrub)
			apiErr.RetryAfter, _ = retryAfter(status, hdr, c.now())
			final = apiErr
		}
		var delay time.Duration
		var why string
		switch cl.policy {
		case retryRead:
			if (err != nil && !retryableNetErr(err)) || (err == nil && !retryableStatus(status)) || attempt >= GETAttempts {
				return final
			}
			delay = getBackoff(attempt)
			if d, ok := retryAfter(status, hdr, c.now()); ok {
				delay, why = d, fmt.Sprintf("retrying in %s as Retry-After asks (attempt %d of %d)", d, attempt+1, GETAttempts)
			} else {
				why = fmt.Sprintf("retrying in %s (attempt %d of %d)", delay, attempt+1, GETAttempts)
			}
		case retryEnable:
			now := c.now()
			if now.Sub(start) >= ClusterReadyTimeout {
				return &kindError{err: fmt.Errorf("%w (still failing after retrying for %s)", final, ClusterReadyTimeout), kind: ErrTimeout}
			}
			switch {
			case err == nil && isIAMStatus(status):
				if iamSince.IsZero() {
					iamSince = now
				} else if now.Sub(iamSince) >= IAMPropagationWindow {
					return fmt.Errorf("%w (still refused %s after the first refusal)", final, IAMPropagationWindow)
				}
				delay, iamDelay = iamDelay, min(2*iamDelay, maxDelay)
				why = fmt.Sprintf("cloud IAM grants can take minutes to propagate; retrying in %s (%s of up to %s since the first refusal)",
					delay, now.Sub(iamSince).Truncate(time.Second), IAMPropagationWindow)
			case err == nil && status == http.StatusServiceUnavailable:
				c.log("%v; the cluster is busy with another operation: waiting until it is ready, then trying again", final)
				if _, werr := c.WaitClusterReady(ctx, cl.cluster, WaitOptions{Timeout: ClusterReadyTimeout - now.Sub(start)}); werr != nil {
					return fmt.Errorf("%s: the cluster was busy (503), and waiting for it failed: %w", where, werr)
				}
				continue
			default:
				return final
			}
		default:
			return final
		}
		c.log("%v; %s", final, why)
		if err := c.sleep(ctx, delay); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
}
