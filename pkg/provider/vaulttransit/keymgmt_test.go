package vaulttransit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// fakeKeyMgmt is a FAKE of Vault Enterprise's Key Management secrets engine
// (open-source Vault has none), written from Vault's API documentation
// (website/content/api-docs/secret/key-management/{index,awskms,gcpkms}.mdx):
//
//	GET /v1/<mount>/kms/:name              → {"data":{"provider":..,"key_collection":..}}
//	GET /v1/<mount>/kms/:name/key/:key     → {"data":{"name":..,"protection":..,"purpose":..,"versions":{..}}}
//
// answering with Vault's response envelope and {"errors":[..]} bodies, on
// 127.0.0.1, behind the same X-Vault-Token check.
type fakeKeyMgmt struct {
	token string
	mount string
	mu    sync.Mutex
	kms   map[string]map[string]any            // kms name → data
	keys  map[string]map[string]map[string]any // kms name → key name → data
	calls []string
}

func newFakeKeyMgmt(t *testing.T) (*fakeKeyMgmt, *httptest.Server) {
	f := &fakeKeyMgmt{token: "hvs." + randHex(t, 8), mount: "keymgmt",
		kms: map[string]map[string]any{}, keys: map[string]map[string]map[string]any{}}
	srv := httptest.NewServer(f) // binds 127.0.0.1
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeKeyMgmt) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("X-Vault-Token") != f.token {
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{"permission denied"}})
		return
	}
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{"unsupported operation"}})
		return
	}
	p := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"+f.mount+"/"), "/")
	var data map[string]any
	switch {
	case len(p) == 2 && p[0] == "kms":
		data = f.kms[p[1]]
	case len(p) == 4 && p[0] == "kms" && p[2] == "key":
		data = f.keys[p[1]][p[3]]
	}
	if data == nil {
		w.WriteHeader(http.StatusNotFound) // Vault's read of nothing: 404, empty errors
		json.NewEncoder(w).Encode(map[string]any{"errors": []string{}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"request_id": "fake", "lease_id": "", "renewable": false, "lease_duration": 0, "data": data, "warnings": nil})
}

func (f *fakeKeyMgmt) add(kms, provider, collection, key string, keyData map[string]any) {
	f.kms[kms] = map[string]any{"provider": provider, "key_collection": collection}
	if f.keys[kms] == nil {
		f.keys[kms] = map[string]map[string]any{}
	}
	f.keys[kms][key] = keyData
}

