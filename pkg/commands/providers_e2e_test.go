package commands

// End-to-end tests of the drill, the core verbs and verify-destroyed's
// scenario matrix against every KMS provider, through Main (the CLI in
// process), each against its server on 127.0.0.1:
//   - file:  the embedded file-kms;
//   - aws:   local-kms, an independent AWS KMS emulator (awskmstest);
//   - gcp:   gcpkmsfake, a fake Cloud KMS over real loopback gRPC;
//   - vault: Vault's own transit engine in test/vaultserver (vaulttest).
//
// TestProvidersE2E logs the figures (KMS calls per verb, run time per
// provider) that docs/providers/README.md reports; run it with
//
//	go test ./pkg/commands -run TestProvidersE2E -v
//
// TestProvidersE2ERealCloud runs the drill against real keys when
// CMEKCTL_TEST_AWS_KEY, CMEKCTL_TEST_GCP_KEY or VAULT_ADDR is set.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms/awskmstest"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit/vaulttest"
	"github.com/cmekctl/cmekctl/pkg/verify"
)

// Matrix cells (issue 4's list).
const (
	cellEnabled     = "key enabled"
	cellDisabled    = "key disabled"
	cellPending     = "pending deletion"
	cellDestroyed   = "destroyed"
	cellDenied      = "access denied"
	cellUnreachable = "KMS unreachable"
	cellThrottled   = "throttled beyond the retry budget"
	cellImported    = "imported key material destroyed"
	cellOneRegion   = "one of three regions still enabled"
	cellLeftover    = "unwrapped key file left on disk"
	cellSample      = "a --sample that still decrypts"
	cellWrongPlace  = "asked in the wrong place (another endpoint, cluster or copy)"
	cellHistory     = "an earlier CMEK key still opens older wraps"
	cellStray       = "a temporary key file a killed unlock left"
)

// e2eWorld is one KMS with its server(s), fresh for one test: a registry
// for the Factory, and hooks that put a key in each state the matrix needs.
// A nil hook is a state the KMS cannot express; cannot says why.
type e2eWorld struct {
	name  string
	reg   provider.Registry
	state string // XDG_STATE_HOME (audit log)

	newKey       func(t *testing.T) string // URI of a fresh, enabled key
	specifiedURI func(t *testing.T, keyID string) string
	createURI    func(t *testing.T) string // URI for `kms create` of a new key

	hooks    map[string]func(t *testing.T, w *e2eWorld, uri string)
	imported func(t *testing.T, w *e2eWorld) (uri string, destroy func(t *testing.T))
	cannot   map[string]string
	analogue map[string]string // cells driven by the nearest analogue, and what it is
	// verdict overrides a cell's verdict where the KMS cannot prove what
	// the cell expects (Vault never proves destruction); why says why.
	verdict map[string]string
	why     map[string]string

	// requests counts the requests the server(s) have seen (nil: no server).
	requests func(t *testing.T) int
	// attempts counts the unwrap requests (Decrypt) the server has seen.
	attempts func(t *testing.T) int
	// budget is the provider's retry budget in attempts per call.
	budget int

	mu     sync.Mutex
	counts []*provider.Counting
}

// e2eFastRetry is provider.DefaultRetry's budget (attempts and time) with
// millisecond backoff, for the cells where retries run out: the verdict
// depends on the attempts running out, not on how long they wait.
var e2eFastRetry = provider.RetryPolicy{Attempts: provider.DefaultRetry.Attempts, Base: time.Millisecond,
	Max: 5 * time.Millisecond, Budget: provider.DefaultRetry.Budget}

var e2eProviders = []struct {
	name  string
	start func(t *testing.T) *e2eWorld
}{
	{"file", fileWorld},
	{"aws", awsWorld},
	{"gcp", gcpWorld},
	{"vault", vaultWorld},
}

func e2eRand() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func newWorld(t *testing.T, name string, reg provider.Registry) *e2eWorld {
	return &e2eWorld{name: name, reg: reg, state: t.TempDir(),
		hooks: map[string]func(*testing.T, *e2eWorld, string){}, cannot: map[string]string{}, analogue: map[string]string{},
		verdict: map[string]string{}, why: map[string]string{}}
}

// registry wraps every opener so that the calls of verbs that print no
// kms_calls (data, backup) are counted too.
func (w *e2eWorld) registry() provider.Registry {
	r := provider.Registry{}
	for scheme, open := range w.reg {
		r[scheme] = func(u *url.URL) (provider.Key, error) {
			k, err := open(u)
			if err != nil {
				return nil, err
			}
			c := provider.NewCounting(k)
			w.mu.Lock()
			w.counts = append(w.counts, c)
			w.mu.Unlock()
			return c, nil
		}
	}
	return r
}

func (w *e2eWorld) calls() provider.Counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s provider.Counts
	for _, c := range w.counts {
		n := c.Counts()
		s.Wrap += n.Wrap
		s.Unwrap += n.Unwrap
		s.Rewrap += n.Rewrap
		s.Describe += n.Describe
	}
	return s
}

