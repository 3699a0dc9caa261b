package vaulttransit

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Distribution is what Vault Enterprise's Key Management secrets engine
// says about a key distributed to a cloud KMS:
//
//	GET <mount>/kms/<kms-name>/key/<key-name> → name, protection, purpose, versions
//	GET <mount>/kms/<kms-name>                → provider, key_collection
type Distribution struct {
	Mount, KMS, Key string // from the URI
	Provider        string // "awskms" or "gcpckms" (Vault's spelling)
	KeyCollection   string // AWS region, or projects/P/locations/L/keyRings/R
	Name            string // the key's name in the cloud KMS
	Protection      string // "hsm" or "software"
	Purpose         []string
	Versions        map[string]string // Vault key version → the cloud KMS's key ID
	// URI is the equivalent aws-kms:/// or gcp-kms:/// URI.
	URI string
}

// Compiled on first use, not at every cmekctl start (issue 18).
var (
	reName   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]+$`) })
	reAlias  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9/_-]+$`) })
	reRegion = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9-]+$`) })
	reRing   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^projects/[A-Za-z0-9._:-]+/locations/[A-Za-z0-9_-]+/keyRings/[A-Za-z0-9_-]+$`)
	})
)

// keymgmtURI is a parsed vault-keymgmt://host:port/<mount>/kms/<kms>/key/<key>.
type keymgmtURI struct {
	target
	mount, kms, key string
}

func parseKeyMgmtURI(u *url.URL) (keymgmtURI, error) {
	t, err := parseTarget(u, KeyMgmtScheme)
	if err != nil {
		return keymgmtURI{}, err
	}
	n := len(t.path)
	if n < 5 || t.path[n-4] != "kms" || t.path[n-2] != "key" {
		return keymgmtURI{}, provider.Errorf(providerName, "parse uri", provider.Misuse, "",
			"%s: expected vault-keymgmt://host:port/<mount>/kms/<kms-name>/key/<key-name>", provider.RedactURI(u.String()))
	}
	return keymgmtURI{target: t, mount: strings.Join(t.path[:n-4], "/"), kms: t.path[n-3], key: t.path[n-1]}, nil
}

// ResolveKeyMgmt reads where the Key Management secrets engine distributed a
// key and returns the equivalent aws-kms:/// or gcp-kms:/// URI, which the
// caller opens with the registry: the resolved key does the work.
//
// client may be nil: then a client is built from the Vault CLI's environment
// and the URI's host (NewClientFromEnv). A given client's address is used as
// it is.
func ResolveKeyMgmt(ctx context.Context, u *url.URL, client *api.Client) (string, error) {
	d, err := ReadKeyMgmt(ctx, u, client)
	if err != nil {
		return "", err
	}
	return d.URI, nil
}