func TestResolveKeyMgmt(t *testing.T) {
	f, srv := newFakeKeyMgmt(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	f.add("aws-usw2", "awskms", "us-west-2", "store-key", map[string]any{
		"name": "store-key-1700000000", "protection": "hsm", "purpose": "encrypt,decrypt",
		"versions": map[string]any{"1": "c96a8956194f4632bc3837b64a1b45b1", "2": "01ce657d33f64eb38f9432be543f3f52"},
	})
	f.add("gcp-eu", "gcpckms", "projects/acme-prod/locations/europe-west1/keyRings/cmek", "store-key", map[string]any{
		"name": "store-key-1700000001", "protection": "software", "purpose": []any{"decrypt", "encrypt"},
		"versions": map[string]any{"1": "1"},
	})
	f.add("azure", "azurekeyvault", "vault-name", "k", map[string]any{"name": "k-1", "protection": "hsm", "purpose": "encrypt,decrypt"})
	f.add("aws-sign", "awskms", "us-east-1", "signer", map[string]any{"name": "signer-1", "protection": "hsm", "purpose": "sign,verify"})
	f.add("aws-evil", "awskms", "us-east-1?AWS_ENDPOINT=http://x", "k", map[string]any{"name": "k-1", "protection": "hsm", "purpose": "encrypt,decrypt"})
	f.add("gcp-evil", "gcpckms", "projects/p/locations/l/keyRings/r", "k", map[string]any{"name": "k/../../x", "protection": "hsm", "purpose": "encrypt,decrypt"})

	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(f.token)
	client.ClearNamespace()

	resolve := func(raw string) (vaulttransit.Distribution, error) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return vaulttransit.ReadKeyMgmt(ctxT(t), u, client)
	}
	base := "vault-keymgmt://" + host + "/keymgmt/kms/"

	d, err := resolve(base + "aws-usw2/key/store-key?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	if d.URI != "aws-kms:///alias/hashicorp/store-key-1700000000?REGION=us-west-2&AUTH=implicit" || d.Protection != "hsm" ||
		d.Provider != "awskms" || d.Versions["2"] != "01ce657d33f64eb38f9432be543f3f52" {
		t.Fatalf("aws: %+v", d)
	}
	u, _ := url.Parse(base + "aws-usw2/key/store-key?tls=false")
	if s, err := vaulttransit.ResolveKeyMgmt(ctxT(t), u, client); err != nil || s != d.URI {
		t.Fatalf("ResolveKeyMgmt: %q %v", s, err)
	}
	// The resolved URI opens with the AWS provider.
	if _, err := awskms.Open(mustURL(t, d.URI)); err != nil {
		t.Fatalf("open %s: %v", d.URI, err)
	}

	d, err = resolve(base + "gcp-eu/key/store-key?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	if d.URI != "gcp-kms:///projects/acme-prod/locations/europe-west1/keyRings/cmek/cryptoKeys/store-key-1700000001?AUTH=implicit" || d.Protection != "software" {
		t.Fatalf("gcp: %+v", d)
	}
	// The two documented reads, nothing else.
	f.mu.Lock()
	calls := strings.Join(f.calls[len(f.calls)-2:], ", ")
	f.mu.Unlock()
	if calls != "GET /v1/keymgmt/kms/gcp-eu/key/store-key, GET /v1/keymgmt/kms/gcp-eu" {
		t.Fatalf("calls: %s", calls)
	}

	for _, b := range []struct {
		uri   string
		class provider.Class
		want  string
	}{
		{base + "azure/key/k?tls=false", provider.Misuse, "Azure Key Vault"},
		{base + "aws-sign/key/signer?tls=false", provider.Misuse, "needs encrypt and decrypt"},
		{base + "aws-evil/key/k?tls=false", provider.Misuse, "not valid"},
		{base + "gcp-evil/key/k?tls=false", provider.Misuse, "not valid"},
		{base + "aws-usw2/key/nosuch?tls=false", provider.Misuse, "not found"},
		{base + "nosuch/key/k?tls=false", provider.Misuse, "not found"},
		{"vault-keymgmt://" + host + "/keymgmt/key/k?tls=false", provider.Misuse, "expected vault-keymgmt://"},
		{base + "aws-usw2/key/store-key?tls=false&x=1", provider.Misuse, "unknown URI parameter"},
	} {
		_, err := resolve(b.uri)
		if err == nil || provider.Classify(err) != b.class || !strings.Contains(err.Error(), b.want) {
			t.Fatalf("%s: %v, want %s %q", b.uri, err, b.class, b.want)
		}
	}

	bad, err := client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	bad.SetToken("hvs.wrong")
	if _, err := vaulttransit.ReadKeyMgmt(ctxT(t), mustURL(t, base+"aws-usw2/key/store-key?tls=false"), bad); provider.Classify(err) != provider.Revoked ||
		strings.Contains(err.Error(), "hvs.wrong") {
		t.Fatalf("wrong token: %v", err)
	}

	// Through the registry: the token from the environment, the resolved key opened.
	cleanVaultEnv(t)
	t.Setenv("VAULT_TOKEN", f.token)
	k, err := registry.Default().Open(base + "aws-usw2/key/store-key?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.(*awskms.Key); !ok || !strings.HasPrefix(k.URI(), "aws-kms:///alias/hashicorp/store-key-1700000000") {
		t.Fatalf("registry opened %T %s", k, k.URI())
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
