package commands

// The per-provider worlds of TestProvidersE2E: each KMS with its server(s)
// on 127.0.0.1 and the hooks that put a key in each state of the matrix.

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms/awskmstest"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit/vaulttest"
	"github.com/cmekctl/cmekctl/pkg/verify"
)

// ---- the worlds ----

func fileWorld(t *testing.T) *e2eWorld {
	w := newWorld(t, "file", registry.Default())
	dir := filepath.Join(t.TempDir(), "kms") // file-kms refuses a directory others can read
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w.createURI = func(t *testing.T) string { return "file-kms://" + filepath.Join(dir, "k-"+e2eRand()) }
	w.newKey = func(t *testing.T) string {
		uri := w.createURI(t)
		w.kmsVerb(t, "create", uri)
		return uri
	}
	keyFile := func(uri string) string { return strings.TrimPrefix(uri, "file-kms://") + ".key.json" }
	w.hooks[cellDisabled] = func(t *testing.T, w *e2eWorld, uri string) { w.kmsVerb(t, "disable", uri) }
	w.hooks[cellPending] = func(t *testing.T, w *e2eWorld, uri string) { w.kmsVerb(t, "schedule-deletion", uri) }
	w.hooks[cellDestroyed] = func(t *testing.T, w *e2eWorld, uri string) { w.kmsVerb(t, "destroy", uri, "--yes") }
	w.hooks[cellDenied] = func(t *testing.T, w *e2eWorld, uri string) {
		if err := os.Chmod(keyFile(uri), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.hooks[cellWrongPlace] = func(t *testing.T, w *e2eWorld, uri string) {
		if err := os.Rename(keyFile(uri), keyFile(uri)+".moved"); err != nil {
			t.Fatal(err)
		}
	}
	w.verdict[cellWrongPlace] = verify.Revoked
	w.why[cellWrongPlace] = "the key file is not at its path (moved, or the run is on another host): not found is never proof"
	w.analogue[cellDenied] = "file-kms has no identities; nearest analogue: the key file is readable by others (mode 0644), which file-kms refuses (REVOKED, Permissions)"
	w.hooks[cellUnreachable] = func(t *testing.T, w *e2eWorld, uri string) {
		f := keyFile(uri)
		if err := os.Rename(f, f+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(f, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w.analogue[cellUnreachable] = "file-kms has no network; nearest analogue: an I/O error reading the key file (a directory in its place), TRANSIENT"
	w.cannot[cellThrottled] = "file-kms has no request quota: nothing throttles it"
	w.cannot[cellImported] = "file-kms cannot import key material: every key is generated in place"
	return w
}

func awsWorld(t *testing.T) *e2eWorld {
	s := awskmstest.Start(t)
	// The URIs are AUTH=implicit (a keyring holds no credentials); the
	// opener gives the test's credentials, as the SDK's chain would.
	reg := registry.Default()
	reg["aws-kms"] = awskmstest.Opener(awskms.DefaultMaxBackoff)
	w := newWorld(t, "aws", reg)
	ctx := context.Background()
	w.budget = awskms.DefaultMaxAttempts
	w.requests = func(*testing.T) int { return s.Total() }
	w.attempts = func(*testing.T) int { return s.Calls("Decrypt") }
	w.createURI = func(t *testing.T) string { return s.URI("alias/cmekctl-e2e-" + e2eRand()) }
	w.specifiedURI = func(t *testing.T, keyID string) string { return s.SpecifiedURI(keyID) }
	w.newKey = func(t *testing.T) string {
		arn, err := s.CreateKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.URI(arn)
	}
	arnOf := func(t *testing.T, uri string) string {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(u.Path, "/")
	}
	// Retries running out would wait for production backoff (2 s a retry):
	// those cells keep awskms.DefaultMaxAttempts but cap backoff at 1 ms.
	fast := func(w *e2eWorld) { w.reg["aws-kms"] = awskmstest.Opener(time.Millisecond) }
	w.hooks[cellDisabled] = func(t *testing.T, w *e2eWorld, uri string) { w.kmsVerb(t, "disable", uri) }
	w.hooks[cellPending] = func(t *testing.T, w *e2eWorld, uri string) {
		w.kmsVerb(t, "schedule-deletion", uri, "--pending-days", "7")
	}
	w.hooks[cellDestroyed] = func(t *testing.T, w *e2eWorld, uri string) {
		if st := w.kmsVerb(t, "destroy", uri, "--yes"); st.State != provider.StatePendingDeletion {
			t.Fatalf("aws: kms destroy: state %s, want pending_deletion (AWS has a window)", st.State)
		}
		if err := s.ExpireDeletion(arnOf(t, uri)); err != nil {
			t.Fatal(err)
		}
	}
	w.hooks[cellDenied] = func(t *testing.T, w *e2eWorld, uri string) { s.DenyAccess(true) }
	w.hooks[cellWrongPlace] = func(t *testing.T, w *e2eWorld, uri string) {
		// The SDK's environment (AWS_ENDPOINT_URL_KMS, a profile) sends
		// the calls to another KMS, which has never heard of the key.
		other := awskmstest.Start(t)
		open := awskmstest.Opener(awskms.DefaultMaxBackoff)
		w.reg["aws-kms"] = func(u *url.URL) (provider.Key, error) {
			v := *u
			q := v.Query()
			q.Set("AWS_ENDPOINT", other.URL)
			v.RawQuery = q.Encode()
			return open(&v)
		}
	}
	w.verdict[cellWrongPlace] = verify.Inconclusive
	w.why[cellWrongPlace] = "the endpoint asked is not the pinned one: nothing it says is about the key"
	// AWS only (TestAWSCallerInAnotherAccount): the credentials are now
	// another account's, as STS GetCallerIdentity says.
	w.hooks[hookOtherAccount] = func(t *testing.T, w *e2eWorld, uri string) { s.STS.SetAccount(otherAccount) }
	w.hooks[hookOwnAccount] = func(t *testing.T, w *e2eWorld, uri string) { s.STS.SetAccount(awskmstest.Account) }
	w.hooks[cellUnreachable] = func(t *testing.T, w *e2eWorld, uri string) { s.Stop(); fast(w) }
	w.hooks[cellThrottled] = func(t *testing.T, w *e2eWorld, uri string) { s.Throttle(true); fast(w) }
	w.imported = func(t *testing.T, w *e2eWorld) (string, func(*testing.T)) {
		arn, err := s.CreateImportedKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.URI(arn), func(t *testing.T) {
			if _, err := s.Client().DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(arn)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func gcpWorld(t *testing.T) *e2eWorld {
	s := gcpkmsfake.Start(t)
	client := s.Client(context.Background())
	reg := registry.Default()
	reg["gcp-kms"] = gcpkms.OpenerWithClient(client)
	w := newWorld(t, "gcp", reg)
	// Retries running out keep the attempts, with short backoff.
	fast := func(w *e2eWorld) {
		w.reg["gcp-kms"] = func(u *url.URL) (provider.Key, error) {
			cfg, err := gcpkms.ParseURI(u)
			if err != nil {
				return nil, err
			}
			return gcpkms.New(client, cfg.KeyName, cfg.URI).WithRetry(e2eFastRetry), nil
		}
	}
	w.budget = provider.DefaultRetry.Attempts
	methods := []string{"GetKeyRing", "CreateKeyRing", "CreateCryptoKey", "GetCryptoKey", "GetCryptoKeyVersion", "ListCryptoKeyVersions",
		"CreateCryptoKeyVersion", "UpdateCryptoKeyPrimaryVersion", "UpdateCryptoKeyVersion", "DestroyCryptoKeyVersion",
		"RestoreCryptoKeyVersion", "Encrypt", "Decrypt"}
	w.requests = func(*testing.T) int {
		n := 0
		for _, m := range methods {
			n += s.Calls(m)
		}
		return n
	}
	w.attempts = func(*testing.T) int { return s.Calls("Decrypt") }
	name := func() string { return "projects/p/locations/us-east1/keyRings/cmekctl/cryptoKeys/k-" + e2eRand() }
	w.createURI = func(t *testing.T) string { return "gcp-kms:///" + name() + "?AUTH=implicit" }
	w.newKey = func(t *testing.T) string {
		n := name()
		if _, err := s.CreateKey(n); err != nil {
			t.Fatal(err)
		}
		return "gcp-kms:///" + n + "?AUTH=implicit"
	}
	keyName := func(uri string) string {
		return strings.TrimPrefix(strings.SplitN(uri, "?", 2)[0], "gcp-kms:///")
	}
	w.hooks[cellDisabled] = func(t *testing.T, w *e2eWorld, uri string) { w.kmsVerb(t, "disable", uri) }
	w.hooks[cellPending] = func(t *testing.T, w *e2eWorld, uri string) { w.kmsVerb(t, "schedule-deletion", uri) }
	w.hooks[cellDestroyed] = func(t *testing.T, w *e2eWorld, uri string) {
		if st := w.kmsVerb(t, "destroy", uri, "--yes"); st.State != provider.StatePendingDeletion {
			t.Fatalf("gcp: kms destroy: state %s, want pending_deletion (Cloud KMS has a window)", st.State)
		}
		if err := s.DestroyKeyNow(keyName(uri)); err != nil {
			t.Fatal(err)
		}
	}
	w.hooks[cellDenied] = func(t *testing.T, w *e2eWorld, uri string) { s.DenyAccess(true) }
	w.hooks[cellWrongPlace] = func(t *testing.T, w *e2eWorld, uri string) {
		// Another Cloud KMS endpoint (or emulator) that has no such key.
		w.reg["gcp-kms"] = gcpkms.OpenerWithClient(gcpkmsfake.Start(t).Client(context.Background()))
	}
	w.verdict[cellWrongPlace] = verify.Revoked
	w.why[cellWrongPlace] = "a missing GCP key is NOT_FOUND, never proof (Cloud KMS deletes no key, only versions' material)"
	w.hooks[cellUnreachable] = func(t *testing.T, w *e2eWorld, uri string) { s.Stop(); fast(w) }
	w.hooks[cellThrottled] = func(t *testing.T, w *e2eWorld, uri string) { s.Throttle(-1); fast(w) }
	w.imported = func(t *testing.T, w *e2eWorld) (string, func(*testing.T)) {
		n := name()
		v, err := s.CreateKey(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetReimportEligible(v, true); err != nil {
			t.Fatal(err)
		}
		return "gcp-kms:///" + n + "?AUTH=implicit", func(t *testing.T) {
			if err := s.DestroyKeyNow(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func vaultWorld(t *testing.T) *e2eWorld {
	s := vaulttest.Start(t)
	reg := registry.Default()
	reg["vault-transit"] = s.Opener()
	w := newWorld(t, "vault", reg)
	w.budget = provider.DefaultRetry.Attempts
	sum := func(t *testing.T, match func(string) bool) int {
		m, err := s.Counts()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for k, v := range m {
			if match(k) {
				n += v
			}
		}
		return n
	}
	w.requests = func(t *testing.T) int { return sum(t, func(string) bool { return true }) }
	w.attempts = func(t *testing.T) int { return sum(t, func(k string) bool { return strings.Contains(k, " decrypt/") }) }
	w.createURI = func(t *testing.T) string { return s.URI("k-" + e2eRand()) }
	w.newKey = func(t *testing.T) string {
		uri := w.createURI(t)
		w.kmsVerb(t, "create", uri)
		return uri
	}
	nameOf := func(uri string) string {
		p := strings.SplitN(uri, "?", 2)[0]
		return p[strings.LastIndex(p, "/")+1:]
	}
	w.cannot[cellDisabled] = "Vault transit has no disabled state: `cmekctl kms disable` refuses and points to a policy (the access-denied cell is that policy)"
	w.cannot[cellPending] = "Vault transit has no scheduled deletion: `cmekctl kms schedule-deletion` refuses; destroy deletes at once"
	w.cannot[cellImported] = "a deleted transit key leaves no record that its material was imported (BYOK), so cmekctl cannot tell; while the key exists Describe reports it recoverable (vaulttransit TestDescribe, admin_test.go)"
	w.hooks[cellDestroyed] = func(t *testing.T, w *e2eWorld, uri string) {
		if st := w.kmsVerb(t, "destroy", uri, "--yes"); st.State != provider.StateDestroyed {
			t.Fatalf("vault: kms destroy: state %s, want destroyed", st.State)
		}
	}
	w.hooks[cellWrongPlace] = func(t *testing.T, w *e2eWorld, uri string) {
		// The key's address now reaches another Vault cluster (rebuilt,
		// failed over to a cluster without the key, or VAULT_ADDR).
		other := vaulttest.Start(t)
		w.reg["vault-transit"] = func(u *url.URL) (provider.Key, error) {
			v := *u
			v.Host = other.Host()
			return other.Opener()(&v)
		}
	}
	w.verdict[cellWrongPlace] = verify.Inconclusive
	w.why[cellWrongPlace] = "the Vault cluster asked is not the pinned one (sys/health cluster_id)"
	w.verdict[cellDestroyed] = verify.Revoked
	w.why[cellDestroyed] = "a deleted transit key reads 404 like one that never existed, and transit/restore brings it back: never proof"
	w.hooks[cellDenied] = func(t *testing.T, w *e2eWorld, uri string) {
		n := nameOf(uri)
		for _, p := range []string{"keys/" + n, "encrypt/" + n, "decrypt/" + n, "rewrap/" + n} {
			if err := s.Deny(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	fast := func(w *e2eWorld) { w.reg["vault-transit"] = s.OpenerWithRetry(e2eFastRetry) }
	w.hooks[cellUnreachable] = func(t *testing.T, w *e2eWorld, uri string) {
		s.Stop()
		w.requests, w.attempts = nil, nil
		fast(w)
	}
	w.hooks[cellThrottled] = func(t *testing.T, w *e2eWorld, uri string) {
		if err := s.Fault("", 429, 0, "rate limit quota exceeded"); err != nil {
			t.Fatal(err)
		}
		fast(w)
	}
	return w
}
