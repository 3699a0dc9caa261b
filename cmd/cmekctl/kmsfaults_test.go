package main

// KMS faults (issue 9): a KMS that is slow, drops connections, answers 5xx
// or throttles. For AWS (local-kms) and Vault (the real transit engine in
// test/vaultserver) the faults come from internal/faultproxy, a reverse
// proxy on 127.0.0.1 between the official client and the server; for GCP
// (gcpkmsfake, gRPC) from the fake's own hooks (UNAVAILABLE, INTERNAL,
// RESOURCE_EXHAUSTED, and the server stopped).
//
// Asserted for each fault: the rotation exits 23 (kms-unavailable) after
// at most the provider's production number of attempts (counted at the
// proxy or the fake) and within a bounded time; no file of any keyring
// directory is created, replaced or touched (bytes, inode, mtime); and
// verify-destroyed says INCONCLUSIVE (exit 32), never DESTROYED or REVOKED.
// Once the fault clears, the same rotation succeeds.
//
// Short form: the production attempt counts, with backoff capped at a few
// milliseconds so the suite stays fast. Long form (CMEKCTL_LONG=1): the
// production retry policies unchanged, backoff included, so the time
// figures are what an operator waits:
//
//	CMEKCTL_LONG=1 go test -run TestKMSFaults -v ./cmd/cmekctl/

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/hashicorp/vault/api"
	"google.golang.org/grpc/codes"

	"github.com/cmekctl/cmekctl/internal/faultproxy"
	"github.com/cmekctl/cmekctl/pkg/commands"
	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms/awskmstest"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit/vaulttest"
)

func longRun() bool { return os.Getenv("CMEKCTL_LONG") != "" }

// fastBackoff is the backoff cap of the short form.
const fastBackoff = 2 * time.Millisecond

type faultCase struct {
	name  string
	set   func(t *testing.T) // start the fault
	clear func(t *testing.T)
}

type faultWorld struct {
	name     string
	reg      provider.Registry
	uri      string
	attempts int                    // production attempts per KMS call
	count    func(t *testing.T) int // requests seen by the proxy or the fake
	faults   []faultCase
	state    string
	slow     func(d time.Duration) // add latency to every request (nil: cannot)
}

func (w *faultWorld) main(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	f := &commands.Factory{IO: ios, Registry: func() provider.Registry { return w.reg }, Now: time.Now,
		Getenv: func(k string) string {
			if k == "XDG_STATE_HOME" {
				return w.state
			}
			return ""
		}}
	code := commands.Main(f, args)
	return code, out.String(), errOut.String()
}

func (w *faultWorld) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := w.main(t, args...)
	if code != 0 {
		t.Fatalf("%s: cmekctl %s: exit %d: %s %s", w.name, args[0], code, errOut, out)
	}
	return out
}

// fileStat is what a write would change.
type fileStat struct {
	ino   uint64
	mtime int64
	size  int64
	data  string
}

// dirState records every file of the keyring directories but the lock file
// (taking the lock rewrites it; it holds no key material and is not read as
// a keyring).
func dirState(t *testing.T, dirs []string) map[string]fileStat {
	m := map[string]fileStat{}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() == keyring.LockName {
				continue
			}
			p := filepath.Join(d, e.Name())
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(p)
			st := fi.Sys().(*syscall.Stat_t)
			m[p] = fileStat{ino: st.Ino, mtime: fi.ModTime().UnixNano(), size: fi.Size(), data: string(b)}
		}
	}
	return m
}