type e2eRun struct {
	code        int
	out, errOut string
	calls       provider.Counts // counted by the registry wrapper
	requests    int             // requests the server saw (-1: no server)
}

// run runs cmekctl with args through Main.
func (w *e2eWorld) run(t *testing.T, args ...string) e2eRun {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	f := &Factory{IO: ios, Registry: w.registry, Now: time.Now, Getenv: func(k string) string {
		if k == "XDG_STATE_HOME" {
			return w.state
		}
		return ""
	}}
	before, req := w.calls(), w.reqs(t)
	code := Main(f, args)
	after := w.calls()
	r := e2eRun{code: code, out: out.String(), errOut: errOut.String(), requests: -1,
		calls: provider.Counts{Wrap: after.Wrap - before.Wrap, Unwrap: after.Unwrap - before.Unwrap,
			Rewrap: after.Rewrap - before.Rewrap, Describe: after.Describe - before.Describe}}
	if req >= 0 {
		r.requests = w.reqs(t) - req
	}
	return r
}

func (w *e2eWorld) reqs(t *testing.T) int {
	if w.requests == nil {
		return -1
	}
	return w.requests(t)
}

// ok runs args, fails the test unless it exits 0, and decodes its JSON
// output into v (when v is not nil).
func (w *e2eWorld) ok(t *testing.T, v any, args ...string) e2eRun {
	t.Helper()
	r := w.run(t, args...)
	if r.code != 0 {
		t.Fatalf("%s: cmekctl %s: exit %d\nstderr: %s\nstdout: %s", w.name, strings.Join(redactArgs(args), " "), r.code, r.errOut, r.out)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.out), v); err != nil {
			t.Fatalf("%s: cmekctl %s: output is not JSON: %v\n%s", w.name, args[0], err, r.out)
		}
	}
	return r
}

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if strings.Contains(a, "://") {
			out[i] = provider.RedactURI(a)
		}
	}
	return out
}

// enable enables CMEK for nodes n1..nN of region in fresh keyrings and
// returns their directories.
func (w *e2eWorld) enable(t *testing.T, cluster, region, uri string, nodes int) ([]string, enableReport) {
	t.Helper()
	base := t.TempDir()
	args := []string{"enable", "--cluster-id", cluster, "--region", region, "--cmek", uri, "-o", "json"}
	var dirs []string
	for i := 1; i <= nodes; i++ {
		d := filepath.Join(base, fmt.Sprintf("%s-n%d", region, i), "cmek")
		dirs = append(dirs, d)
		args = append(args, "--keyring", d, "--node", fmt.Sprintf("%s-n%d", region, i))
	}
	var rep enableReport
	w.ok(t, &rep, args...)
	return dirs, rep
}

func keyringArgs(dirs ...string) []string {
	var a []string
	for _, d := range dirs {
		a = append(a, "--keyring", d)
	}
	return a
}

// kmsVerb runs `cmekctl kms VERB URI` and returns the key's state.
func (w *e2eWorld) kmsVerb(t *testing.T, verb, uri string, extra ...string) provider.KeyState {
	t.Helper()
	var st provider.KeyState
	w.ok(t, &st, append(append([]string{"kms", verb, "-o", "json"}, extra...), uri)...)
	return st
}

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

// ---- figures ----

type e2eFigures struct {
	mu    sync.Mutex
	calls map[string]map[string]string // verb → provider → figure
	verbs []string
	times map[string]time.Duration
}

func (f *e2eFigures) add(verb, prov string, r e2eRun, json *KMSCalls) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls, f.times = map[string]map[string]string{}, map[string]time.Duration{}
	}
	if f.calls[verb] == nil {
		f.calls[verb] = map[string]string{}
		f.verbs = append(f.verbs, verb)
	}
	c := r.calls
	s := fmt.Sprintf("%dw %du %dr %dd", c.Wrap, c.Unwrap, c.Rewrap, c.Describe)
	if json == nil {
		s += " (no kms_calls)"
	}
	if r.requests >= 0 {
		s += fmt.Sprintf("; %d req", r.requests)
	}
	f.calls[verb][prov] = s
}

func (f *e2eFigures) time(prov string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.times == nil {
		f.calls, f.times = map[string]map[string]string{}, map[string]time.Duration{}
	}
	f.times[prov] = d
}

func (f *e2eFigures) log(t *testing.T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	b.WriteString("\n| verb | file | aws | gcp | vault |\n|---|---|---|---|---|\n")
	for _, v := range f.verbs {
		fmt.Fprintf(&b, "| %s |", v)
		for _, p := range []string{"file", "aws", "gcp", "vault"} {
			fmt.Fprintf(&b, " %s |", f.calls[v][p])
		}
		b.WriteString("\n")
	}
	b.WriteString("\n| provider | run time |\n|---|---|\n")
	provs := make([]string, 0, len(f.times))
	for p := range f.times {
		provs = append(provs, p)
	}
	sort.Strings(provs)
	for _, p := range provs {
		fmt.Fprintf(&b, "| %s | %.1f s |\n", p, f.times[p].Seconds())
	}
	t.Log(b.String())
}

