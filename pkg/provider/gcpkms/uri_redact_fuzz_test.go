package gcpkms_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
)

// FuzzParseURIRedaction: whatever the URI, a CREDENTIALS value never
// reaches an error or the canonical URI. Unlike FuzzParseURI's oracle,
// which takes the input's own CREDENTIALS value and can meet it again
// elsewhere in the URI (its fragment, for one: the fuzzer found
// "0?CREDENTIALS=00000000#00000000", where the error rightly repeats the
// fragment), the secret here is a sentinel planted in the parsed URL, which
// appears nowhere else.
func FuzzParseURIRedaction(f *testing.F) {
	for _, s := range []string{
		"gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?AUTH=implicit",
		"gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?AUTH=specified&CREDENTIALS=x",
		"gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3?AUTH=implicit",
		"gcp-kms://host/projects/p?AUTH=implicit",
		"0?CREDENTIALS=00000000#00000000",
		"gcp-kms:///projects/p?X=1&CREDENTIALS=y",
		"aws-kms:///k?CREDENTIALS=z",
	} {
		f.Add(s)
	}
	const sentinel = "SentinelCredentialsQ7Zx"
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil || strings.Contains(strings.ToLower(s), strings.ToLower(sentinel)) {
			return
		}
		q := u.Query()
		q.Set(gcpkms.ParamCredentials, sentinel)
		u.RawQuery = q.Encode()
		cfg, err := gcpkms.ParseURI(u)
		if err != nil {
			if strings.Contains(err.Error(), sentinel) || strings.Contains(err.Error(), url.QueryEscape(sentinel)) {
				t.Fatalf("ParseURI(%q): error %q holds CREDENTIALS", u, err)
			}
			return
		}
		if strings.Contains(cfg.URI, sentinel) || strings.Contains(cfg.KeyName, sentinel) {
			t.Fatalf("ParseURI(%q): URI %q / key %q holds CREDENTIALS", u, cfg.URI, cfg.KeyName)
		}
	})
}