// writes counts files created, removed or changed between two states.
func writes(a, b map[string]fileStat) (int, []string) {
	var what []string
	for p, x := range a {
		y, ok := b[p]
		switch {
		case !ok:
			what = append(what, "removed "+p)
		case x != y:
			what = append(what, "changed "+p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			what = append(what, "created "+p)
		}
	}
	sort.Strings(what)
	return len(what), what
}

func verdictOf(out string) string {
	var v struct {
		Verdict string `json:"verdict"`
	}
	_ = json.Unmarshal([]byte(out), &v)
	return v.Verdict
}

// TestKMSFaults runs the fault matrix against each network provider.
func TestKMSFaults(t *testing.T) {
	for _, p := range []struct {
		name  string
		start func(t *testing.T) *faultWorld
	}{
		{"aws", awsFaultWorld},
		{"vault", vaultFaultWorld},
		{"gcp", gcpFaultWorld},
	} {
		t.Run(p.name, func(t *testing.T) {
			w := p.start(t)
			w.state = t.TempDir()
			base := t.TempDir()
			var dirs []string
			args := []string{"enable", "--cluster-id", "c1", "--region", "r1", "--cmek", w.uri}
			for i := 1; i <= 2; i++ {
				d := filepath.Join(base, fmt.Sprintf("n%d", i))
				dirs = append(dirs, d)
				args = append(args, "--keyring", d, "--node", fmt.Sprintf("n%d", i))
			}
			w.ok(t, args...)
			kr := func(extra ...string) []string {
				a := append([]string(nil), extra...)
				for _, d := range dirs {
					a = append(a, "--keyring", d)
				}
				return a
			}
			// A verdict is proof only if the KMS answered: the healthy
			// baseline is ACCESSIBLE.
			if code, out, _ := w.main(t, kr("verify-destroyed", "-o", "json")...); code != commands.ExitAccessible || verdictOf(out) != "ACCESSIBLE" {
				t.Fatalf("healthy KMS: verify-destroyed exit %d verdict %q, want 31 ACCESSIBLE", code, verdictOf(out))
			}
			for _, fc := range w.faults {
				before := dirState(t, dirs)
				fc.set(t)
				for _, verb := range [][]string{{"rotate", "store-key"}, {"rotate", "cmek"}, {"rotate", "data-key"}} {
					n0 := w.count(t)
					t0 := time.Now()
					code, out, errOut := w.main(t, kr(verb...)...)
					el := time.Since(t0)
					reqs := w.count(t) - n0
					if code != commands.ExitKMSUnavailable {
						t.Errorf("%s, %s: %s: exit %d, want %d (kms-unavailable): %s %s", w.name, fc.name, strings.Join(verb, " "), code, commands.ExitKMSUnavailable, errOut, out)
					}
					if reqs < 1 || reqs > w.attempts {
						t.Errorf("%s, %s: %s: %d requests reached the KMS, want 1..%d (one call, bounded retries)", w.name, fc.name, strings.Join(verb, " "), reqs, w.attempts)
					}
					bound := 3 * time.Second
					if longRun() {
						bound = 25 * time.Second // the longest production budget (provider.DefaultRetry.Budget 20 s) and slack
					}
					if el > bound {
						t.Errorf("%s, %s: %s took %v, over %v", w.name, fc.name, strings.Join(verb, " "), el, bound)
					}
					n, what := writes(before, dirState(t, dirs))
					if n != 0 {
						t.Errorf("%s, %s: %s wrote to the keyrings during the outage: %v", w.name, fc.name, strings.Join(verb, " "), what)
					}
					t.Logf("FIGURE %s | %s | %s | exit %d | attempts %d | %v | keyring writes %d", w.name, fc.name, strings.Join(verb, " "), code, reqs, el.Round(time.Millisecond), n)
				}
				n0 := w.count(t)
				t0 := time.Now()
				code, out, errOut := w.main(t, kr("verify-destroyed", "-o", "json")...)
				el := time.Since(t0)
				v := verdictOf(out)
				if code != commands.ExitInconclusive || v != "INCONCLUSIVE" {
					t.Errorf("%s, %s: verify-destroyed: exit %d verdict %q, want %d INCONCLUSIVE: %s", w.name, fc.name, code, v, commands.ExitInconclusive, errOut)
				}
				if v == "DESTROYED" || v == "REVOKED" || code == 0 || code == commands.ExitVerdictRevoked {
					t.Errorf("%s, %s: verify-destroyed claimed %s (exit %d) on a transient failure", w.name, fc.name, v, code)
				}
				n, what := writes(before, dirState(t, dirs))
				if n != 0 {
					t.Errorf("%s, %s: verify-destroyed wrote to the keyrings: %v", w.name, fc.name, what)
				}
				t.Logf("FIGURE %s | %s | verify-destroyed | exit %d %s | requests %d | %v | keyring writes %d", w.name, fc.name, code, v, w.count(t)-n0, el.Round(time.Millisecond), n)
				fc.clear(t)
				// The fault gone, the same rotation goes through.
				w.ok(t, kr("rotate", "store-key")...)
			}
			// A slow KMS is not an outage: 100 ms on every request, and the
			// rotation succeeds and writes.
			if w.slow != nil {
				const lat = 100 * time.Millisecond
				w.slow(lat)
				before := dirState(t, dirs)
				n0, t0 := w.count(t), time.Now()
				w.ok(t, kr("rotate", "store-key")...)
				el, reqs := time.Since(t0), w.count(t)-n0
				w.slow(0)
				if n, _ := writes(before, dirState(t, dirs)); n == 0 || reqs < 2 || el < time.Duration(reqs)*lat {
					t.Errorf("%s, 100 ms latency: rotate store-key: %d keyring writes, %d requests in %v", w.name, n, reqs, el)
				} else {
					t.Logf("FIGURE %s | 100 ms latency | rotate store-key | exit 0 | requests %d | %v | keyring writes %d", w.name, reqs, el.Round(time.Millisecond), n)
				}
			}
		})
	}
}

// ---- AWS: local-kms behind the fault proxy ----

// awsOpener reaches aws-kms URIs (AUTH=implicit, AWS_ENDPOINT) with the
// test's credentials, awskms.DefaultMaxAttempts attempts and the given
// backoff cap, through awskms's own retryer (its production classification).
func awsOpener(maxBackoff time.Duration) provider.Opener {
	return func(u *url.URL) (provider.Key, error) {
		if _, err := awskms.Open(u); err != nil { // the production URI checks
			return nil, err
		}
		client := kms.New(kms.Options{
			Region:       u.Query().Get("REGION"),
			BaseEndpoint: aws.String(u.Query().Get("AWS_ENDPOINT")),
			Credentials:  credentials.NewStaticCredentialsProvider(awskmstest.AccessKeyID, awskmstest.SecretKey, ""),
			Retryer:      awskms.NewRetryer(awskms.DefaultMaxAttempts, maxBackoff),
		})
		return awskmstest.WithSTS(awskms.New(client, strings.TrimPrefix(u.Path, "/"), u.String()), u), nil
	}
}

func awsFaultWorld(t *testing.T) *faultWorld {
	s := awskmstest.Start(t)
	px := faultproxy.Start(t, s.URL)
	arn, err := s.CreateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"REGION": {awskmstest.Region}, "AUTH": {"implicit"}, "AWS_ENDPOINT": {px.URL}, "AWS_STS_ENDPOINT": {s.STS.URL}}
	backoff := fastBackoff
	if longRun() {
		backoff = awskms.DefaultMaxBackoff
	}
	reg := registry.Default()
	reg["aws-kms"] = awsOpener(backoff)
	w := &faultWorld{name: "aws", reg: reg, uri: "aws-kms:///" + arn + "?" + q.Encode(),
		attempts: awskms.DefaultMaxAttempts, count: func(*testing.T) int { return px.Requests() }}
	w.slow = func(d time.Duration) { px.Set(faultproxy.Fault{Latency: d}) }
	w.faults = proxyFaults(px, faultproxy.AWSInternal, faultproxy.AWSUnavailable, faultproxy.AWSThrottle, "ThrottlingException")
	return w
}

