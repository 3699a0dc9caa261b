package gcpkms

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Scheme is the URI scheme of Cloud KMS keys.
const Scheme = "gcp-kms"

// URI query parameters, as CockroachDB's GCP KMS URIs name them.
const (
	ParamAuth        = "AUTH"
	ParamCredentials = "CREDENTIALS"
	AuthImplicit     = "implicit"
	AuthSpecified    = "specified"
	// ParamEndpoint is cmekctl's own: CockroachDB's gcp-kms URIs take AUTH,
	// CREDENTIALS, ASSUME_ROLE and BEARER_TOKEN, and no endpoint. It is
	// named as those are (no provider prefix; AWS's is AWS_ENDPOINT):
	// ENDPOINT=host:port or https://host[:port] (TLS; a private endpoint,
	// Private Service Connect, VPC-SC), or http://127.0.0.1:port (plain
	// text, no credentials sent: an emulator on this machine only).
	ParamEndpoint = "ENDPOINT"
)

// Compiled on first use, not at start-up: the counted repetitions expand
// into thousands of allocations, paid by every cmekctl run otherwise
// (cmekctl version included; BenchmarkStartup in cmd/cmekctl).
var (
	reProject  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9.:-]{0,99}$`) })
	reLocation = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`) })
	reID       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`) })
	reVersion  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{1,19}$`) })
)

// Config is a parsed gcp-kms URI.
type Config struct {
	// KeyName is the CryptoKey's resource name,
	// projects/P/locations/L/keyRings/R/cryptoKeys/K.
	KeyName string
	// Auth is AuthImplicit (Application Default Credentials) or
	// AuthSpecified (Credentials).
	Auth string
	// Credentials is the decoded service-account JSON of AUTH=specified.
	// It is a secret: it never prints.
	Credentials []byte
	// StrippedVersion is the /cryptoKeyVersions/N suffix the URI named, if
	// any; the key's primary version encrypts all the same.
	StrippedVersion string
	// Endpoint is the Cloud KMS gRPC endpoint, host:port; empty: the
	// client's default (cloudkms.googleapis.com:443).
	Endpoint string
	// Plaintext: ENDPOINT=http://LOOPBACK:PORT asked for gRPC without TLS
	// and without credentials.
	Plaintext bool
	// URI is the canonical URI with secrets redacted.
	URI string
}

func parseErr(format string, args ...any) error {
	return provider.Errorf(providerName, "parse uri", provider.Misuse, "", format, args...)
}

