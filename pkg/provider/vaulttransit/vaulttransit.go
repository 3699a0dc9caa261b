// Package vaulttransit is the HashiCorp Vault provider of cmekctl: a
// provider.Key over Vault's transit secrets engine (encrypt and decrypt with
// associated_data carrying the binding, rewrap, keys/<name> read), a
// provider.Admin (create, rotate, destroy; Vault has no disable or
// scheduled deletion, and says so), and a resolver for keys of Vault
// Enterprise's Key Management secrets engine (ResolveKeyMgmt).
//
//	vault-transit://host:port/<mount>/keys/<name>[?tls=false]
//
// Address, token, namespace and TLS follow the Vault CLI's environment (see
// NewClientFromEnv); the URI's host:port overrides the address. The token
// never appears in URI(), errors or logs. Every error is a *provider.Error
// classed by Table (documented with its Vault sources in
// docs/providers/vault.md), its Code the HTTP status.
//
// Keys are created as aes256-gcm96, neither derived nor convergent: the
// binding travels as associated_data, which Vault supports for AEAD key types
// only.
package vaulttransit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// KeyType is the transit key type Create makes.
const KeyType = "aes256-gcm96"

// Key is a Vault transit key. It is safe for concurrent use.
type Key struct {
	client      *api.Client
	mount, name string
	uri         string
	retry       provider.RetryPolicy
}

var (
	_ provider.Key       = (*Key)(nil)
	_ provider.Rewrapper = (*Key)(nil)
	_ provider.Admin     = (*Key)(nil)
)

// Open opens a vault-transit:// URI with a client built from the Vault CLI's
// environment (NewClientFromEnv). It makes no Vault call.
func Open(u *url.URL) (provider.Key, error) {
	t, err := parseTransitURI(u)
	if err != nil {
		return nil, err
	}
	client, err := NewClientFromEnv(t.host, t.tls)
	if err != nil {
		return nil, err
	}
	k := New(client, t.mount, t.name)
	k.uri = t.uri
	return k, nil
}

// New returns the key mount/keys/name reached through client, retrying
// TRANSIENT errors with provider.DefaultRetry. Tests use it with a client
// pointed at a local server; set client.SetMaxRetries(0) so that only
// provider.Retry retries.
func New(client *api.Client, mount, name string) *Key {
	host, tls := hostOf(client)
	t := target{host: host, tls: tls, path: append(strings.Split(strings.Trim(mount, "/"), "/"), "keys", name)}
	return &Key{client: client, mount: strings.Trim(mount, "/"), name: name, uri: t.canonical(Scheme), retry: provider.DefaultRetry}
}

// WithRetry returns a copy of k that retries TRANSIENT errors under p.
func (k *Key) WithRetry(p provider.RetryPolicy) *Key {
	c := *k
	c.retry = p
	return &c
}

// URI returns the key's canonical URI. It never holds the token.
func (k *Key) URI() string { return k.uri }

// Mount and Name return where the key lives.
func (k *Key) Mount() string { return k.mount }
func (k *Key) Name() string  { return k.name }

// path returns <mount>/<op>/<name>.
func (k *Key) path(op string) string { return k.mount + "/" + op + "/" + k.name }

func (k *Key) where(op string) string { return op + " " + k.mount + "/keys/" + k.name }

// do runs one Vault call under the retry policy, classing its errors.
func (k *Key) do(ctx context.Context, op string, ctVersion int, call func(context.Context) (*api.Secret, error)) (*api.Secret, error) {
	var out *api.Secret
	_, err := provider.Retry(ctx, k.retry, func(ctx context.Context) error {
		s, err := call(ctx)
		if err != nil {
			return k.classify(ctx, k.where(op), err, ctVersion)
		}
		out = s
		return nil
	})
	return out, err
}