// ---- the tests ----

// TestProvidersE2E runs, for each provider, the drill, the core verbs and
// the verify-destroyed matrix; providers run in parallel.
func TestProvidersE2E(t *testing.T) {
	figs := &e2eFigures{}
	start := time.Now()
	t.Run("kms", func(t *testing.T) {
		for _, p := range e2eProviders {
			t.Run(p.name, func(t *testing.T) {
				t.Parallel()
				begin := time.Now()
				t.Run("drill", func(t *testing.T) { testDrill(t, p.start(t), figs) })
				t.Run("verbs", func(t *testing.T) { testVerbs(t, p.start, figs) })
				t.Run("matrix", func(t *testing.T) { testMatrix(t, p.start) })
				figs.time(p.name, time.Since(begin))
			})
		}
	})
	figs.time("all (in parallel)", time.Since(start))
	figs.log(t)
}

func testDrill(t *testing.T, w *e2eWorld, figs *e2eFigures) {
	// A key that does not exist yet (AWS: an alias naming none), as an
	// operator rehearsing on a fresh test key: the drill creates it.
	uri := w.createURI(t)
	var rep drillReport
	r := w.ok(t, &rep, "drill", "--provider", w.name, "--cmek", uri, "--dir", t.TempDir(), "-o", "json")
	if !rep.OK || len(rep.Steps) != 18 {
		t.Fatalf("%s drill: ok %v, %d steps:\n%s", w.name, rep.OK, len(rep.Steps), r.out)
	}
	for i, s := range rep.Steps {
		if !s.OK {
			t.Errorf("%s drill step %d %q: expected %q, observed %q", w.name, i+1, s.Step, s.Expected, s.Observed)
		}
	}
	caps := capsOf(providerSchemes[w.name])
	if rep.Note != caps.note {
		t.Errorf("%s drill note %q, want %q", w.name, rep.Note, caps.note)
	}
	// The drill's own figures: wraps and unwraps per step.
	var wraps, unwraps int64
	for _, s := range rep.Steps {
		wraps += s.KMSCalls.Wrap
		unwraps += s.KMSCalls.Unwrap
	}
	figs.add("drill (18 steps, total)", w.name, r, &KMSCalls{})
	t.Logf("%s drill: %d steps ok; %d wraps, %d unwraps in all", w.name, len(rep.Steps), wraps, unwraps)
}

func wantCalls(t *testing.T, prov, verb string, got KMSCalls, wrap, unwrap int64) {
	t.Helper()
	if got.Wrap != wrap || got.Unwrap != unwrap {
		t.Errorf("%s %s: kms_calls %+v, want %d wrap and %d unwrap", prov, verb, got, wrap, unwrap)
	}
}

// sameCalls checks that the JSON kms_calls agree with the calls the
// registry wrapper counted.
func sameCalls(t *testing.T, prov, verb string, j KMSCalls, r e2eRun) {
	t.Helper()
	if j.Wrap != r.calls.Wrap || j.Unwrap != r.calls.Unwrap || j.Rewrap != r.calls.Rewrap || j.Describe != r.calls.Describe {
		t.Errorf("%s %s: kms_calls %+v, but the provider saw %+v", prov, verb, j, r.calls)
	}
}

