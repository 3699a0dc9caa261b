package vaulttransit

// BUG: the canonical vault-transit URI (Key.URI()) is not a URI of the same
// key when the mount or the key name holds a character that must be
// escaped in a URI.
//
// Where: pkg/provider/vaulttransit/uri.go, target.canonical, joins the
// *decoded* path segments (parseTarget splits u.Path) without escaping
// them: scheme + "://" + host + "/" + strings.Join(path, "/").
//
// Input: vault-transit://127.0.0.1:8200/transit/keys/a%3Fb (key "a?b").
// Its canonical URI is "vault-transit://127.0.0.1:8200/transit/keys/a?b",
// which parses as key "a" with a parameter "b" (refused: unknown URI
// parameter). "vAult-trAnsit:/0%00000000/keys/0" (found by FuzzParseURI)
// gives a canonical URI with a raw NUL that does not parse at all. The
// keyring records key.URI() as the CMEK URI of its store wrap
// (pkg/keyring/group.go), so a keyring enabled with such a key cannot be
// reopened by later commands (file-kms has the same bug, shown end to end
// in pkg/provider/filekms/uri_escape_test.go.bug).
//
// A fix: escape each segment with url.PathEscape in canonical (Vault's API
// client escapes them on the wire anyway).

import (
	"net/url"
	"testing"
)

func TestCanonicalURIEscapesPath(t *testing.T) {
	for _, raw := range []string{"vault-transit://127.0.0.1:8200/transit/keys/a%3Fb", "vault-transit://h/tr%23ansit/keys/k", "vAult-trAnsit:/0%00000000/keys/0"} {
		u, _ := url.Parse(raw)
		r, err := parseTransitURI(u)
		if err != nil {
			t.Fatalf("parseTransitURI(%q): %v", raw, err)
		}
		u2, err := url.Parse(r.uri)
		if err != nil {
			t.Errorf("%q: canonical %q does not parse: %v", raw, r.uri, err)
			continue
		}
		r2, err := parseTransitURI(u2)
		if err != nil || r2.name != r.name || r2.mount != r.mount {
			t.Errorf("%q: canonical %q is another key or none (%v)", raw, r.uri, err)
		}
	}
}