// ParseURI parses gcp-kms:///projects/P/locations/L/keyRings/R/cryptoKeys/K
// with the query parameters AUTH=implicit|specified and CREDENTIALS (base64
// service-account JSON). A /cryptoKeyVersions/N suffix is stripped. No error
// holds the value of CREDENTIALS.
func ParseURI(u *url.URL) (Config, error) {
	red := provider.RedactURI(u.String())
	if u.Scheme != Scheme {
		return Config{}, parseErr("%s: scheme must be %s", red, Scheme)
	}
	if err := provider.CheckParams(providerName, u, ParamAuth, ParamCredentials, ParamEndpoint); err != nil {
		return Config{}, err
	}
	if u.Host != "" || u.User != nil || u.Opaque != "" {
		return Config{}, parseErr("%s: expected gcp-kms:///projects/P/locations/L/keyRings/R/cryptoKeys/K (three slashes, no host)", red)
	}
	if u.Fragment != "" {
		return Config{}, parseErr("%s: a KMS URI has no #fragment", red)
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	var cfg Config
	switch {
	case len(segs) == 10 && segs[8] == "cryptoKeyVersions":
		if !reVersion().MatchString(segs[9]) {
			return Config{}, parseErr("%s: key version %q is not a number", red, segs[9])
		}
		cfg.StrippedVersion = segs[9]
		segs = segs[:8]
	case len(segs) == 8:
	default:
		return Config{}, parseErr("%s: expected the path projects/P/locations/L/keyRings/R/cryptoKeys/K", red)
	}
	for i, want := range []string{"projects", "locations", "keyRings", "cryptoKeys"} {
		if segs[2*i] != want {
			return Config{}, parseErr("%s: expected the path projects/P/locations/L/keyRings/R/cryptoKeys/K, found %q where %q belongs", red, segs[2*i], want)
		}
	}
	switch {
	case !reProject().MatchString(segs[1]):
		return Config{}, parseErr("%s: invalid project %q", red, segs[1])
	case !reLocation().MatchString(segs[3]):
		return Config{}, parseErr("%s: invalid location %q", red, segs[3])
	case !reID().MatchString(segs[5]):
		return Config{}, parseErr("%s: invalid key ring %q (letters, digits, _ and -, at most 63)", red, segs[5])
	case !reID().MatchString(segs[7]):
		return Config{}, parseErr("%s: invalid key %q (letters, digits, _ and -, at most 63)", red, segs[7])
	}
	cfg.KeyName = strings.Join(segs, "/")

	q := u.Query()
	for k, vs := range q {
		if len(vs) != 1 {
			return Config{}, parseErr("%s: parameter %s given %d times", red, k, len(vs))
		}
	}
	cfg.Auth = q.Get(ParamAuth)
	creds := q.Get(ParamCredentials)
	switch cfg.Auth {
	case AuthImplicit:
		if q.Has(ParamCredentials) {
			return Config{}, parseErr("%s: CREDENTIALS is set but AUTH=implicit uses Application Default Credentials; drop one", red)
		}
	case "", AuthSpecified:
		// As CockroachDB does, an absent AUTH means specified.
		cfg.Auth = AuthSpecified
		if creds == "" {
			return Config{}, parseErr("%s: AUTH=specified needs CREDENTIALS (base64 service-account JSON); use AUTH=implicit for Application Default Credentials", red)
		}
		b, err := decodeCredentials(creds)
		if err != nil {
			return Config{}, parseErr("%s: CREDENTIALS: %s", red, err)
		}
		cfg.Credentials = b
	default:
		return Config{}, parseErr("%s: AUTH must be implicit or specified, not %q", red, cfg.Auth)
	}
	if q.Has(ParamEndpoint) {
		ep, plain, err := parseEndpoint(q.Get(ParamEndpoint))
		if err != nil {
			return Config{}, parseErr("%s: %s", red, err)
		}
		if plain && cfg.Credentials != nil {
			return Config{}, parseErr("%s: ENDPOINT is plain http: CREDENTIALS would not be sent (an emulator takes none); use AUTH=implicit, or an https endpoint", red)
		}
		cfg.Endpoint, cfg.Plaintext = ep, plain
	}

	canon := url.URL{Scheme: Scheme, Path: "/" + cfg.KeyName}
	cq := url.Values{}
	cq.Set(ParamAuth, cfg.Auth)
	if creds != "" {
		cq.Set(ParamCredentials, creds)
	}
	if q.Has(ParamEndpoint) {
		cq.Set(ParamEndpoint, q.Get(ParamEndpoint))
	}
	canon.RawQuery = cq.Encode()
	cfg.URI = provider.RedactURI(canon.String())
	return cfg, nil
}

// credError is a decoding failure of CREDENTIALS. Its text never quotes the
// value.
type credError string

func (e credError) Error() string { return string(e) }

// decodeCredentials decodes base64 service-account JSON. A '+' that the
// query decoding turned into a space is put back; standard and URL-safe
// alphabets, padded or not, are accepted.
func decodeCredentials(s string) ([]byte, error) {
	s = strings.ReplaceAll(s, " ", "+")
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, credError("not valid base64")
	}
	var sa struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &sa); err != nil {
		return nil, credError("not a JSON object after base64 decoding")
	}
	if sa.Type != "service_account" {
		return nil, credError("not a service-account key (its \"type\" must be \"service_account\")")
	}
	if sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, credError("service-account key lacks client_email or private_key")
	}
	return b, nil
}

// parseEndpoint reads ENDPOINT: host:port or https://host[:port] (TLS,
// port 443 by default), or http://host:port (plain text), which only a
// loopback host may be: anything else would send key material and
// ciphertexts unencrypted over a network.
func parseEndpoint(v string) (string, bool, error) {
	raw := strings.TrimSpace(v)
	if raw == "" {
		return "", false, credError("ENDPOINT is empty: give host:port, https://host:port or http://127.0.0.1:port")
	}
	plain := false
	switch {
	case strings.HasPrefix(raw, "http://"):
		plain, raw = true, strings.TrimPrefix(raw, "http://")
	case strings.HasPrefix(raw, "https://"):
		raw = strings.TrimPrefix(raw, "https://")
	case strings.Contains(raw, "://"):
		return "", false, credError("ENDPOINT " + v + ": the scheme must be https:// or http:// (loopback only)")
	}
	raw = strings.TrimSuffix(raw, "/")
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		if plain {
			return "", false, credError("ENDPOINT " + v + ": give the port: http://127.0.0.1:PORT")
		}
		host, port = raw, "443"
	}
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", false, credError("ENDPOINT " + v + ": not a host[:port]")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", false, credError("ENDPOINT " + v + ": invalid port")
	}
	if plain && !isLoopback(host) {
		return "", false, credError("ENDPOINT " + v + " is plain http to a host that is not loopback: the key's traffic would cross the network unencrypted; use https://" + net.JoinHostPort(host, port))
	}
	return net.JoinHostPort(host, port), plain, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
