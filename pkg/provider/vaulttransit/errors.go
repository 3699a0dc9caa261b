package vaulttransit

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

const providerName = "vault transit"

// check is a second call that some rows need before they can class an error.
type check int

const (
	checkNone check = iota
	// checkKeyRead reads keys/<name>: 404, the key exists, or the read is
	// denied → REVOKED; the read fails transiently → TRANSIENT. A 404 is
	// never DESTROYED: it is also what another Vault cluster or namespace
	// answers, and transit/restore brings a deleted key back.
	checkKeyRead
	// checkTrimmed reads keys/<name>: the ciphertext's version is below
	// min_available_version (trimmed: its key material is deleted) →
	// DESTROYED; otherwise REVOKED (min_decryption_version can be lowered).
	checkTrimmed
)

// Row is one row of the error-class table. docs/providers/vault.md prints
// the same table with the Vault source each row comes from.
type Row struct {
	Status   int    // HTTP status; 0 matches any
	Contains string // substring of Vault's error text; "" matches any
	Class    provider.Class
	check    check
	Why      string
}

// Table is the error-class table, first match wins. Errors with no HTTP
// status (network, deadline) are TRANSIENT.
var Table = []Row{
	{Status: 400, Contains: "encryption key not found", Class: provider.Revoked, check: checkKeyRead,
		Why: "transit encrypt/decrypt/rewrap: no policy of that name; REVOKED (not found is never proof: another cluster or namespace says the same, and transit/restore brings a key back), TRANSIENT if keys/<name> cannot be read"},
	{Status: 400, Contains: "key not found", Class: provider.Revoked, check: checkKeyRead,
		Why: "transit keys/<name>/rotate on a missing key; same check as above"},
	{Status: 403, Class: provider.Revoked,
		Why: "permission denied: token revoked or expired, or a policy denies the path"},
	{Status: 400, Contains: "disallowed by policy (too old)", Class: provider.Revoked, check: checkTrimmed,
		Why: "ciphertext version below min_decryption_version: REVOKED (reversible), DESTROYED if the version was trimmed"},
	{Status: 400, Contains: "message authentication failed", Class: provider.Misuse,
		Why: "AES-GCM open failed: wrong associated_data, wrong key, or altered ciphertext"},
	{Status: 400, Contains: "invalid ciphertext", Class: provider.Misuse,
		Why: "not a vault:vN: ciphertext of this key (no prefix, bad base64, version too new, length)"},
	{Status: 412, Class: provider.Transient,
		Why: "performance standby has not caught up with the write (Vault asks clients to retry)"},
	{Status: 429, Class: provider.Transient,
		Why: "rate limit quota exceeded, or a standby/perf standby answering health"},
	{Status: 503, Class: provider.Transient,
		Why: "Vault is sealed, or the API is locked"},
	{Status: 0, Class: provider.Transient,
		Why: "any 5xx: internal error, 502 upstream rate limited, 504"},
}

// classOf returns the row that classes an HTTP error, or nil for an error
// with no HTTP status. A 4xx that no row names is MISUSE (a bad request the
// caller must fix); a 5xx is TRANSIENT.
func classOf(status int, msg string) Row {
	for _, r := range Table {
		if r.Status != 0 && r.Status != status {
			continue
		}
		if r.Status == 0 && status < 500 {
			continue
		}
		if r.Contains != "" && !strings.Contains(msg, r.Contains) {
			continue
		}
		return r
	}
	return Row{Status: status, Class: provider.Misuse, Why: "other 4xx: bad request, unsupported path or mount (404)"}
}

// classify turns an api client error into a *provider.Error, making the
// second call a row asks for. ctVersion is the version of the ciphertext an
// unwrap or rewrap was given (0 if none).
func (k *Key) classify(ctx context.Context, op string, err error, ctVersion int) error {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		// No HTTP answer: connection refused or reset, TLS, DNS, deadline.
		// The api client's error names the URL and the cause, never the token.
		return &provider.Error{Provider: providerName, Op: op, Class: provider.Transient, Message: err.Error(), Err: err}
	}
	msg := vaultMessage(re)
	row := classOf(re.StatusCode, msg)
	class := row.Class
	switch row.check {
	case checkKeyRead:
		class = k.keyGone(ctx)
	case checkTrimmed:
		class = k.versionTrimmed(ctx, ctVersion)
	}
	return &provider.Error{Provider: providerName, Op: op, Class: class, Code: strconv.Itoa(re.StatusCode), Message: msg, Err: err}
}

// keyGone reads keys/<name> once to tell a deleted key from a missing grant.
func (k *Key) keyGone(ctx context.Context) provider.Class {
	_, err := k.readKey(ctx)
	switch {
	case err == nil:
		// 404 (s == nil): this Vault has no key of that name; never proof.
		return provider.Revoked
	}
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode >= 500 || re.StatusCode == 429 || re.StatusCode == 412 {
		return provider.Transient
	}
	return provider.Revoked // e.g. 403: the token may not read the key
}

// versionTrimmed reads keys/<name> to tell a version that Vault refuses
// (min_decryption_version, reversible) from one it has deleted (trim).
func (k *Key) versionTrimmed(ctx context.Context, v int) provider.Class {
	if v <= 0 {
		return provider.Revoked
	}
	s, err := k.readKey(ctx)
	if err != nil || s == nil {
		return provider.Revoked
	}
	if minAvail, ok := intField(s.Data, "min_available_version"); ok && minAvail > 0 && v < minAvail {
		return provider.Destroyed
	}
	return provider.Revoked
}

// vaultMessage is Vault's error text on one line ("1 error occurred:\n\t* …"
// bodies included), or the status text when Vault gave none.
func vaultMessage(re *api.ResponseError) string {
	msg := strings.Join(strings.Fields(strings.Join(re.Errors, "; ")), " ")
	if msg == "" {
		msg = http.StatusText(re.StatusCode)
	}
	return msg
}

// readKey reads keys/<name>. (nil, nil) is Vault's answer for a read of
// nothing: 404 with an empty errors list. A 404 with error text (no handler
// for route: no such mount, or the wrong namespace) is an error, never a
// missing key; the api client's ReadWithContext cannot tell the two apart.
func (k *Key) readKey(ctx context.Context) (*api.Secret, error) {
	if t := k.client.ClientTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	resp, err := k.client.Logical().ReadRawWithContext(ctx, k.path("keys"))
	if resp != nil {
		defer resp.Body.Close()
	}
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		var re *api.ResponseError
		if errors.As(err, &re) && len(re.Errors) > 0 {
			return nil, err
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return api.ParseSecret(resp.Body)
}
