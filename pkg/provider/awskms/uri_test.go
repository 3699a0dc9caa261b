package awskms

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

func mustParse(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseURI(t *testing.T) {
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	ok := []struct {
		raw   string
		key   string
		auth  string
		roles int
	}{
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=implicit", arn, "implicit", 0},
		{"aws-kms:///1234abcd-12ab-34cd-56ef-1234567890ab?REGION=us-east-1&AUTH=implicit", "1234abcd-12ab-34cd-56ef-1234567890ab", "implicit", 0},
		{"aws-kms:///alias/cmek?REGION=us-east-1&AUTH=implicit&ASSUME_ROLE=arn:aws:iam::1:role/a,arn:aws:iam::2:role/b", "alias/cmek", "implicit", 2},
		{"aws-kms:///alias/cmek?REGION=us-east-1&AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=s3cr3t&AWS_SESSION_TOKEN=tok", "alias/cmek", "specified", 0},
		{"aws-kms:///?REGION=us-east-1&AUTH=implicit&AWS_ENDPOINT=http://127.0.0.1:4566", "", "implicit", 0},
	}
	for _, c := range ok {
		cfg, err := parseURI(mustParse(t, c.raw))
		if err != nil {
			t.Errorf("%s: %v", provider.RedactURI(c.raw), err)
			continue
		}
		if cfg.keyID != c.key || cfg.auth != c.auth || len(cfg.roles) != c.roles || cfg.region != "us-east-1" {
			t.Errorf("%s: parsed key %q auth %q roles %v", provider.RedactURI(c.raw), cfg.keyID, cfg.auth, cfg.roles)
		}
	}
	bad := []struct{ raw, want string }{
		{"aws-kms:///" + arn + "?AUTH=implicit", "REGION is required"},
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=implicit&BUCKET=x", `unknown URI parameter "BUCKET"`},
		{"aws-kms:///" + arn + "?region=us-east-1&AUTH=implicit", `unknown URI parameter "region"`},
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=magic", "AUTH must be implicit or specified"},
		{"aws-kms:///" + arn + "?REGION=us-east-1", "AUTH=specified needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=specified&AWS_ACCESS_KEY_ID=AKIA", "AUTH=specified needs"},
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=implicit&AWS_SECRET_ACCESS_KEY=s3cr3tvalue", "AUTH=implicit takes no"},
		{"aws-kms:///" + arn + "?REGION=us-east-1&REGION=us-west-2&AUTH=implicit", "given 2 times"},
		{"aws-kms://host/" + arn + "?REGION=us-east-1&AUTH=implicit", "three slashes"},
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=implicit&AWS_ENDPOINT=ftp://x", "AWS_ENDPOINT must be an http or https URL"},
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=implicit&AWS_ENDPOINT=http://u:s3cr3tvalue@h", "must not carry credentials"},
		{"aws-kms:///" + arn + "?REGION=us-east-1&AUTH=implicit&ASSUME_ROLE=a,,b", "empty role"},
		{"gcp-kms:///" + arn + "?REGION=us-east-1&AUTH=implicit", "is not aws-kms"},
	}
	for _, c := range bad {
		_, err := parseURI(mustParse(t, c.raw))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", provider.RedactURI(c.raw), err, c.want)
			continue
		}
		if provider.Classify(err) != provider.Misuse || !strings.HasPrefix(err.Error(), "aws kms: parse uri: ") {
			t.Errorf("%v: want a MISUSE error starting with the provider name", err)
		}
		if strings.Contains(err.Error(), "s3cr3tvalue") {
			t.Errorf("error %q holds a secret", err)
		}
	}
}

// TestOpenRedacts: Open's URI() redacts AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN; a provider.Registry reaches Open by its scheme. (The
// registry package is not imported here, so that this suite does not
// depend on the other providers building.)
func TestOpenRedacts(t *testing.T) {
	raw := "aws-kms:///alias/cmek?REGION=us-east-1&AUTH=specified&AWS_ACCESS_KEY_ID=AKIAEXAMPLE&AWS_SECRET_ACCESS_KEY=s3cr3tvalue&AWS_SESSION_TOKEN=t0kenvalue"
	k, err := provider.Registry{Scheme: Open}.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.(*Key); !ok {
		t.Fatalf("registry opened %T", k)
	}
	u := k.URI()
	if strings.Contains(u, "s3cr3tvalue") || strings.Contains(u, "t0kenvalue") {
		t.Fatalf("URI() %q holds a secret", u)
	}
	if !strings.Contains(u, "AKIAEXAMPLE") || !strings.Contains(u, "alias/cmek") {
		t.Fatalf("URI() %q lost the key or the access key ID", u)
	}
	_, err = provider.Registry{Scheme: Open}.Open(strings.Replace(raw, "REGION=us-east-1&", "", 1))
	var pe *provider.Error
	if !errors.As(err, &pe) || strings.Contains(err.Error(), "s3cr3tvalue") {
		t.Fatalf("open without REGION: %v", err)
	}
}

// FuzzParseURI: parseURI never panics; whatever the URI, a secret put in it
// never reaches an error or URI(); a URI it accepts has a region and a
// known AUTH.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"aws-kms:///arn:aws:kms:us-east-1:111122223333:key/1234abcd?REGION=us-east-1&AUTH=implicit",
		"aws-kms:///alias/x?REGION=eu-west-2&AUTH=specified&AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY=B",
		"aws-kms:///k?REGION=eu-west-2&AUTH=implicit&ASSUME_ROLE=r1,r2&AWS_ENDPOINT=http://127.0.0.1:1",
		"aws-kms:///k?AUTH=implicit",
		"aws-kms://h/k?REGION=x",
		"aws-kms:///k?REGION=x&FOO=1",
		"aws-kms:///k?REGION=x&REGION=y&AUTH=implicit",
		"aws-kms:///%zz?REGION=x",
		"aws-kms:k?REGION=x",
	} {
		f.Add(s)
	}
	const secret, token = "SentinelSecretValue9f8e7d", "SentinelTokenValue1a2b3c"
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		// Plant secrets (replacing any the input had), so the check is exact.
		q := u.Query()
		if q.Has(paramSecretKey) || q.Has(paramSessionToken) || len(raw)%2 == 0 {
			q.Set(paramSecretKey, secret)
			q.Set(paramSessionToken, token)
			u.RawQuery = q.Encode()
		}
		cfg, err := parseURI(u)
		if err != nil {
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), token) {
				t.Fatalf("error %q holds a secret", err)
			}
			if provider.Classify(err) != provider.Misuse {
				t.Fatalf("error %v: class %s, want MISUSE", err, provider.Classify(err))
			}
			return
		}
		if strings.Contains(cfg.redacted, secret) || strings.Contains(cfg.redacted, token) {
			t.Fatalf("redacted URI %q holds a secret", cfg.redacted)
		}
		if cfg.region == "" || (cfg.auth != authImplicit && cfg.auth != authSpecified) {
			t.Fatalf("accepted %q with region %q auth %q", raw, cfg.region, cfg.auth)
		}
		if cfg.auth == authSpecified && (cfg.accessKeyID == "" || cfg.secretKey == "") {
			t.Fatal("AUTH=specified accepted without keys")
		}
	})
}