func testVerbs(t *testing.T, start func(*testing.T) *e2eWorld, figs *e2eFigures) {
	w := start(t)
	p := w.name

	if p == "file" {
		// A key directory others can read is refused as a permissions problem.
		open := filepath.Join(t.TempDir(), "kms")
		if err := os.Mkdir(open, 0o755); err != nil {
			t.Fatal(err)
		}
		r := w.run(t, "kms", "create", "file-kms://"+filepath.Join(open, "k1"))
		if r.code != ExitPermissions || strings.Contains(r.errOut, "did not authenticate") {
			t.Errorf("file kms create in a 0755 directory: exit %d, %q; want exit %d", r.code, r.errOut, ExitPermissions)
		}
	}

	// kms create / describe.
	curi := w.createURI(t)
	r := w.run(t, "kms", "create", "-o", "json", curi)
	var created provider.KeyState
	if r.code != 0 || json.Unmarshal([]byte(r.out), &created) != nil || created.State != provider.StateEnabled {
		t.Fatalf("%s kms create: exit %d, %s %s", p, r.code, r.out, r.errOut)
	}
	figs.add("kms create", p, r, nil)
	var desc provider.KeyState
	r = w.ok(t, &desc, "kms", "describe", "-o", "json", curi)
	if desc.State != provider.StateEnabled || desc.PrimaryVersion != created.PrimaryVersion {
		t.Fatalf("%s kms describe: %+v, want enabled with primary %s", p, desc, created.PrimaryVersion)
	}
	figs.add("kms describe", p, r, nil)
	uri := curi
	if p == "aws" {
		// The alias named the new key; the cluster uses its ARN.
		arn := created.Details["arn"]
		if arn == "" {
			t.Fatalf("aws kms create: no arn in %+v", created.Details)
		}
		uri = strings.Replace(curi, strings.SplitN(strings.TrimPrefix(curi, "aws-kms:///"), "?", 2)[0], arn, 1)
	}

	if p == "aws" {
		// A URI with credentials works for a KMS verb, never printing them,
		// but a keyring must not record it: enable refuses, writing nothing.
		// On the command line it is refused (secrets never on argv); from
		// --cmek-file it works.
		spec := w.specifiedURI(t, strings.SplitN(strings.TrimPrefix(uri, "aws-kms:///"), "?", 2)[0])
		if r := w.run(t, "kms", "describe", "-o", "json", spec); r.code != ExitUsage || strings.Contains(r.out+r.errOut, awskmstest.SecretKey) {
			t.Errorf("aws kms describe with AUTH=specified on argv: exit %d, secret printed: %v; want exit %d", r.code, strings.Contains(r.out+r.errOut, awskmstest.SecretKey), ExitUsage)
		}
		specFile := filepath.Join(t.TempDir(), "uri.txt")
		if err := os.WriteFile(specFile, []byte(spec+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var sd provider.KeyState
		r := w.ok(t, &sd, "kms", "describe", "-o", "json", "--cmek-file", specFile)
		if sd.State != provider.StateEnabled || strings.Contains(r.out+r.errOut, awskmstest.SecretKey) {
			t.Errorf("aws kms describe with AUTH=specified: state %s; secret printed: %v", sd.State, strings.Contains(r.out+r.errOut, awskmstest.SecretKey))
		}
		dir := filepath.Join(t.TempDir(), "n1")
		r = w.run(t, "enable", "--cluster-id", "c-e2e", "--region", "r1", "--cmek-file", specFile, "--keyring", dir, "--node", "n1", "-o", "json")
		if _, err := os.Stat(dir); r.code != ExitUsage || !strings.Contains(r.errOut, "credentials") || strings.Contains(r.errOut, awskmstest.SecretKey) || err == nil {
			t.Errorf("aws enable with AUTH=specified: exit %d, stderr %q, keyring written: %v; want exit %d naming the credentials, nothing written", r.code, r.errOut, err == nil, ExitUsage)
		}
	}

	// enable: 2 nodes, 1 wrap.
	var en enableReport
	dirs := make([]string, 2)
	base := t.TempDir()
	args := []string{"enable", "--cluster-id", "c-e2e", "--region", "r1", "--cmek", uri, "-o", "json"}
	for i := range dirs {
		dirs[i] = filepath.Join(base, fmt.Sprintf("n%d", i+1), "cmek")
		args = append(args, "--keyring", dirs[i], "--node", fmt.Sprintf("n%d", i+1))
	}
	r = w.ok(t, &en, args...)
	if len(en.Nodes) != 2 {
		t.Fatalf("%s enable: %d nodes", p, len(en.Nodes))
	}
	wantCalls(t, p, "enable", en.KMSCalls, 1, 0)
	sameCalls(t, p, "enable", en.KMSCalls, r)
	figs.add("enable (2 nodes)", p, r, &en.KMSCalls)
	kr := keyringArgs(dirs...)

	// status.
	var st statusReport
	r = w.ok(t, &st, append([]string{"status", "-o", "json"}, kr...)...)
	if len(st.Nodes) != 2 || len(st.KMS) != 1 || st.KMS[0].State == nil || st.KMS[0].State.State != provider.StateEnabled {
		t.Fatalf("%s status: %s", p, r.out)
	}
	if st.KMSCalls.Describe != 1 {
		t.Errorf("%s status: kms_calls %+v, want 1 describe", p, st.KMSCalls)
	}
	sameCalls(t, p, "status", st.KMSCalls, r)
	figs.add("status", p, r, &st.KMSCalls)
	version0 := st.Nodes[0].CMEKVersion

	// rotate data-key, store-key.
	var rot rotateReport
	r = w.ok(t, &rot, append([]string{"rotate", "data-key", "-o", "json"}, kr...)...)
	wantCalls(t, p, "rotate data-key", rot.KMSCalls, 0, 1)
	sameCalls(t, p, "rotate data-key", rot.KMSCalls, r)
	figs.add("rotate data-key", p, r, &rot.KMSCalls)
	rot = rotateReport{}
	r = w.ok(t, &rot, append([]string{"rotate", "store-key", "-o", "json"}, kr...)...)
	wantCalls(t, p, "rotate store-key", rot.KMSCalls, 1, 1)
	sameCalls(t, p, "rotate store-key", rot.KMSCalls, r)
	figs.add("rotate store-key", p, r, &rot.KMSCalls)

	// kms rotate: a new primary version (AWS: new material behind the ARN).
	r = w.run(t, "kms", "rotate", "-o", "json", uri)
	var krot provider.KeyState
	if r.code != 0 || json.Unmarshal([]byte(r.out), &krot) != nil {
		t.Fatalf("%s kms rotate: exit %d %s %s", p, r.code, r.out, r.errOut)
	}
	if p != "aws" && krot.PrimaryVersion == desc.PrimaryVersion {
		t.Errorf("%s kms rotate: primary version still %s", p, krot.PrimaryVersion)
	}
	figs.add("kms rotate", p, r, nil)

	// rotate cmek: the store key re-wrapped under the new version.
	rot = rotateReport{}
	r = w.ok(t, &rot, append([]string{"rotate", "cmek", "-o", "json"}, kr...)...)
	wantCalls(t, p, "rotate cmek", rot.KMSCalls, 1, 1)
	sameCalls(t, p, "rotate cmek", rot.KMSCalls, r)
	if rot.KMSCalls.Rewrap != 0 {
		t.Errorf("%s rotate cmek: %d rewrap", p, rot.KMSCalls.Rewrap)
	}
	figs.add("rotate cmek", p, r, &rot.KMSCalls)
	st = statusReport{}
	w.ok(t, &st, append([]string{"status", "--no-kms", "-o", "json"}, kr...)...)
	if p != "aws" && (st.Nodes[0].CMEKVersion == version0 || st.Nodes[0].CMEKVersion != krot.PrimaryVersion) {
		t.Errorf("%s rotate cmek: store key wrapped by version %q (was %q), want the new primary %q", p, st.Nodes[0].CMEKVersion, version0, krot.PrimaryVersion)
	}

	// data encrypt / decrypt.
	tmp := t.TempDir()
	plain := make([]byte, 300<<10)
	_, _ = rand.Read(plain)
	in, sealed, back := filepath.Join(tmp, "in"), filepath.Join(tmp, "sealed"), filepath.Join(tmp, "back")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.ok(t, nil, "data", "encrypt", "--keyring", dirs[0], in, sealed)
	if r.calls.Unwrap != 1 || r.calls.Wrap != 0 {
		t.Errorf("%s data encrypt: %+v, want 1 unwrap", p, r.calls)
	}
	figs.add("data encrypt", p, r, nil)
	r = w.ok(t, nil, "data", "decrypt", "--keyring", dirs[0], sealed, back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, plain) {
		t.Errorf("%s data decrypt: the plaintext differs", p)
	}
	figs.add("data decrypt", p, r, nil)

	// unlock --allow-disk: 1 unwrap; a new store gets the active key with
	// old-key=plain.
	var ul unlockReport
	out := filepath.Join(t.TempDir(), "unlocked")
	r = w.ok(t, &ul, "unlock", "--keyring", dirs[0], "--out", out, "--allow-disk", "--store-path", "/mnt/data1", "-o", "json")
	wantCalls(t, p, "unlock", ul.KMSCalls, 0, 1)
	sameCalls(t, p, "unlock", ul.KMSCalls, r)
	if len(ul.Files) != 1 || ul.OldKey != "plain" {
		t.Errorf("%s unlock: files %v, old-key %s, want active.key and plain", p, ul.Files, ul.OldKey)
	}
	figs.add("unlock --allow-disk", p, r, &ul.KMSCalls)

	// backup-keys create / verify / rewrap.
	var bk backupKeysReport
	r = w.ok(t, &bk, append([]string{"backup-keys", "create", "--label", "e2e", "-o", "json"}, kr...)...)
	wantCalls(t, p, "backup-keys create", bk.KMSCalls, 1, 0)
	sameCalls(t, p, "backup-keys create", bk.KMSCalls, r)
	figs.add("backup-keys create", p, r, &bk.KMSCalls)
	bk = backupKeysReport{}
	r = w.ok(t, &bk, append([]string{"backup-keys", "verify", "-o", "json"}, kr...)...)
	if len(bk.Keys) != 1 || !bk.Keys[0].Restorable {
		t.Errorf("%s backup-keys verify: %s", p, r.out)
	}
	wantCalls(t, p, "backup-keys verify", bk.KMSCalls, 0, 1)
	sameCalls(t, p, "backup-keys verify", bk.KMSCalls, r)
	figs.add("backup-keys verify", p, r, &bk.KMSCalls)
	bk = backupKeysReport{}
	r = w.ok(t, &bk, append([]string{"backup-keys", "rewrap", "-o", "json"}, kr...)...)
	if p == "vault" {
		if bk.KMSCalls.Rewrap != 1 || bk.KMSCalls.Unwrap != 0 || bk.KMSCalls.Wrap != 0 {
			t.Errorf("vault backup-keys rewrap: kms_calls %+v, want 1 rewrap (transit rewrap)", bk.KMSCalls)
		}
	} else {
		wantCalls(t, p, "backup-keys rewrap", bk.KMSCalls, 1, 1)
	}
	sameCalls(t, p, "backup-keys rewrap", bk.KMSCalls, r)
	figs.add("backup-keys rewrap", p, r, &bk.KMSCalls)

	// backup encrypt / decrypt.
	bin, bout, bback := filepath.Join(tmp, "dump"), filepath.Join(tmp, "dump.cmek"), filepath.Join(tmp, "dump.back")
	if err := os.WriteFile(bin, plain[:100<<10], 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.ok(t, nil, append(append([]string{"backup", "encrypt", "--label", "full-1"}, kr...), bin, bout)...)
	if r.calls.Wrap != 1 {
		t.Errorf("%s backup encrypt: %+v, want 1 wrap (a fresh backup key)", p, r.calls)
	}
	figs.add("backup encrypt (full)", p, r, nil)
	r = w.ok(t, nil, append(append([]string{"backup", "decrypt"}, kr...), bout, bback)...)
	if got, _ := os.ReadFile(bback); !bytes.Equal(got, plain[:100<<10]) {
		t.Errorf("%s backup decrypt: the plaintext differs", p)
	}
	if r.calls.Unwrap != 1 {
		t.Errorf("%s backup decrypt: %+v, want 1 unwrap", p, r.calls)
	}
	figs.add("backup decrypt", p, r, nil)

	// verify-destroyed on the live cluster (the matrix's first cell, counted).
	var vr e2eVerify
	r = w.run(t, append([]string{"verify-destroyed", "-o", "json"}, kr...)...)
	if err := json.Unmarshal([]byte(r.out), &vr); err != nil || r.code != ExitAccessible {
		t.Fatalf("%s verify-destroyed: exit %d, %v\n%s", p, r.code, err, r.errOut)
	}
	sameCalls(t, p, "verify-destroyed", vr.KMSCalls, r)
	figs.add("verify-destroyed (enabled, 2 nodes, 2 backup keys)", p, r, &vr.KMSCalls)
}

type e2eVerify struct {
	Verdict  string         `json:"verdict"`
	Reason   string         `json:"reason"`
	Checks   []verify.Check `json:"checks"`
	KMSCalls KMSCalls       `json:"kms_calls"`
}

func (v e2eVerify) outcomes(check string) []string {
	var o []string
	for _, c := range v.Checks {
		if c.Check == check {
			o = append(o, c.Outcome)
		}
	}
	return o
}

// e2eCell is one cell of the matrix: set up a cluster, put its key in a
// state, and return the keyrings (and samples) to verify.
type e2eCell struct {
	name    string
	verdict string
	code    int
	setup   func(t *testing.T, w *e2eWorld) (args []string, check func(t *testing.T, v e2eVerify))
}

var verdictCodes = map[string]int{verify.Destroyed: 0, verify.Revoked: ExitVerdictRevoked, verify.Accessible: ExitAccessible, verify.Inconclusive: ExitInconclusive}

// checkProve is the name of verify-destroyed's check of a pinned key.
const checkProve = "prove CMEK key destroyed"

// hookCell: a 2-node cluster whose key is then put in a state by hook.
func hookCell(name, verdict string) e2eCell {
	return e2eCell{name: name, verdict: verdict, code: verdictCodes[verdict], setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		if h := w.hooks[name]; h != nil {
			h(t, w, uri)
		}
		return keyringArgs(dirs...), nil
	}}
}

var e2eCells = []e2eCell{
	hookCell(cellEnabled, verify.Accessible),
	hookCell(cellDisabled, verify.Revoked),
	hookCell(cellPending, verify.Revoked),
	hookCell(cellDestroyed, verify.Destroyed),
	hookCell(cellDenied, verify.Revoked),
	hookCell(cellUnreachable, verify.Inconclusive),
	hookCell(cellThrottled, verify.Inconclusive),
	{name: cellHistory, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		// Key A wraps the store key and a backup; rotate cmek --cmek B and
		// backup-keys rewrap move everything to B; B is destroyed. A still
		// opens the old wraps (kept in the history) and the backup's header.
		old := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", old, 2)
		tmp := t.TempDir()
		in, bak := filepath.Join(tmp, "dump.sql"), filepath.Join(tmp, "full.cmek")
		if err := os.WriteFile(in, []byte("INSERT INTO t VALUES (1);"), 0o600); err != nil {
			t.Fatal(err)
		}
		w.ok(t, nil, append([]string{"backup", "encrypt"}, append(keyringArgs(dirs...), in, bak)...)...)
		cur := w.newKey(t)
		w.ok(t, nil, append([]string{"rotate", "cmek", "--cmek", cur, "-o", "json"}, keyringArgs(dirs...)...)...)
		w.ok(t, nil, append([]string{"backup-keys", "rewrap", "-o", "json"}, keyringArgs(dirs...)...)...)
		w.hooks[cellDestroyed](t, w, cur)
		return append(keyringArgs(dirs...), "--sample", bak), func(t *testing.T, v e2eVerify) {
			for _, check := range []string{"unwrap replaced store-key wrap", "unwrap replaced backup-key wrap", "unwrap backup header wrap"} {
				if o := v.outcomes(check); !slices.Equal(o, []string{verify.OutAccessible}) {
					t.Errorf("%s: %v, want the earlier key to open it", check, o)
				}
			}
			if o := v.outcomes(checkProve); len(o) != 2 {
				t.Errorf("prove checks %v, want one per CMEK key (the earlier and the current)", o)
			}
			// Once the earlier key is destroyed too, nothing opens.
			w.hooks[cellDestroyed](t, w, old)
			r := w.run(t, append([]string{"verify-destroyed", "-o", "json", "--sample", bak}, keyringArgs(dirs...)...)...)
			var after e2eVerify
			if err := json.Unmarshal([]byte(r.out), &after); err != nil {
				t.Fatal(err)
			}
			want := verify.Destroyed
			if o := w.verdict[cellDestroyed]; o != "" {
				want = o
			}
			if after.Verdict != want {
				t.Errorf("both keys destroyed: %s, want %s\n%s", after.Verdict, want, checksText(after))
			}
		}
	}},
	{name: cellWrongPlace, verdict: verify.Inconclusive, code: ExitInconclusive, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		w.hooks[cellWrongPlace](t, w, uri)
		return keyringArgs(dirs...), func(t *testing.T, v e2eVerify) {
			for _, c := range v.Checks {
				if c.Outcome == verify.OutDestroyed {
					t.Errorf("%s on %s: destroyed (%s), but the key was only asked about in the wrong place", c.Check, c.Target, c.Result)
				}
			}
			if o := v.outcomes(checkProve); len(o) != 1 {
				t.Errorf("prove checks %v, want one", o)
			}
		}
	}},
	{name: cellImported, verdict: verify.Revoked, code: ExitVerdictRevoked, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri, destroy := w.imported(t, w)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		destroy(t)
		return keyringArgs(dirs...), func(t *testing.T, v e2eVerify) {
			if o := v.outcomes(checkProve); !slices.Equal(o, []string{verify.OutRevoked}) {
				t.Errorf("describe: outcomes %v, want the KMS to say the material could come back", o)
			}
			for _, c := range v.Checks {
				if c.Check == checkProve && !strings.Contains(c.Result, "recoverable") {
					t.Errorf("describe: %q does not say recoverable", c.Result)
				}
			}
		}
	}},
	{name: cellOneRegion, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		cluster := "c-" + e2eRand()
		revoke := w.hooks[cellDisabled]
		if revoke == nil {
			revoke = w.hooks[cellDenied] // Vault: a policy denying the key
		}
		var all []string
		for i, region := range []string{"r1", "r2", "r3"} {
			uri := w.newKey(t)
			dirs, _ := w.enable(t, cluster, region, uri, 1)
			all = append(all, dirs...)
			if i > 0 {
				revoke(t, w, uri)
			}
		}
		return keyringArgs(all...), func(t *testing.T, v e2eVerify) {
			var acc []string
			for _, c := range v.Checks {
				if c.Check == "unwrap store key" && c.Outcome == verify.OutAccessible {
					acc = append(acc, c.Target)
				}
			}
			if len(acc) != 1 || !strings.Contains(acc[0], "region r1") {
				t.Errorf("accessible store keys %v, want region r1's only", acc)
			}
			if o := v.outcomes("unwrap store key"); len(o) != 3 {
				t.Errorf("store-key unwraps %v, want one per region", o)
			}
		}
	}},
	{name: cellLeftover, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		w.ok(t, nil, "unlock", "--keyring", dirs[0], "--out", filepath.Join(t.TempDir(), "unlocked"), "--allow-disk", "--store-path", "/mnt/data1", "-o", "json")
		w.hooks[cellDestroyed](t, w, uri) // even with the key destroyed
		return keyringArgs(dirs...), func(t *testing.T, v e2eVerify) {
			for _, c := range v.Checks {
				if c.Outcome == verify.OutAccessible && c.Check != "search for unwrapped key files" {
					t.Errorf("check %q on %s is accessible; only the files left on disk should be", c.Check, c.Target)
				}
			}
			if o := v.outcomes("search for unwrapped key files"); slices.Index(o, verify.OutAccessible) < 0 {
				t.Errorf("search for key files: %v, want a file found", o)
			}
			want := verify.OutDestroyed
			if w.verdict[cellDestroyed] == verify.Revoked {
				want = verify.OutRevoked
			}
			if o := v.outcomes("unwrap store key"); !slices.Equal(o, []string{want}) {
				t.Errorf("store-key unwrap: %v, want %s", o, want)
			}
		}
	}},
	{name: cellStray, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		// unlock, then the temporary file a kill at unlock's rename
		// leaves: revoke must purge it with the rest of the directory. A
		// key file in a directory no record names (a hand copy) is found
		// with --unlock-dir.
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		run := filepath.Join(t.TempDir(), "run")
		w.ok(t, nil, "unlock", "--keyring", dirs[0], "--out", run, "--allow-disk", "--store-path", "/mnt/data1", "-o", "json")
		stray := filepath.Join(run, ".active.key.tmp-4242")
		copyDir := t.TempDir()
		copied := filepath.Join(copyDir, "store.key")
		for _, f := range []string{stray, copied} {
			if err := os.WriteFile(f, make([]byte, 32), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		w.ok(t, nil, append([]string{"revoke", "--kms-action", "none", "--yes", "-o", "json"}, keyringArgs(dirs...)...)...)
		if _, err := os.Lstat(stray); !os.IsNotExist(err) {
			t.Errorf("revoke left %s in the unlock directory: %v", stray, err)
		}
		w.hooks[cellDestroyed](t, w, uri)
		return append(keyringArgs(dirs...), "--unlock-dir", copyDir), func(t *testing.T, v e2eVerify) {
			var found []string
			for _, c := range v.Checks {
				if c.Outcome == verify.OutAccessible {
					found = append(found, c.Target)
				}
			}
			if !slices.Equal(found, []string{copied}) {
				t.Errorf("accessible %v, want only the key file in --unlock-dir (%s)", found, copied)
			}
		}
	}},
	{name: cellSample, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		tmp := t.TempDir()
		in, sample := filepath.Join(tmp, "in"), filepath.Join(tmp, "sample.cmek")
		if err := os.WriteFile(in, []byte("rows of a table, sealed by node 1"), 0o600); err != nil {
			t.Fatal(err)
		}
		w.ok(t, nil, "data", "encrypt", "--keyring", dirs[0], in, sample)
		// The keyrings are revoked, but the key was left as it is.
		w.ok(t, nil, append([]string{"revoke", "--kms-action", "none", "--yes", "-o", "json"}, keyringArgs(dirs...)...)...)
		return append(keyringArgs(dirs...), "--sample", sample), func(t *testing.T, v e2eVerify) {
			if o := v.outcomes("decrypt sample"); !slices.Equal(o, []string{verify.OutAccessible}) {
				t.Errorf("decrypt sample: %v, want it decrypted", o)
			}
			if o := v.outcomes("node start (unlock)"); slices.Contains(o, verify.OutAccessible) {
				t.Errorf("node start: %v, want refused by the revocation mark", o)
			}
		}
	}},
}

