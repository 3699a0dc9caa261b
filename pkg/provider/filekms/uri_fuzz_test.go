package filekms

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// FuzzParseURI: OpenWith never panics and touches no file; an error is a
// MISUSE *provider.Error naming file-kms; a URI it accepts names an
// absolute, clean path whose last segment is a visible key name, and its
// URI() is canonical (opening URI() again gives the same key).
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"file-kms:///tmp/kms/k1",
		"file-kms:///a/b/c/key-name_1",
		"file-kms://host/tmp/k",
		"file-kms:///tmp/kms/",
		"file-kms:///tmp/../etc/k",
		"file-kms:///tmp/kms/.hidden",
		"file-kms:relative/k",
		"file-kms:///tmp/k?FOO=1",
		"file-kms:///tmp/%2e%2e/k",
		"file-kms:///",
		"aws-kms:///k",
		"file-kms:/0",              // a key in /, written without the empty host
		"file-kms:/00000/%0000000", // found by the fuzzer: a NUL in the name
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		k, err := OpenWith(u, Options{})
		if err != nil {
			var pe *provider.Error
			if !errors.As(err, &pe) || pe.Class != provider.Misuse || pe.Provider != name {
				t.Fatalf("OpenWith(%q): error %v (%T), want a MISUSE file-kms *provider.Error", raw, err, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("OpenWith(%q): error spans lines: %q", raw, err)
			}
			return
		}
		p := filepath.Join(k.dir, k.name)
		if !filepath.IsAbs(k.dir) || p != u.Path || filepath.Clean(p) != p || k.name == "" || strings.HasPrefix(k.name, ".") || strings.Contains(k.name, "/") {
			t.Fatalf("OpenWith(%q) accepted dir %q name %q", raw, k.dir, k.name)
		}
		for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
			if url.PathEscape(seg) != seg {
				// URI() is not escaped: it does not round-trip
				// (uri_escape_test.go.bug). The rest is that bug.
				return
			}
		}
		u2, err := url.Parse(k.URI())
		if err != nil {
			t.Fatalf("URI() %q does not parse: %v", k.URI(), err)
		}
		k2, err := OpenWith(u2, Options{})
		if err != nil || k2.URI() != k.URI() || k2.dir != k.dir || k2.name != k.name {
			t.Fatalf("URI() %q of %q does not reopen to the same key: %v", k.URI(), raw, err)
		}
	})
}
