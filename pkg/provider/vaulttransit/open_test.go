package vaulttransit_test

import (
	"bytes"
	"encoding/pem"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// cleanVaultEnv clears every variable the Vault api client reads, and HOME
// (for ~/.vault-token), so that only what a test sets is seen.
func cleanVaultEnv(t *testing.T) {
	for _, v := range []string{"VAULT_ADDR", "VAULT_AGENT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH",
		"VAULT_CACERT_BYTES", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_SKIP_VERIFY", "VAULT_TLS_SERVER_NAME",
		"VAULT_MAX_RETRIES", "VAULT_CLIENT_TIMEOUT", "VAULT_RATE_LIMIT", "VAULT_SRV_LOOKUP", "VAULT_HTTP_PROXY", "VAULT_PROXY_ADDR",
		"VAULT_DISABLE_REDIRECTS", "VAULT_MFA", "VAULT_WRAP_TTL"} {
		t.Setenv(v, "")
	}
	t.Setenv("HOME", t.TempDir())
}

func open(t *testing.T, raw string) (provider.Key, error) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return vaulttransit.Open(u)
}

func roundTrip(t *testing.T, k provider.Key) error {
	t.Helper()
	pt := []byte("0123456789abcdef0123456789abcdef")
	w, err := k.Wrap(ctxT(t), pt, testAAD)
	if err != nil {
		return err
	}
	got, err := k.Unwrap(ctxT(t), w, testAAD)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("unwrap returned other bytes")
	}
	return nil
}

func TestParseURI(t *testing.T) {
	cleanVaultEnv(t)
	t.Setenv("VAULT_TOKEN", "hvs.secret-token-value")
	good := []struct{ in, uri, mount, name string }{
		{"vault-transit://127.0.0.1:8200/transit/keys/k1?tls=false", "vault-transit://127.0.0.1:8200/transit/keys/k1?tls=false", "transit", "k1"},
		{"vault-transit://vault.internal:8200/transit/keys/k1", "vault-transit://vault.internal:8200/transit/keys/k1", "transit", "k1"},
		{"vault-transit://127.0.0.1:8200/team/a/transit/keys/k-2?tls=true", "vault-transit://127.0.0.1:8200/team/a/transit/keys/k-2", "team/a/transit", "k-2"},
		{"vault-transit://127.0.0.1:8200/keys/keys/keys", "vault-transit://127.0.0.1:8200/keys/keys/keys", "keys", "keys"},
	}
	for _, g := range good {
		k, err := open(t, g.in)
		if err != nil {
			t.Fatalf("%s: %v", g.in, err)
		}
		vk := k.(*vaulttransit.Key)
		if k.URI() != g.uri || vk.Mount() != g.mount || vk.Name() != g.name {
			t.Fatalf("%s: uri %q mount %q name %q", g.in, k.URI(), vk.Mount(), vk.Name())
		}
		if strings.Contains(k.URI(), "secret-token") {
			t.Fatalf("URI %q holds the token", k.URI())
		}
	}
	bad := []struct{ in, want string }{
		{"vault-transit://127.0.0.1:8200/transit/keys/k1?foo=1", `unknown URI parameter "foo"`},
		{"vault-transit://127.0.0.1:8200/transit/keys/k1?TLS=false", `unknown URI parameter "TLS"`},
		{"vault-transit://127.0.0.1:8200/transit/keys/k1?tls=maybe", "want true or false"},
		{"vault-transit://127.0.0.1:8200/transit/k1", "expected vault-transit://host:port/<mount>/keys/<name>"},
		{"vault-transit://127.0.0.1:8200/keys/k1", "expected vault-transit://host:port/<mount>/keys/<name>"},
		{"vault-transit://127.0.0.1:8200/transit//keys/k1", "empty"},
		{"vault-transit://hvs.abc:pw@127.0.0.1:8200/transit/keys/k1", "take no credentials"},
		{"aws-kms://127.0.0.1:8200/transit/keys/k1", "is not vault-transit"},
	}
	for _, b := range bad {
		_, err := open(t, b.in)
		if err == nil || !strings.Contains(err.Error(), b.want) || provider.Classify(err) != provider.Misuse {
			t.Fatalf("%s: error %v, want MISUSE %q", b.in, err, b.want)
		}
		if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "hvs.abc") {
			t.Fatalf("%s: error %q holds the credentials", b.in, err)
		}
	}
}