func proxyFaults(px *faultproxy.Proxy, internal, unavailable, throttle faultproxy.Fault, throttleName string) []faultCase {
	set := func(f faultproxy.Fault) func(*testing.T) { return func(*testing.T) { px.Set(f) } }
	clear := func(*testing.T) { px.Set(faultproxy.Fault{}) }
	slowDrop := faultproxy.Fault{Drop: true, Latency: 50 * time.Millisecond}
	return []faultCase{
		{"connection dropped", set(faultproxy.Fault{Drop: true}), clear},
		{"500 internal error", set(internal), clear},
		{"503 unavailable", set(unavailable), clear},
		{"throttled (" + throttleName + ")", set(throttle), clear},
		{"50 ms latency, then dropped", set(slowDrop), clear},
	}
}

// ---- Vault: the real transit engine behind the fault proxy ----

func vaultFaultWorld(t *testing.T) *faultWorld {
	s := vaulttest.Start(t)
	px := faultproxy.Start(t, s.Addr)
	policy := provider.DefaultRetry
	if !longRun() {
		policy.Base, policy.Max = time.Millisecond, fastBackoff
	}
	reg := registry.Default()
	// As vaulttransit.Open does with VAULT_TOKEN (NewClientFromEnv: the
	// client's own retries off), with the address of the proxy.
	reg["vault-transit"] = func(u *url.URL) (provider.Key, error) {
		p := strings.Split(strings.Trim(u.Path, "/"), "/")
		n := len(p)
		if u.Host != px.Host || n < 3 || p[n-2] != "keys" {
			return nil, fmt.Errorf("kmsfaults: %s is not a key behind the proxy", u.Redacted())
		}
		cfg := api.DefaultConfig()
		cfg.Address = px.URL
		cfg.MaxRetries = 0
		c, err := api.NewClient(cfg)
		if err != nil {
			return nil, err
		}
		c.SetToken(s.Token)
		c.ClearNamespace()
		return vaulttransit.New(c, strings.Join(p[:n-2], "/"), p[n-1]).WithRetry(policy), nil
	}
	w := &faultWorld{name: "vault", reg: reg, uri: "vault-transit://" + px.Host + "/transit/keys/k-" + vaulttest.RandHex(4) + "?tls=false",
		attempts: provider.DefaultRetry.Attempts, count: func(*testing.T) int { return px.Requests() }, state: t.TempDir()}
	w.ok(t, "kms", "create", w.uri)
	w.slow = func(d time.Duration) { px.Set(faultproxy.Fault{Latency: d}) }
	w.faults = proxyFaults(px, faultproxy.VaultInternal, faultproxy.VaultSealed, faultproxy.VaultThrottle, "429")
	return w
}

