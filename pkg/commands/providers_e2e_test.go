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
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider"
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
