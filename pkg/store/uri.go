package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
)

// Location is a parsed store URI.
type Location struct {
	Scheme    string            // "file", "s3", "gs", "etcd"
	Bucket    string            // s3, gs
	Hosts     []string          // etcd: HOST:PORT, in order
	Prefix    string            // key prefix inside the bucket or keyspace, no leading or trailing slash
	Dir       string            // file: the absolute directory
	Params    map[string]string // the query parameters, checked
	Canonical string            // the URI as given, for messages
}

// The parameters each scheme accepts. Anything else is an error: a typo must
// not silently fall back to a default.
var allowedParams = map[string][]string{
	"file": {},
	"s3":   {"AUTH", "AWS_REGION", "AWS_ENDPOINT", "ASSUME_ROLE"},
	"gs":   {"AUTH"},
	"etcd": {"CA_CERT", "CLIENT_CERT", "CLIENT_KEY", "SERVER_NAME", "TLS"},
}

// Parameters that carry secrets in CockroachDB's URIs: refused here, with
// the place the credential comes from instead.
var secretParams = map[string]string{
	"AWS_ACCESS_KEY_ID":     "the AWS SDK's chain (environment, shared config, instance role)",
	"AWS_SECRET_ACCESS_KEY": "the AWS SDK's chain (environment, shared config, instance role)",
	"AWS_SESSION_TOKEN":     "the AWS SDK's chain (environment, shared config, instance role)",
	"CREDENTIALS":           "Google's application default credentials (GOOGLE_APPLICATION_CREDENTIALS)",
	"BEARER_TOKEN":          "Google's application default credentials (GOOGLE_APPLICATION_CREDENTIALS)",
	"PASSWORD":              "a client certificate (CLIENT_CERT, CLIENT_KEY)",
	"TOKEN":                 "a client certificate (CLIENT_CERT, CLIENT_KEY)",
}

// ParseURI parses and checks a store URI. A plain absolute path is a
// directory store.
func ParseURI(raw string) (*Location, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty", ErrURI)
	}
	if strings.HasPrefix(raw, "/") {
		return &Location{Scheme: "file", Dir: filepath.Clean(raw), Params: map[string]string{}, Canonical: raw}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's message quotes the whole input; say less.
		return nil, fmt.Errorf("%w: not a URI (want s3://, gs://, etcd://, file:/// or an absolute path)", ErrURI)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: %s://: credentials in a URI are refused; they come from each SDK's own chain", ErrURI, u.Scheme)
	}
	loc := &Location{Scheme: u.Scheme, Params: map[string]string{}, Canonical: raw}
	allowed, ok := allowedParams[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("%w: scheme %q: want s3://, gs://, etcd://, file:/// or an absolute path", ErrURI, u.Scheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: %s://: malformed query", ErrURI, u.Scheme)
	}
	var unknown []string
	for name, vals := range q {
		if where, secret := secretParams[strings.ToUpper(name)]; secret {
			return nil, fmt.Errorf("%w: %s://: parameter %s would put a secret in the URI; credentials come from %s", ErrURI, u.Scheme, name, where)
		}
		if !contains(allowed, name) {
			unknown = append(unknown, name)
			continue
		}
		if len(vals) != 1 {
			return nil, fmt.Errorf("%w: %s://: parameter %s given %d times", ErrURI, u.Scheme, name, len(vals))
		}
		loc.Params[name] = vals[0]
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%w: %s://: unknown parameter %s (known: %s)", ErrURI, u.Scheme, strings.Join(unknown, ", "), strings.Join(allowed, ", "))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" && u.Scheme != "file" {
		if err := CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("%w: %s://: prefix: %v", ErrURI, u.Scheme, err)
		}
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%w: file://%s: a directory store is local; write file:///ABS/DIR", ErrURI, u.Host)
		}
		if !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("%w: file:// needs an absolute path: file:///ABS/DIR", ErrURI)
		}
		loc.Dir = filepath.Clean(u.Path)
		return loc, nil
	case "s3", "gs":
		if u.Host == "" {
			return nil, fmt.Errorf("%w: %s:// needs a bucket: %s://BUCKET/PREFIX", ErrURI, u.Scheme, u.Scheme)
		}
		loc.Bucket = u.Host
		if a, ok := loc.Params["AUTH"]; ok && a != "implicit" {
			return nil, fmt.Errorf("%w: %s://: AUTH=%s: only AUTH=implicit is supported (no secret in a URI)", ErrURI, u.Scheme, a)
		}
		if ep := loc.Params["AWS_ENDPOINT"]; ep != "" {
			if err := checkEndpoint(ep); err != nil {
				return nil, err
			}
		}
	case "etcd":
		if u.Host == "" {
			return nil, fmt.Errorf("%w: etcd:// needs HOST:PORT[,HOST:PORT...]", ErrURI)
		}
		for _, h := range strings.Split(u.Host, ",") {
			host, port, err := net.SplitHostPort(h)
			if err != nil || host == "" || port == "" {
				return nil, fmt.Errorf("%w: etcd://: %q is not HOST:PORT", ErrURI, h)
			}
			loc.Hosts = append(loc.Hosts, h)
		}
		if t, ok := loc.Params["TLS"]; ok && t != "true" && t != "false" {
			return nil, fmt.Errorf("%w: etcd://: TLS=%s: want true or false", ErrURI, t)
		}
		if (loc.Params["CLIENT_CERT"] == "") != (loc.Params["CLIENT_KEY"] == "") {
			return nil, fmt.Errorf("%w: etcd://: CLIENT_CERT and CLIENT_KEY go together", ErrURI)
		}
		if !loc.etcdTLS() {
			for _, h := range loc.Hosts {
				host, _, _ := net.SplitHostPort(h)
				if !isLoopback(host) {
					return nil, fmt.Errorf("%w: etcd://%s: plaintext outside loopback is refused: give CA_CERT (and CLIENT_CERT, CLIENT_KEY) or TLS=true", ErrURI, h)
				}
			}
		}
	}
	loc.Prefix = prefix
	return loc, nil
}

// etcdTLS says whether the etcd connection uses TLS.
func (l *Location) etcdTLS() bool {
	if l.Params["TLS"] == "false" {
		return false
	}
	return l.Params["TLS"] == "true" || l.Params["CA_CERT"] != "" || l.Params["CLIENT_CERT"] != ""
}

func checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%w: s3://: AWS_ENDPOINT %q: want http(s)://HOST[:PORT]", ErrURI, ep)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%w: s3://: AWS_ENDPOINT %s: plaintext http outside loopback is refused; use https", ErrURI, ep)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Open parses uri and opens its backend: the one place that maps a scheme to
// a backend.
func Open(ctx context.Context, uri string) (Store, error) {
	loc, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case "file":
		return OpenDir(loc.Dir)
	case "s3":
		return openS3(ctx, loc)
	case "gs":
		return openGCS(ctx, loc)
	case "etcd":
		return openEtcd(ctx, loc)
	}
	return nil, fmt.Errorf("%w: scheme %q", ErrURI, loc.Scheme)
}