func (k *Key) write(ctx context.Context, op, path string, ctVersion int, data map[string]any) (*api.Secret, error) {
	return k.do(ctx, op, ctVersion, func(ctx context.Context) (*api.Secret, error) {
		return k.client.Logical().WriteWithContext(ctx, path, data)
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Wrap encrypts plaintext with transit/encrypt, bound to aad as
// associated_data. Wrapped.Ciphertext is Vault's "vault:vN:..." string and
// Wrapped.KeyVersion its N.
//
// Vault's encrypt upserts: with a token that may create keys, encrypting
// under a name that does not exist creates a new key. Give cmekctl's token
// update (not create) on transit/encrypt/<name>, or set disable_upsert on
// the mount (see docs/providers/vault.md).
func (k *Key) Wrap(ctx context.Context, plaintext, aad []byte) (provider.Wrapped, error) {
	data := map[string]any{"plaintext": b64(plaintext)}
	if len(aad) > 0 {
		data["associated_data"] = b64(aad)
	}
	s, err := k.write(ctx, "wrap", k.path("encrypt"), 0, data)
	if err != nil {
		return provider.Wrapped{}, err
	}
	return k.wrapped(s, "wrap")
}

func (k *Key) wrapped(s *api.Secret, op string) (provider.Wrapped, error) {
	var ct string
	if s != nil {
		ct, _ = s.Data["ciphertext"].(string)
	}
	v := ciphertextVersion(ct)
	if v == 0 {
		return provider.Wrapped{}, provider.Errorf(providerName, k.where(op), provider.Transient, "", "vault returned no vault:vN: ciphertext")
	}
	return provider.Wrapped{Ciphertext: []byte(ct), KeyVersion: strconv.Itoa(v)}, nil
}

// ciphertextVersion returns N of "vault:vN:...", or 0.
func ciphertextVersion(ct string) int {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return 0
	}
	n, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// Unwrap decrypts w with transit/decrypt and the same associated_data.
func (k *Key) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) ([]byte, error) {
	data := map[string]any{"ciphertext": string(w.Ciphertext)}
	if len(aad) > 0 {
		data["associated_data"] = b64(aad)
	}
	s, err := k.write(ctx, "unwrap", k.path("decrypt"), ciphertextVersion(string(w.Ciphertext)), data)
	if err != nil {
		return nil, err
	}
	var p string
	if s != nil {
		p, _ = s.Data["plaintext"].(string)
	}
	pt, err := base64.StdEncoding.DecodeString(p)
	if err != nil || s == nil {
		return nil, provider.Errorf(providerName, k.where("unwrap"), provider.Transient, "", "vault returned no base64 plaintext")
	}
	return pt, nil
}

// Rewrap re-encrypts w under the key's latest version, for `rotate cmek`
// without a new URI.
//
// With no aad it is one transit/rewrap call. Vault's rewrap endpoint does not
// take associated_data (hashicorp/vault#29532, #31791; up to and including
// v1.14.8 served here, and still open upstream): a ciphertext bound to
// associated_data fails there with "cipher: message authentication failed".
// So with an aad, Rewrap is transit/decrypt then transit/encrypt, both with
// the associated_data; the plaintext exists only in memory between the two
// calls and is zeroed after.
func (k *Key) Rewrap(ctx context.Context, w provider.Wrapped, aad []byte) (provider.Wrapped, error) {
	v := ciphertextVersion(string(w.Ciphertext))
	if len(aad) == 0 {
		s, err := k.write(ctx, "rewrap", k.path("rewrap"), v, map[string]any{"ciphertext": string(w.Ciphertext)})
		if err != nil {
			return provider.Wrapped{}, err
		}
		return k.wrapped(s, "rewrap")
	}
	pt, err := k.Unwrap(ctx, w, aad)
	if err != nil {
		return provider.Wrapped{}, err
	}
	defer clear(pt)
	return k.Wrap(ctx, pt, aad)
}

// Describe reads keys/<name>. A key that reads is ENABLED (Vault has no
// disabled state); versions below min_decryption_version are DISABLED,
// versions below min_available_version (trimmed) DESTROYED. A 404 is
// StateNotFound, not an error; a 404 that names no route (no such mount or
// namespace) is a MISUSE error.
func (k *Key) Describe(ctx context.Context) (provider.KeyState, error) {
	st := provider.KeyState{URI: k.uri, Provider: providerName, State: provider.StateUnknown, Details: map[string]string{}}
	s, err := k.do(ctx, "describe", 0, k.readKey)
	if err != nil {
		return st, err
	}
	if s == nil {
		st.State = provider.StateNotFound
		st.Details["note"] = "keys/" + k.name + " reads 404: the key was deleted or never created (Vault keeps no tombstone); " +
			"only transit/restore of a backup, or a snapshot of Vault's storage taken before the deletion, could bring it back"
		return st, nil
	}
	return describeData(st, k.name, s.Data), nil
}

func describeData(st provider.KeyState, name string, d map[string]any) provider.KeyState {
	st.State = provider.StateEnabled
	latest, _ := intField(d, "latest_version")
	minDec, _ := intField(d, "min_decryption_version")
	minEnc, _ := intField(d, "min_encryption_version")
	minAvail, _ := intField(d, "min_available_version")
	if latest > 0 {
		st.PrimaryVersion = strconv.Itoa(latest)
		if minEnc > latest {
			st.PrimaryVersion = strconv.Itoa(minEnc)
		}
	}
	for _, f := range []string{"type", "latest_version", "min_decryption_version", "min_encryption_version", "min_available_version",
		"deletion_allowed", "exportable", "allow_plaintext_backup", "derived", "convergent_encryption", "imported_key", "auto_rotate_period"} {
		if v, ok := d[f]; ok && v != nil {
			st.Details[f] = fmt.Sprint(v)
		}
	}
	// keys lists the versions Vault holds unarchived: min_decryption_version
	// and up. Older ones stay in Vault's archive (decryption refused) until
	// trimmed below min_available_version, which deletes them.
	keys, _ := d["keys"].(map[string]any)
	if latest == 0 {
		for id := range keys {
			if n, err := strconv.Atoi(id); err == nil && n > latest {
				latest = n
			}
		}
	}
	for v := 1; v <= latest; v++ {
		vs := provider.VersionState{ID: strconv.Itoa(v), State: provider.StateEnabled}
		switch {
		case v < minAvail:
			vs.State = provider.StateDestroyed
		case v < minDec:
			vs.State = provider.StateDisabled
		default:
			vs.Created = created(keys[strconv.Itoa(v)])
		}
		st.Versions = append(st.Versions, vs)
	}
	st.Details["disable"] = "vault transit has no disabled state: access is revoked by policy (deny " + "transit/decrypt/" + name + ") or by raising min_decryption_version"
	st.Recoverable = true
	st.RecoverableReason = "the key still exists in Vault: a policy or min_decryption_version that blocks it can be undone"
	if b, _ := d["allow_plaintext_backup"].(bool); b {
		if e, _ := d["exportable"].(bool); e {
			st.Details["backup"] = "allow_plaintext_backup and exportable are set: transit/backup/" + name + " exports the whole key, and transit/restore brings it back even after deletion"
			st.RecoverableReason += "; a plaintext backup of the key may exist outside Vault (allow_plaintext_backup)"
		}
	} else {
		st.Details["backup"] = "allow_plaintext_backup is false: transit/backup is refused, so no plaintext backup of the key exists (a snapshot of Vault's storage still holds it)"
	}
	return st
}

// intField reads a JSON number that the api client decoded as json.Number.
func intField(d map[string]any, f string) (int, bool) {
	switch v := d[f].(type) {
	case json.Number:
		n, err := v.Int64()
		return int(n), err == nil
	case float64:
		return int(v), true
	case int:
		return v, true
	case string:
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	return 0, false
}

// created reads a version's creation time: a unix time for symmetric keys,
// {"creation_time": RFC 3339} for asymmetric ones.
func created(v any) time.Time {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return time.Unix(n, 0).UTC()
		}
	case map[string]any:
		if s, ok := x["creation_time"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t.UTC()
			}
		}
	}
	return time.Time{}
}
