package gcpkms_test

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

const keyPath = "projects/my-proj/locations/us-east1/keyRings/ring_1/cryptoKeys/key-1"

// A service-account JSON shaped like Google's; the private key is a
// placeholder (the adapter does not parse it until it signs a token).
const saJSON = `{"type":"service_account","project_id":"my-proj","private_key_id":"0123","private_key":"-----BEGIN PRIVATE KEY-----\nTESTONLYNOTAKEY\n-----END PRIVATE KEY-----\n","client_email":"cmekctl@my-proj.iam.gserviceaccount.com"}`

// credsB64 has '+' and '/' in it (std alphabet), so the query-escaping
// paths are exercised: trailing JSON whitespace shifts the alignment until
// it does.
var credsB64 = func() string {
	for pad := ""; ; pad += " " {
		s := base64.StdEncoding.EncodeToString([]byte(saJSON[:len(saJSON)-1] + `,"x":">>>???"` + pad + "}"))
		if strings.Contains(s, "+") && strings.Contains(s, "/") {
			return s
		}
	}
}()

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseURI(t *testing.T) {
	esc := url.QueryEscape(credsB64)
	for _, c := range []struct {
		name, uri   string
		wantName    string
		wantAuth    string
		wantVersion string
		wantURI     string
	}{
		{"implicit", "gcp-kms:///" + keyPath + "?AUTH=implicit", keyPath, "implicit", "", "gcp-kms:///" + keyPath + "?AUTH=implicit"},
		{"version suffix stripped", "gcp-kms:///" + keyPath + "/cryptoKeyVersions/12?AUTH=implicit", keyPath, "implicit", "12", "gcp-kms:///" + keyPath + "?AUTH=implicit"},
		{"specified", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + esc, keyPath, "specified", "", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=%2A%2Aredacted%2A%2A"},
		{"specified by default", "gcp-kms:///" + keyPath + "?CREDENTIALS=" + esc, keyPath, "specified", "", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=%2A%2Aredacted%2A%2A"},
		// An unescaped '+' arrives as a space; it is put back.
		{"unescaped base64", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + credsB64, keyPath, "specified", "", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=%2A%2Aredacted%2A%2A"},
		{"url-safe base64", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + base64.RawURLEncoding.EncodeToString([]byte(saJSON)), keyPath, "specified", "", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=%2A%2Aredacted%2A%2A"},
		{"domain-scoped project", "gcp-kms:///projects/example.com:proj/locations/global/keyRings/r/cryptoKeys/k?AUTH=implicit", "projects/example.com:proj/locations/global/keyRings/r/cryptoKeys/k", "implicit", "", "gcp-kms:///projects/example.com:proj/locations/global/keyRings/r/cryptoKeys/k?AUTH=implicit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := gcpkms.ParseURI(mustURL(t, c.uri))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.KeyName != c.wantName || cfg.Auth != c.wantAuth || cfg.StrippedVersion != c.wantVersion || cfg.URI != c.wantURI {
				t.Fatalf("got name %q auth %q version %q uri %q", cfg.KeyName, cfg.Auth, cfg.StrippedVersion, cfg.URI)
			}
			if c.wantAuth == "specified" && !strings.Contains(string(cfg.Credentials), `"client_email":"cmekctl@my-proj.iam.gserviceaccount.com"`) {
				t.Fatal("credentials not decoded")
			}
			k, err := gcpkms.Open(mustURL(t, c.uri))
			if err != nil {
				t.Fatal(err)
			}
			if k.URI() != c.wantURI {
				t.Fatalf("URI() = %q, want %q", k.URI(), c.wantURI)
			}
		})
	}
}

func TestParseURIErrors(t *testing.T) {
	esc := url.QueryEscape(credsB64)
	notSA := url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(`{"type":"authorized_user","refresh_token":"SECRETREFRESHTOKEN"}`)))
	for _, c := range []struct{ name, uri, want string }{
		{"unknown parameter", "gcp-kms:///" + keyPath + "?AUTH=implicit&REGION=us", `unknown URI parameter "REGION"`},
		{"lower-case parameter", "gcp-kms:///" + keyPath + "?auth=implicit", `unknown URI parameter "auth"`},
		{"host", "gcp-kms://projects/" + keyPath + "?AUTH=implicit", "three slashes"},
		{"short path", "gcp-kms:///projects/p/locations/l/keyRings/r?AUTH=implicit", "expected the path"},
		{"misnamed segment", "gcp-kms:///projects/p/regions/l/keyRings/r/cryptoKeys/k?AUTH=implicit", `found "regions" where "locations" belongs`},
		{"bad version", "gcp-kms:///" + keyPath + "/cryptoKeyVersions/x?AUTH=implicit", "not a number"},
		{"bad key id", "gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k%21?AUTH=implicit", "invalid key"},
		{"bad AUTH", "gcp-kms:///" + keyPath + "?AUTH=magic&CREDENTIALS=" + esc, "AUTH must be implicit or specified"},
		{"specified without credentials", "gcp-kms:///" + keyPath + "?AUTH=specified", "needs CREDENTIALS"},
		{"implicit with credentials", "gcp-kms:///" + keyPath + "?AUTH=implicit&CREDENTIALS=" + esc, "drop one"},
		{"credentials not base64", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=SECRET%21%21NOTBASE64", "not valid base64"},
		{"credentials not a service account", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + notSA, "not a service-account key"},
		{"repeated parameter", "gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + esc + "&CREDENTIALS=" + esc, "given 2 times"},
		{"fragment", "gcp-kms:///" + keyPath + "?AUTH=implicit#x", "fragment"},
		{"other scheme", "aws-kms:///" + keyPath + "?AUTH=implicit", "scheme must be gcp-kms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := gcpkms.Open(mustURL(t, c.uri))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error %q lacks %q", msg, c.want)
			}
			if provider.Classify(err) != provider.Misuse || !strings.HasPrefix(msg, "gcp kms: parse uri: ") {
				t.Fatalf("error %q: class %s", msg, provider.Classify(err))
			}
			for _, secret := range []string{credsB64, esc, "SECRET", "TESTONLYNOTAKEY", notSA} {
				if strings.Contains(msg, secret) {
					t.Fatalf("error %q contains the credentials", msg)
				}
			}
		})
	}
}