// ---- GCP: gcpkmsfake's fault hooks ----

func gcpFaultWorld(t *testing.T) *faultWorld {
	s := gcpkmsfake.Start(t)
	policy := provider.DefaultRetry
	if !longRun() {
		policy.Base, policy.Max = time.Millisecond, fastBackoff
	}
	open := gcpkms.OpenerWithClient(s.Client(context.Background()))
	reg := registry.Default()
	reg["gcp-kms"] = func(u *url.URL) (provider.Key, error) {
		k, err := open(u)
		if err != nil {
			return nil, err
		}
		return k.(*gcpkms.Key).WithRetry(policy), nil
	}
	name := "projects/p/locations/us-east1/keyRings/cmekctl/cryptoKeys/k-faults"
	if _, err := s.CreateKey(name); err != nil {
		t.Fatal(err)
	}
	methods := []string{"GetCryptoKey", "GetCryptoKeyVersion", "ListCryptoKeyVersions", "Encrypt", "Decrypt"}
	w := &faultWorld{name: "gcp", reg: reg, uri: "gcp-kms:///" + name + "?AUTH=implicit", attempts: provider.DefaultRetry.Attempts,
		count: func(*testing.T) int {
			n := 0
			for _, m := range methods {
				n += s.Calls(m)
			}
			return n
		}}
	clear := func(*testing.T) { s.FailNext(0, codes.OK, ""); s.Throttle(0) }
	fail := func(c codes.Code, msg string) func(*testing.T) {
		return func(*testing.T) { s.FailNext(-1, c, msg) }
	}
	w.faults = []faultCase{
		{"UNAVAILABLE (503)", fail(codes.Unavailable, "The service is currently unavailable."), clear},
		{"INTERNAL (500)", fail(codes.Internal, "Internal error encountered."), clear},
		{"DEADLINE_EXCEEDED (504)", fail(codes.DeadlineExceeded, "Deadline exceeded."), clear},
		{"throttled (RESOURCE_EXHAUSTED)", func(*testing.T) { s.Throttle(-1) }, clear},
	}
	return w
}
