package cloud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

const (
	// DefaultServer is the CockroachDB Cloud API's base URL.
	DefaultServer = "https://cockroachlabs.cloud"
	// APIVersion is sent as Cc-Version on every request. Without it the API
	// answers as version 2022-03-31.
	APIVersion = "2024-09-16"

	// IAMPropagationWindow is how long EnableCMEK retries 400, 401 and 403,
	// counted from the first such answer: cloud IAM grants to the cluster's
	// principal take time to propagate.
	IAMPropagationWindow = 10 * time.Minute
	// ClusterReadyTimeout bounds how long EnableCMEK waits, on a 503, for
	// the cluster to leave its busy state (WaitClusterReady), and how long
	// EnableCMEK goes on retrying in all.
	ClusterReadyTimeout = 2 * time.Hour
	// GETAttempts bounds the automatic tries of a GET on 429, 5xx (but 501)
	// and network errors.
	GETAttempts = 5
	// RetryWaitMin and RetryWaitMax bound a GET's backoff: 1 s doubling to
	// 30 s, as the vendor's Terraform provider's HTTP client
	// (go-retryablehttp's defaults).
	RetryWaitMin = 1 * time.Second
	RetryWaitMax = 30 * time.Second
	// MaxRetryAfter caps the wait a Retry-After header may ask for.
	MaxRetryAfter = 5 * time.Minute
	// DefaultWaitTimeout is Wait's overall limit.
	DefaultWaitTimeout = 2 * time.Hour

	// Polling (Wait, WaitClusterReady, the IAM retries of enable): 0.5 s
	// doubling to 10 s, as the Terraform provider's retry helper.
	firstDelay = 500 * time.Millisecond
	maxDelay   = 10 * time.Second
	maxBody    = 8 << 20
)

// Options configure a Client. Only APIKey is required.
type Options struct {
	// Server is the API's base URL; default DefaultServer. Plain http is
	// accepted only for a loopback address (tests), never elsewhere: the
	// API key would cross the network in clear.
	Server string
	// APIKey is the service account API key (COCKROACH_API_KEY).
	APIKey Secret
	// HTTPClient defaults to a client with a 60 s timeout per request.
	HTTPClient *http.Client
	// Now and Sleep default to the real clock; tests pass fakes.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Logf receives progress messages (retries and why); nil discards them.
	// The API key never reaches it.
	Logf func(format string, args ...any)
	// Version goes into the User-Agent (cmekctl/<version>); default: the
	// module version from the build info, else "dev".
	Version string
}

// Client calls the CMEK and backup endpoints of the CockroachDB Cloud API.
// It is safe for concurrent use. Printing it never shows the API key.
type Client struct {
	base  string // scheme://host[/path], no trailing slash
	key   Secret
	hc    *http.Client
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	logf  func(format string, args ...any)
	ua    string
}

// New checks opts and returns a Client.
func New(opts Options) (*Client, error) {
	server := opts.Server
	if server == "" {
		server = DefaultServer
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("cloud api: invalid server URL %q: expected https://host", redactServer(server))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("cloud api: invalid server URL %q: no user info, query or fragment allowed", redactServer(server))
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("cloud api: refusing plain http to %s: the API key would travel in clear; use https", u.Host)
	}
	key := opts.APIKey.Reveal()
	if key == "" {
		return nil, errors.New("cloud api: no API key")
	}
	for _, r := range key {
		if r <= ' ' || r >= 0x7f {
			return nil, errors.New("cloud api: the API key holds a space, control or non-ASCII character")
		}
	}
	c := &Client{
		base:  strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"),
		key:   opts.APIKey,
		hc:    opts.HTTPClient,
		now:   opts.Now,
		sleep: opts.Sleep,
		logf:  opts.Logf,
		ua:    "cmekctl/" + version(opts.Version),
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 60 * time.Second}
	}
	c.hc = sameOriginRedirects(c.hc)
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	return c, nil
}

// Server returns the base URL the client talks to.
func (c *Client) Server() string { return c.base }

func (c *Client) String() string   { return "cloud.Client(" + c.base + ")" }
func (c *Client) GoString() string { return c.String() }

// Format prints the client as String does, for every verb: the struct's
// fields are never printed.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

func version(v string) string {
	if v != "" {
		return v
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redactServer(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// scrub replaces the API key in s, should a server or a lower layer ever
// echo it.
func (c *Client) scrub(s string) string {
	if k := c.key.Reveal(); k != "" {
		s = strings.ReplaceAll(s, k, Redacted)
	}
	return s
}

func (c *Client) log(format string, args ...any) {
	if c.logf != nil {
		c.logf("%s", c.scrub(fmt.Sprintf(format, args...)))
	}
}

// guard makes sure no error text the client returns holds the API key.
func (c *Client) guard(err error) error {
	if err == nil {
		return nil
	}
	if text := err.Error(); c.scrub(text) != text {
		return &scrubbedError{err: err, text: c.scrub(text)}
	}
	return err
}

type scrubbedError struct {
	err  error
	text string
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

// roundTrip sends one request and reads the whole response.
func (c *Client) roundTrip(ctx context.Context, cl call, payload []byte) (int, http.Header, []byte, error) {
	target := c.base + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key.Reveal())
	req.Header.Set("Cc-Version", APIVersion)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, resp.Header, data, nil
}

// errCrossOriginRedirect fails a redirect to another scheme or host (never
// retried: the server will answer the same).
var errCrossOriginRedirect = errors.New("cloud api: refusing a redirect")

// sameOriginRedirects returns a copy of hc that follows a redirect only to
// the same scheme and host (with port) as the request it answers: the
// Authorization header carries the API key, and net/http keeps it across a
// change of scheme (https to http) or of port. Any other redirect fails
// before the new request is sent. hc's own CheckRedirect still applies.
func sameOriginRedirects(hc *http.Client) *http.Client {
	cp := *hc
	prev := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from := via[0].URL
		if !strings.EqualFold(req.URL.Scheme, from.Scheme) || !strings.EqualFold(req.URL.Host, from.Host) {
			return fmt.Errorf("%w from %s://%s to %s://%s: the API key goes only to the server it was given for", errCrossOriginRedirect, from.Scheme, from.Host, req.URL.Scheme, req.URL.Host)
		}
		if prev != nil {
			return prev(req, via)
		}
		if len(via) >= 10 {
			return errors.New("cloud api: stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}