func TestRegistryOpensGCP(t *testing.T) {
	k, err := registry.Default().Open("gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + url.QueryEscape(credsB64))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.(*gcpkms.Key); !ok {
		t.Fatalf("registry opened %T", k)
	}
	if strings.Contains(k.URI(), credsB64[:20]) || !strings.Contains(k.URI(), url.QueryEscape(provider.Redacted)) {
		t.Fatalf("URI() %q does not redact CREDENTIALS", k.URI())
	}
	if _, ok := provider.AsAdmin(k); !ok {
		t.Fatal("gcp key is not a provider.Admin")
	}
}

func TestOpenerWithClient(t *testing.T) {
	srv, k := newKey(t)
	open := gcpkms.OpenerWithClient(srv.Client(ctxT(t)))
	k2, err := open(mustURL(t, "gcp-kms:///"+k.Name()+"/cryptoKeyVersions/1?AUTH=implicit"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := k2.Describe(ctxT(t))
	if err != nil || st.State != provider.StateEnabled || st.URI != "gcp-kms:///"+k.Name()+"?AUTH=implicit" {
		t.Fatalf("describe through the opener: %+v %v", st, err)
	}
}

// FuzzParseURI: parsing never panics, an accepted URI round-trips through
// URI() to the same key, and CREDENTIALS never reaches URI() or an error.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"gcp-kms:///" + keyPath + "?AUTH=implicit",
		"gcp-kms:///" + keyPath + "/cryptoKeyVersions/3?AUTH=implicit",
		"gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + url.QueryEscape(credsB64),
		"gcp-kms:///" + keyPath + "?CREDENTIALS=" + credsB64,
		"gcp-kms:///" + keyPath + "?AUTH=implicit&CREDENTIALS=c2VjcmV0LXZhbHVlLWhlcmU=",
		"gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=bm90LWpzb24tc2VjcmV0",
		"gcp-kms://host/" + keyPath + "?AUTH=implicit",
		"gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?AUTH=implicit&X=1",
		"gcp-kms:///projects/p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		// The leak check plants a sentinel as the CREDENTIALS value (a
		// substring of attacker-chosen input proves nothing: it can match
		// parameter names, the path or the redaction mark).
		const sentinel = "zq9SENTINELcred7x"
		q := u.Query()
		planted := false
		if _, ok := q[gcpkms.ParamCredentials]; ok && !strings.Contains(strings.ToLower(s), strings.ToLower(sentinel)) {
			q.Set(gcpkms.ParamCredentials, sentinel)
			u.RawQuery, planted = q.Encode(), true
		}
		cfg, err := gcpkms.ParseURI(u)
		if err != nil {
			if planted && strings.Contains(err.Error(), sentinel) {
				t.Fatalf("error %q contains CREDENTIALS", err)
			}
			return
		}
		if planted && strings.Contains(cfg.URI, sentinel) {
			t.Fatalf("URI %q contains CREDENTIALS", cfg.URI)
		}
		u2, err := url.Parse(cfg.URI)
		if err != nil {
			t.Fatalf("canonical URI %q does not parse: %v", cfg.URI, err)
		}
		if u2.Path != "/"+cfg.KeyName || strings.Contains(cfg.KeyName, "cryptoKeyVersions") {
			t.Fatalf("canonical URI %q for key %q", cfg.URI, cfg.KeyName)
		}
	})
}