func testMatrix(t *testing.T, start func(*testing.T) *e2eWorld) {
	var name string
	var table []string
	for _, c := range e2eCells {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			w := start(t)
			name = w.name
			switch {
			case c.name == cellImported && w.imported == nil,
				w.cannot[c.name] != "":
				table = append(table, fmt.Sprintf("| %s | %s | not expressible: %s |", w.name, c.name, w.cannot[c.name]))
				if w.name == "vault" && (c.name == cellDisabled || c.name == cellPending) {
					// Say so, and show that cmekctl says so too.
					verb := map[string]string{cellDisabled: "disable", cellPending: "schedule-deletion"}[c.name]
					r := w.run(t, "kms", verb, w.newKey(t))
					if r.code != ExitUsage || !strings.Contains(r.errOut, "vault transit has no") || strings.Contains(r.errOut, "did not authenticate") {
						t.Errorf("vault kms %s: exit %d, %q: want a usage error (exit %d) that names the missing verb", verb, r.code, r.errOut, ExitUsage)
					}
					t.Logf("vault kms %s: exit %d: %s", verb, r.code, strings.TrimSpace(r.errOut))
				}
				return
			}
			args, check := c.setup(t, w)
			before := -1
			if w.attempts != nil {
				before = w.attempts(t)
			}
			r := w.run(t, append([]string{"verify-destroyed", "-o", "json"}, args...)...)
			c := c
			if o := w.verdict[c.name]; o != "" {
				c.verdict, c.code = o, verdictCodes[o]
				t.Logf("%s %s: %s, because %s", w.name, c.name, o, w.why[c.name])
			}
			var v e2eVerify
			if err := json.Unmarshal([]byte(r.out), &v); err != nil {
				t.Fatalf("%s %s: verify-destroyed exit %d, output not JSON: %v\nstderr: %s", w.name, c.name, r.code, err, r.errOut)
			}
			if v.Verdict != c.verdict || r.code != c.code {
				t.Errorf("%s %s: verdict %s exit %d, want %s exit %d\nreason: %s\nchecks: %s", w.name, c.name, v.Verdict, r.code, c.verdict, c.code, v.Reason, checksText(v))
			}
			if check != nil {
				check(t, v)
			}
			if c.name == cellThrottled && w.attempts != nil {
				// Every unwrap used the whole retry budget.
				n := w.attempts(t) - before
				unwraps := len(v.outcomes("unwrap store key")) + len(v.outcomes("unwrap backup key"))
				if n != unwraps*w.budget {
					t.Errorf("%s throttled: %d unwrap attempts for %d unwraps, want %d each (the retry budget)", w.name, n, unwraps, w.budget)
				}
			}
			if c.name == cellDisabled {
				// A revocation drill accepts REVOKED.
				if r := w.run(t, append([]string{"verify-destroyed", "--accept", "revoked", "-o", "json"}, args...)...); r.code != 0 {
					t.Errorf("%s disabled, --accept revoked: exit %d, want 0", w.name, r.code)
				}
			}
			note := ""
			if a := w.analogue[c.name]; a != "" {
				note = " (" + a + ")"
			}
			table = append(table, fmt.Sprintf("| %s | %s | %s, exit %d%s |", w.name, c.name, v.Verdict, r.code, note))
		})
	}
	t.Logf("%s matrix:\n%s", name, strings.Join(table, "\n"))
}

func checksText(v e2eVerify) string {
	var b strings.Builder
	for _, c := range v.Checks {
		fmt.Fprintf(&b, "\n  %s | %s | %s | %s | %s | %s", c.Target, c.Check, c.Outcome, c.Result, c.Class, c.KMSError)
	}
	return b.String()
}

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