// TestOpenFromEnvironment: address, token and namespace come from the Vault
// CLI's variables; the URI's host overrides VAULT_ADDR.
func TestOpenFromEnvironment(t *testing.T) {
	s := startServer(t, "-namespace", "team-a")
	host := strings.TrimPrefix(s.Addr, "http://")
	c := s.Client(t)
	c.SetNamespace("team-a")
	k0 := vaulttransit.New(c, "transit", "env-"+randHex(t, 4))
	if _, err := k0.Create(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	path := "/transit/keys/" + k0.Name()

	t.Run("uri_host_token_namespace", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_ADDR", "https://127.0.0.1:1") // overridden by the URI
		t.Setenv("VAULT_TOKEN", s.Token)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		k, err := open(t, "vault-transit://"+host+path+"?tls=false")
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, k); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no_namespace_misses", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_TOKEN", s.Token)
		k, err := open(t, "vault-transit://"+host+path+"?tls=false")
		if err != nil {
			t.Fatal(err)
		}
		err = roundTrip(t, k)
		expectErr(t, s, err, provider.Misuse, "404", "route entry not found")
		_, err = k.Describe(ctxT(t))
		expectErr(t, s, err, provider.Misuse, "404", "route entry not found")
	})
	t.Run("vault_addr_when_uri_has_no_host", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_ADDR", s.Addr)
		t.Setenv("VAULT_TOKEN", s.Token)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		k, err := open(t, "vault-transit://"+path+"?tls=false")
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, k); err != nil {
			t.Fatal(err)
		}
		// Plain http needs tls=false in the URI.
		_, err = open(t, "vault-transit://"+path)
		if err == nil || !strings.Contains(err.Error(), "tls=false") {
			t.Fatalf("http VAULT_ADDR without tls=false: %v", err)
		}
	})
	t.Run("token_file", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		if err := os.WriteFile(filepath.Join(os.Getenv("HOME"), ".vault-token"), []byte(s.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := open(t, "vault-transit://"+host+path+"?tls=false")
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, k); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no_token_is_denied", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		k, err := open(t, "vault-transit://"+host+path+"?tls=false")
		if err != nil {
			t.Fatal(err)
		}
		expectErr(t, s, roundTrip(t, k), provider.Revoked, "403", "permission denied")
	})

	// https by default: a TLS proxy on 127.0.0.1 in front of the server,
	// trusted through VAULT_CACERT or VAULT_SKIP_VERIFY.
	target, _ := url.Parse(s.Addr)
	tlsProxy := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(tlsProxy.Close)
	tlsHost := strings.TrimPrefix(tlsProxy.URL, "https://")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsProxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("https_with_vault_cacert", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_TOKEN", s.Token)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		t.Setenv("VAULT_CACERT", caFile)
		k, err := open(t, "vault-transit://"+tlsHost+path)
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, k); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("https_untrusted_fails", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_TOKEN", s.Token)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		k, err := open(t, "vault-transit://"+tlsHost+path)
		if err != nil {
			t.Fatal(err)
		}
		err = roundTrip(t, k)
		expectErr(t, s, err, provider.Transient, "", "certificate")
	})
	t.Run("https_with_vault_skip_verify", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_TOKEN", s.Token)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		t.Setenv("VAULT_SKIP_VERIFY", "true")
		k, err := open(t, "vault-transit://"+tlsHost+path)
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, k); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("registry", func(t *testing.T) {
		cleanVaultEnv(t)
		t.Setenv("VAULT_TOKEN", s.Token)
		t.Setenv("VAULT_NAMESPACE", "team-a")
		k, err := registry.Default().Open("vault-transit://" + host + path + "?tls=false")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := k.(*vaulttransit.Key); !ok {
			t.Fatalf("registry opened a %T", k)
		}
		if err := roundTrip(t, k); err != nil {
			t.Fatal(err)
		}
	})
}
