package provider

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
)

// Redacted is what a secret prints as.
const Redacted = "**redacted**"

// secretParams are URI query parameters whose values never print.
var secretParams = []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CREDENTIALS", "TOKEN", "VAULT_TOKEN"}

// RedactURI returns raw with the values of secret query parameters and any
// userinfo password replaced by **redacted**. Unparseable input is redacted
// whole, since it may hold anything.
func RedactURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Redacted
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	q := u.Query()
	changed := false
	for k := range q {
		if slices.Contains(secretParams, strings.ToUpper(k)) {
			q.Set(k, Redacted)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// CheckParams returns an error naming the first query parameter of u that is
// not in allowed (case-sensitive, as CockroachDB's KMS URIs are).
func CheckParams(provider string, u *url.URL, allowed ...string) error {
	for k := range u.Query() {
		if !slices.Contains(allowed, k) {
			return Errorf(provider, "parse uri", Misuse, "", "unknown URI parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// Opener builds a Key from a parsed URI.
type Opener func(u *url.URL) (Key, error)

// Registry maps a URI scheme to the constructor of its provider. It is built
// explicitly (see package registry), never by init() side effects.
type Registry map[string]Opener

// Open parses raw and opens it with the provider of its scheme.
func (r Registry) Open(raw string) (Key, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("invalid KMS URI %q: expected scheme://..., e.g. file-kms:///abs/dir/name", RedactURI(raw))
	}
	open, ok := r[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("unsupported KMS URI scheme %q: use one of %s", u.Scheme, strings.Join(r.Schemes(), ", "))
	}
	return open(u)
}

// Schemes lists the registered schemes, sorted.
func (r Registry) Schemes() []string {
	s := make([]string, 0, len(r))
	for k := range r {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// identityDropped are the query parameters that say how to authenticate,
// not which key or where: Identity leaves them out, so a URI and its
// redacted copy (as backups and escrow files record it) compare equal.
var identityDropped = []string{"AUTH", "AWS_ACCESS_KEY_ID"}

// Identity returns raw's normalised key identity: the scheme and host in
// lower case, the cleaned path, and every query parameter except credentials
// and the authentication mode, sorted. Two URIs with the same identity name
// the same key at the same endpoint over the same transport. It returns ""
// for a URI it cannot parse, which equals nothing.
//
// Identity exists so that a URI read from an untrusted file (a backup
// header, an escrow file) is never dialled: it is compared with the URIs the
// operator's keyrings record, and the keyring's own URI is used.
func Identity(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Fragment != "" {
		return ""
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return ""
	}
	for k := range q {
		up := strings.ToUpper(k)
		if slices.Contains(secretParams, up) || slices.Contains(identityDropped, up) {
			delete(q, k)
		}
	}
	p := u.EscapedPath()
	if p != "" {
		p = path.Clean(p)
	}
	s := strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + p
	if len(q) > 0 {
		s += "?" + q.Encode() // Encode sorts by key
	}
	return s
}

// SecretsIn lists the secret parts of a URI (query parameters whose values
// are credentials, as the provider parsers accept them, and a userinfo
// password), sorted; none for anything else.
func SecretsIn(raw string) []string {
	if !strings.Contains(raw, "://") {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if u.User != nil {
		if _, has := u.User.Password(); has {
			out = append(out, "a password")
		}
	}
	for k := range u.Query() {
		if slices.Contains(secretParams, strings.ToUpper(k)) {
			out = append(out, k+"=")
		}
	}
	slices.Sort(out)
	return out
}