// ENDPOINT: TLS by default; plain text only when asked (http://) and only
// to loopback; credentials never go over plain text.
func TestParseURIEndpoint(t *testing.T) {
	base := "gcp-kms:///" + keyPath + "?AUTH=implicit&ENDPOINT="
	for _, c := range []struct {
		endpoint, want string
		plain          bool
	}{
		{"kms.example.internal:8443", "kms.example.internal:8443", false},
		{"https://private.cloudkms.example", "private.cloudkms.example:443", false},
		{"https://10.0.0.5:443", "10.0.0.5:443", false},
		{"http://127.0.0.1:9010", "127.0.0.1:9010", true},
		{"http://localhost:9010", "localhost:9010", true},
		{"http://[::1]:9010", "[::1]:9010", true},
	} {
		cfg, err := gcpkms.ParseURI(mustURL(t, base+url.QueryEscape(c.endpoint)))
		if err != nil {
			t.Errorf("%s: %v", c.endpoint, err)
			continue
		}
		if cfg.Endpoint != c.want || cfg.Plaintext != c.plain {
			t.Errorf("%s: endpoint %q plain %v, want %q %v", c.endpoint, cfg.Endpoint, cfg.Plaintext, c.want, c.plain)
		}
		if !strings.Contains(cfg.URI, "ENDPOINT=") {
			t.Errorf("%s: canonical URI %s dropped ENDPOINT", c.endpoint, cfg.URI)
		}
	}
	for _, c := range []struct{ uri, msg string }{
		{base + url.QueryEscape("http://10.0.0.5:9010"), "not loopback"},
		{base + url.QueryEscape("http://kms.example.com:80"), "use https://kms.example.com:80"},
		{base + url.QueryEscape("http://127.0.0.1"), "give the port"},
		{base + url.QueryEscape("grpc://127.0.0.1:9010"), "scheme must be https://"},
		{base, "ENDPOINT is empty"},
		{base + "127.0.0.1:99999", "invalid port"},
		{"gcp-kms:///" + keyPath + "?AUTH=specified&CREDENTIALS=" + url.QueryEscape(credsB64) + "&ENDPOINT=" + url.QueryEscape("http://127.0.0.1:9010"), "CREDENTIALS would not be sent"},
	} {
		_, err := gcpkms.ParseURI(mustURL(t, c.uri))
		if err == nil || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", c.uri, err, c.msg)
		}
		if err != nil && strings.Contains(err.Error(), credsB64) {
			t.Errorf("error holds the credentials: %v", err)
		}
		if provider.Classify(err) != provider.Misuse {
			t.Errorf("%s: class of %v, want MISUSE", c.uri, err)
		}
	}
}