// ReadKeyMgmt is ResolveKeyMgmt with everything Vault said.
func ReadKeyMgmt(ctx context.Context, u *url.URL, client *api.Client) (Distribution, error) {
	p, err := parseKeyMgmtURI(u)
	if err != nil {
		return Distribution{}, err
	}
	if client == nil {
		if client, err = NewClientFromEnv(p.host, p.tls); err != nil {
			return Distribution{}, err
		}
	}
	d := Distribution{Mount: p.mount, KMS: p.kms, Key: p.key}
	where := "resolve " + p.mount + "/kms/" + p.kms + "/key/" + p.key
	read := func(path string) (map[string]any, error) {
		var out map[string]any
		_, err := provider.Retry(ctx, provider.DefaultRetry, func(ctx context.Context) error {
			s, err := client.Logical().ReadWithContext(ctx, path)
			if err != nil {
				return plainError(where, err)
			}
			if s == nil || s.Data == nil {
				return provider.Errorf(providerName, where, provider.Misuse, "404", "%s: not found", path)
			}
			out = s.Data
			return nil
		})
		return out, err
	}

	key, err := read(p.mount + "/kms/" + p.kms + "/key/" + p.key)
	if err != nil {
		return d, err
	}
	d.Name, _ = key["name"].(string)
	d.Protection, _ = key["protection"].(string)
	d.Purpose = purposes(key["purpose"])
	if vs, ok := key["versions"].(map[string]any); ok {
		d.Versions = map[string]string{}
		for v, id := range vs {
			if s, ok := id.(string); ok {
				d.Versions[v] = s
			}
		}
	}
	kms, err := read(p.mount + "/kms/" + p.kms)
	if err != nil {
		return d, err
	}
	d.Provider, _ = kms["provider"].(string)
	d.KeyCollection, _ = kms["key_collection"].(string)

	bad := func(format string, args ...any) (Distribution, error) {
		return d, provider.Errorf(providerName, where, provider.Misuse, "", format, args...)
	}
	if !slices.Contains(d.Purpose, "encrypt") || !slices.Contains(d.Purpose, "decrypt") {
		return bad("the key's purpose is %q: wrapping needs encrypt and decrypt", strings.Join(d.Purpose, ","))
	}
	switch d.Provider {
	case "awskms":
		// The engine names the AWS key by an alias hashicorp/<name>, which
		// it moves to the newest key at each rotation.
		alias := d.Name
		if !strings.HasPrefix(alias, "hashicorp/") {
			alias = "hashicorp/" + alias
		}
		if !reAlias().MatchString(alias) || !reRegion().MatchString(d.KeyCollection) {
			return bad("vault returned an AWS key name %q or region %q that is not valid", d.Name, d.KeyCollection)
		}
		d.URI = "aws-kms:///alias/" + alias + "?REGION=" + d.KeyCollection + "&AUTH=implicit"
	case "gcpckms":
		if !reName().MatchString(d.Name) || !reRing().MatchString(d.KeyCollection) {
			return bad("vault returned a GCP key name %q or key ring %q that is not valid", d.Name, d.KeyCollection)
		}
		d.URI = "gcp-kms:///" + d.KeyCollection + "/cryptoKeys/" + d.Name + "?AUTH=implicit"
	case "azurekeyvault":
		return bad("the key is distributed to Azure Key Vault, which cmekctl does not support (only awskms and gcpckms)")
	default:
		return bad("unknown KMS provider %q (want awskms or gcpckms)", d.Provider)
	}
	return d, nil
}

// purposes reads "encrypt,decrypt" or ["encrypt","decrypt"].
func purposes(v any) []string {
	var out []string
	switch x := v.(type) {
	case string:
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for _, s := range x {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}

// plainError classes an error of a call that needs no second look.
func plainError(op string, err error) error {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return &provider.Error{Provider: providerName, Op: op, Class: provider.Transient, Message: err.Error(), Err: err}
	}
	msg := vaultMessage(re)
	row := classOf(re.StatusCode, msg)
	class := row.Class
	if row.check != checkNone {
		class = provider.Misuse // "not found" of a resolve proves nothing about a key
	}
	return &provider.Error{Provider: providerName, Op: op, Class: class, Code: strconv.Itoa(re.StatusCode), Message: msg, Err: err}
}

// KeyMgmtOpener returns an Opener for vault-keymgmt:// URIs: it resolves the
// URI with a client from the environment (bounded to a minute) and opens the
// resolved aws-kms:/// or gcp-kms:/// URI with open (the registry's Open,
// passed in to avoid an import cycle).
func KeyMgmtOpener(open func(raw string) (provider.Key, error)) provider.Opener {
	return func(u *url.URL) (provider.Key, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resolved, err := ResolveKeyMgmt(ctx, u, nil)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(resolved, "aws-kms:") && !strings.HasPrefix(resolved, "gcp-kms:") {
			return nil, provider.Errorf(providerName, "resolve", provider.Misuse, "", "resolved to %q, not an aws-kms or gcp-kms URI", resolved)
		}
		return open(resolved)
	}
}
