package vaulttransit

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Scheme is the URI scheme of a Vault transit key.
const Scheme = "vault-transit"

// KeyMgmtScheme is the URI scheme of a key of Vault Enterprise's Key
// Management secrets engine, resolved by ResolveKeyMgmt.
const KeyMgmtScheme = "vault-keymgmt"

// target is a parsed vault-transit:// or vault-keymgmt:// URI.
type target struct {
	host string // host:port from the URI; "" means the environment's address
	tls  bool
	path []string // path segments, the mount's first
	uri  string   // canonical form
}

// parseTarget checks the parts every Vault URI shares: no userinfo, known
// parameters only, and tls=true|false.
func parseTarget(u *url.URL, scheme string) (target, error) {
	if u.Scheme != scheme {
		return target{}, provider.Errorf(providerName, "parse uri", provider.Misuse, "", "scheme %q is not %s", u.Scheme, scheme)
	}
	if u.User != nil {
		return target{}, provider.Errorf(providerName, "parse uri", provider.Misuse, "", "%s URIs take no credentials: the token comes from VAULT_TOKEN or ~/.vault-token", scheme)
	}
	if u.Opaque != "" {
		return target{}, provider.Errorf(providerName, "parse uri", provider.Misuse, "", "expected %s://host:port/<mount>/...", scheme)
	}
	if err := provider.CheckParams(providerName, u, "tls"); err != nil {
		return target{}, err
	}
	t := target{host: u.Host, tls: true}
	if v := u.Query().Get("tls"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return target{}, provider.Errorf(providerName, "parse uri", provider.Misuse, "", "tls=%q: want true or false", v)
		}
		t.tls = b
	}
	for _, s := range strings.Split(strings.Trim(u.Path, "/"), "/") {
		if s == "" || s == "." || s == ".." {
			return target{}, provider.Errorf(providerName, "parse uri", provider.Misuse, "", "path %q has an empty, . or .. segment", u.Path)
		}
		t.path = append(t.path, s)
	}
	return t, nil
}

func (t target) canonical(scheme string) string {
	segs := make([]string, len(t.path))
	for i, p := range t.path {
		segs[i] = url.PathEscape(p) // the URI names the same key when reparsed
	}
	s := scheme + "://" + t.host + "/" + strings.Join(segs, "/")
	if !t.tls {
		s += "?tls=false"
	}
	return s
}

// transitURI is a parsed vault-transit://host:port/<mount>/keys/<name>.
type transitURI struct {
	target
	mount, name string
}

func parseTransitURI(u *url.URL) (transitURI, error) {
	t, err := parseTarget(u, Scheme)
	if err != nil {
		return transitURI{}, err
	}
	// The mount may be nested (a/b/transit); the key name is the last
	// segment after the last "keys".
	n := len(t.path)
	if n < 3 || t.path[n-2] != "keys" {
		return transitURI{}, provider.Errorf(providerName, "parse uri", provider.Misuse, "",
			"%s: expected vault-transit://host:port/<mount>/keys/<name>", provider.RedactURI(u.String()))
	}
	r := transitURI{target: t, mount: strings.Join(t.path[:n-2], "/"), name: t.path[n-1]}
	r.uri = t.canonical(Scheme)
	return r, nil
}

// NewClientFromEnv returns a Vault api client configured as the Vault CLI
// is: api.DefaultConfig reads VAULT_ADDR (or VAULT_AGENT_ADDR), VAULT_CACERT,
// VAULT_CAPATH, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_SKIP_VERIFY,
// VAULT_TLS_SERVER_NAME and VAULT_CLIENT_TIMEOUT; api.NewClient reads
// VAULT_TOKEN and VAULT_NAMESPACE; with no VAULT_TOKEN the token is read from
// ~/.vault-token, as the CLI's default token helper does.
//
// host, when not empty, overrides the address: https://host, or http://host
// when tls is false. With no host, the environment's address is used, and it
// must be https unless tls is false (which turns it into http). The client's
// own retries are off (MaxRetries 0): the key retries TRANSIENT errors with
// provider.Retry, bounded in attempts and time.
func NewClientFromEnv(host string, tls bool) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, &provider.Error{Provider: providerName, Op: "read vault environment", Class: provider.Misuse, Message: cfg.Error.Error(), Err: cfg.Error}
	}
	scheme := "https"
	if !tls {
		scheme = "http"
	}
	if host != "" {
		cfg.Address = scheme + "://" + host
	} else {
		a, err := url.Parse(cfg.Address)
		if err != nil || a.Host == "" {
			return nil, provider.Errorf(providerName, "read vault environment", provider.Misuse, "", "VAULT_ADDR %q is not a URL", cfg.Address)
		}
		switch {
		case a.Scheme == "http" && tls:
			return nil, provider.Errorf(providerName, "read vault environment", provider.Misuse, "",
				"VAULT_ADDR %s is plain http: add ?tls=false to the URI to allow it", cfg.Address)
		case a.Scheme == "https" && !tls:
			a.Scheme = "http"
			cfg.Address = a.String()
		}
	}
	cfg.MaxRetries = 0
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, &provider.Error{Provider: providerName, Op: "create vault client", Class: provider.Misuse, Message: err.Error(), Err: err}
	}
	if client.Token() == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if b, err := os.ReadFile(filepath.Join(home, ".vault-token")); err == nil {
				client.SetToken(strings.TrimSpace(string(b)))
			}
		}
	}
	return client, nil
}

// hostOf returns host:port of a client's address, and whether it is https.
func hostOf(c *api.Client) (string, bool) {
	a, err := url.Parse(c.Address())
	if err != nil {
		return "", true
	}
	return a.Host, a.Scheme != "http"
}
