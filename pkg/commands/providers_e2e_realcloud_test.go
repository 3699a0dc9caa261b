package commands

// The drill against real KMS keys, when given (TestProvidersE2ERealCloud).

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

// TestProvidersE2ERealCloud runs the drill against a real KMS when one is
// given (optional: the servers above always run). The drill disables and
// destroys its key, so it uses a new key next to the one given: AWS, a new
// key (kms create on the URI with no key); GCP, a sibling key "<K>-d<rand>"
// in the same key ring; Vault, transit key cmekctl-drill-<rand> on the mount
// $CMEKCTL_TEST_VAULT_MOUNT (default transit) of $VAULT_ADDR. The URIs must
// carry no credentials (AUTH=implicit; VAULT_TOKEN for Vault): a keyring
// refuses a URI with credentials.
func TestProvidersE2ERealCloud(t *testing.T) {
	real := func(name string) *e2eWorld { return newWorld(t, name, registry.Default()) }
	t.Run("aws", func(t *testing.T) {
		raw := os.Getenv("CMEKCTL_TEST_AWS_KEY")
		if raw == "" {
			t.Skip("CMEKCTL_TEST_AWS_KEY is not set: the real AWS KMS run is optional; TestProvidersE2E/kms/aws covers local-kms")
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal("CMEKCTL_TEST_AWS_KEY is not a URI")
		}
		u.Path = "/"
		w := real("aws")
		st := w.kmsVerb(t, "create", u.String())
		u.Path = "/" + st.Details["arn"]
		var rep drillReport
		w.ok(t, &rep, "drill", "--provider", "aws", "--cmek", u.String(), "--destroy-existing", u.String(), "--yes", "-o", "json")
		if !rep.OK {
			t.Fatalf("aws drill: %+v", rep.Steps)
		}
	})
	t.Run("gcp", func(t *testing.T) {
		raw := os.Getenv("CMEKCTL_TEST_GCP_KEY")
		if raw == "" {
			t.Skip("CMEKCTL_TEST_GCP_KEY is not set: the real Cloud KMS run is optional; TestProvidersE2E/kms/gcp covers the fake")
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal("CMEKCTL_TEST_GCP_KEY is not a URI")
		}
		u.Path = strings.SplitN(u.Path, "/cryptoKeyVersions/", 2)[0] + "-d" + e2eRand()
		w := real("gcp")
		w.kmsVerb(t, "create", u.String())
		var rep drillReport
		w.ok(t, &rep, "drill", "--provider", "gcp", "--cmek", u.String(), "--destroy-existing", u.String(), "--yes", "-o", "json")
		if !rep.OK {
			t.Fatalf("gcp drill: %+v", rep.Steps)
		}
	})
	t.Run("vault", func(t *testing.T) {
		addr := os.Getenv("VAULT_ADDR")
		if addr == "" {
			t.Skip("VAULT_ADDR is not set: the real Vault run is optional; TestProvidersE2E/kms/vault covers Vault's transit engine in test/vaultserver")
		}
		a, err := url.Parse(addr)
		if err != nil || a.Host == "" {
			t.Fatal("VAULT_ADDR is not a URL")
		}
		mount := os.Getenv("CMEKCTL_TEST_VAULT_MOUNT")
		if mount == "" {
			mount = "transit"
		}
		uri := "vault-transit://" + a.Host + "/" + mount + "/keys/cmekctl-drill-" + e2eRand()
		if a.Scheme == "http" {
			uri += "?tls=false"
		}
		w := real("vault")
		var rep drillReport
		w.ok(t, &rep, "drill", "--provider", "vault", "--cmek", uri, "-o", "json")
		if !rep.OK {
			t.Fatalf("vault drill: %+v", rep.Steps)
		}
	})
}
