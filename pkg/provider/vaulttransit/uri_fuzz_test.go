package vaulttransit

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// FuzzParseURI: parseTransitURI never panics; an error is a MISUSE
// *provider.Error on one line that never repeats a userinfo password; a URI
// it accepts has a mount and a key name with no empty, . or .. segment, and
// its canonical form parses back to the same host, TLS, mount and name.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"vault-transit://127.0.0.1:8200/transit/keys/k1",
		"vault-transit://vault.example:8200/a/b/transit/keys/k1?tls=false",
		"vault-transit:///transit/keys/k1",
		"vault-transit://h/transit/keys/",
		"vault-transit://h/transit/k1",
		"vault-transit://user:SentinelPass42@h/transit/keys/k1",
		"vault-transit://h/transit/keys/k1?tls=maybe",
		"vault-transit://h/transit/keys/k1?FOO=1",
		"vault-transit://h/./keys/k1",
		"vault-transit://h//keys/k1",
		"vault-transit:opaque",
		"vault-keymgmt://h/keymgmt/kms/p/key/k",
		"vAult-trAnsit:/0%00000000/keys/0", // found by the fuzzer: a NUL in the mount
		"vAult-trAnsit:/SentinelPass42",    // found by the fuzzer: the oracle's own false alarm
	} {
		f.Add(s)
	}
	const secret = "SentinelPass42"
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil || strings.Contains(strings.ToLower(raw), strings.ToLower(secret)) {
			return // the input's own copy of the sentinel may rightly be repeated
		}
		if u.User != nil || len(raw)%3 == 0 {
			u.User = url.UserPassword("user", secret)
		}
		r, err := parseTransitURI(u)
		if err != nil {
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Class != provider.Misuse {
				t.Fatalf("parseTransitURI(%q): error %v (%T), want MISUSE *provider.Error", u, err, err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("parseTransitURI(%q): error %q holds the password or spans lines", u, err)
			}
			return
		}
		if u.User != nil {
			t.Fatalf("parseTransitURI(%q) accepted userinfo", u)
		}
		if r.mount == "" || r.name == "" || r.name == "." || r.name == ".." || strings.Contains(r.name, "/") {
			t.Fatalf("parseTransitURI(%q): mount %q name %q", raw, r.mount, r.name)
		}
		for _, s := range strings.Split(r.mount, "/") {
			if s == "" || s == "." || s == ".." {
				t.Fatalf("parseTransitURI(%q): mount %q has an empty, . or .. segment", raw, r.mount)
			}
		}
		for _, seg := range append(strings.Split(r.mount, "/"), r.name) {
			if url.PathEscape(seg) != seg {
				// The canonical form is not escaped: it does not round-trip
				// (vault_canonical_escape_test.go.bug). Checked above: no
				// panic, a mount and a name; the rest is that bug.
				return
			}
		}
		u2, err := url.Parse(r.uri)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", r.uri, raw, err)
		}
		r2, err := parseTransitURI(u2)
		if err != nil || r2.uri != r.uri || r2.mount != r.mount || r2.name != r.name || r2.host != r.host || r2.tls != r.tls {
			t.Fatalf("canonical %q of %q does not parse back the same: %+v vs %+v, %v", r.uri, raw, r2, r, err)
		}
	})
}
