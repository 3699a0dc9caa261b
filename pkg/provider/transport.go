package provider

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Transport is where a KMS URI sends its requests, as far as the URI (and,
// for Vault without a host, VAULT_ADDR) says.
type Transport struct {
	// Host is host[:port] of the endpoint the requests go to, where the URI
	// or the environment names one; "" for the provider's own default
	// endpoint (AWS's and Google's public ones) or no network (file-kms).
	Host string
	// Override: the URI itself names the endpoint (AWS_ENDPOINT, a Vault
	// host, any *ENDPOINT parameter), rather than the provider's default or
	// the operator's environment.
	Override bool
	// Plaintext: requests, their credentials and the keys a KMS returns
	// travel unencrypted (tls=false, an http:// endpoint).
	Plaintext bool
}

// Loopback reports whether the transport's host is this machine's loopback
// (localhost, 127.0.0.0/8, ::1), or there is no host.
func (t Transport) Loopback() bool { return t.Host == "" || IsLoopbackHost(t.Host) }

// IsLoopbackHost reports whether host[:port] is a loopback name or address.
func IsLoopbackHost(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// TransportOf returns raw's transport: of a URI naming several endpoints
// (AWS_ENDPOINT and AWS_STS_ENDPOINT), the first outside loopback (see
// TransportsOf). getenv reads VAULT_ADDR for a Vault URI without a host. An
// unparseable URI is an error.
func TransportOf(raw string, getenv func(string) string) (Transport, error) {
	ts, err := TransportsOf(raw, getenv)
	if err != nil {
		return Transport{}, err
	}
	for _, t := range ts {
		if !t.Loopback() {
			return t, nil
		}
	}
	return ts[0], nil
}

// TransportsOf returns every transport raw's requests take: one per
// endpoint the URI names (any *ENDPOINT parameter, in name order), else
// the provider's default or Vault's address. Never empty without an error.
func TransportsOf(raw string, getenv func(string) string) ([]Transport, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	var t Transport
	switch u.Scheme {
	case "file-kms":
		return []Transport{t}, nil
	case "vault-transit", "vault-keymgmt":
		if b, err := strconv.ParseBool(u.Query().Get("tls")); err == nil && !b {
			t.Plaintext = true
		}
		if u.Host != "" {
			t.Host, t.Override = u.Host, true
			return []Transport{t}, nil
		}
		addr := "https://127.0.0.1:8200" // the Vault client's default
		if a := getenv("VAULT_ADDR"); a != "" {
			addr = a
		}
		if a, err := url.Parse(addr); err == nil {
			t.Host = a.Host
			t.Plaintext = t.Plaintext || a.Scheme == "http"
		}
		return []Transport{t}, nil
	}
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []Transport
	for _, k := range keys {
		vs := q[k]
		if !strings.HasSuffix(strings.ToUpper(k), "ENDPOINT") || len(vs) == 0 || vs[0] == "" {
			continue
		}
		t := Transport{Override: true}
		e, err := url.Parse(vs[0])
		if err != nil || e.Host == "" { // a bare host[:port]
			t.Host = vs[0]
		} else {
			t.Host, t.Plaintext = e.Host, strings.EqualFold(e.Scheme, "http")
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		out = append(out, Transport{})
	}
	return out, nil
}
