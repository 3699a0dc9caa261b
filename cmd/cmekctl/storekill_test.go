package main

// SIGKILL of the operator at every write of a rotation in a shared store
// (gofakes3), each rerun resuming with no new wrap. A proxy between the
// operator and the store counts the writes (PUTs) and, at the Nth, kills the
// operator process: before forwarding the write (a crash before it) or after
// it landed (a crash that loses the answer). No hook in cmekctl: the kill is
// real, at a real request boundary.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

// killProxy forwards to the store and kills victim at the killAt-th PUT.
type killProxy struct {
	rp      *httputil.ReverseProxy
	mu      sync.Mutex
	puts    int
	killAt  int
	forward bool // forward the killAt-th write before the kill
	victim  *os.Process
	killed  bool
}

func (k *killProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		k.mu.Lock()
		k.puts++
		hit := k.puts == k.killAt && k.victim != nil
		k.mu.Unlock()
		if hit {
			if k.forward {
				k.rp.ServeHTTP(httptest.NewRecorder(), r)
			}
			k.mu.Lock()
			k.killed = true // before the kill: the test reads it once Wait returns
			_ = k.victim.Kill()
			k.mu.Unlock()
			http.Error(w, "killed", http.StatusServiceUnavailable)
			return
		}
	}
	k.rp.ServeHTTP(w, r)
}

// wasKilled says whether the proxy killed the run.
func (k *killProxy) wasKilled() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.killed
}

func (k *killProxy) arm(at int, forward bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.puts, k.killAt, k.forward, k.victim, k.killed = 0, at, forward, nil, false
}

func storeCLI(t *testing.T, tmp string, env []string, args ...string) *exec.Cmd {
	c := cliCmd(t, tmp, args...)
	c.Env = append(c.Env, env...)
	return c
}

// killRig is gofakes3 with a killProxy in front: direct is the store's URI
// without the proxy, viaProxy through it; run runs cmekctl and makes its
// process the proxy's victim.
type killRig struct {
	tmp              string
	kp               *killProxy
	s                store.Store
	direct, viaProxy string
	env              []string
	t                *testing.T
}

func newKillRig(t *testing.T, prefix string) *killRig {
	tmp := t.TempDir()
	srv := storetest.StartS3(t, "keyrings")
	target, _ := url.Parse(srv.URL)
	kp := &killProxy{rp: httputil.NewSingleHostReverseProxy(target)}
	kp.rp.ErrorLog = log.New(io.Discard, "", 0)
	proxy := httptest.NewServer(kp)
	t.Cleanup(proxy.Close)
	g := &killRig{tmp: tmp, kp: kp, t: t, direct: srv.URI(srv.URL, prefix), viaProxy: srv.URI(proxy.URL, prefix)}
	g.env = []string{"AWS_ACCESS_KEY_ID=AKIDTESTSTORE", "AWS_SECRET_ACCESS_KEY=test-secret-not-real", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + filepath.Join(tmp, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(tmp, "none")}
	storetest.SetAWSTestEnv(t)
	s, err := store.Open(context.Background(), g.direct)
	if err != nil {
		t.Fatal(err)
	}
	g.s = s
	return g
}

// run runs cmekctl ARGS to completion: its exit code and output.
func (g *killRig) run(args ...string) (int, string) {
	c := storeCLI(g.t, g.tmp, g.env, args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	g.kp.mu.Lock()
	err := c.Start()
	g.kp.victim = c.Process
	g.kp.mu.Unlock()
	if err != nil {
		g.t.Fatal(err)
	}
	err = c.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	return 0, out.String()
}

// forceUnlock releases cluster c's lease left by a killed holder.
func (g *killRig) forceUnlock(c string) {
	var l cluster.Lease
	if body, _, err := g.s.Get(context.Background(), c+"/lease.json"); err == nil && json.Unmarshal(body, &l) == nil && !l.Released {
		g.kp.arm(0, false)
		if code, out := g.run("store", "unlock", "--store", g.direct, "--cluster-id", c, "--force", l.Token); code != 0 {
			g.t.Fatalf("%s: store unlock --force: %s", c, out)
		}
	}
}

func TestKillRotateStore(t *testing.T) {
	g := newKillRig(t, "kill")
	tmp, kp, s, direct, viaProxy, run := g.tmp, g.kp, g.s, g.direct, g.viaProxy, g.run
	kms := "file-kms://" + filepath.Join(tmp, "kms", "k1")
	if code, out := run("kms", "create", kms); code != 0 {
		t.Fatal(out)
	}
	enable := func(c string) {
		for _, r := range []string{"r1", "r2"} {
			if code, out := run("enable", "--store", direct, "--cluster-id", c, "--region", r, "--cmek", kms, "--node", r+"a", "--node", r+"b"); code != 0 {
				t.Fatalf("enable: %s", out)
			}
		}
	}
	rotateArgs := func(uri, c string, extra ...string) []string {
		return append([]string{"rotate", "store-key", "--store", uri, "--cluster-id", c, "--lease-ttl", "2s"}, extra...)
	}

	// A full run's writes: lease, intent, 4 keyrings, intent done, release.
	enable("full")
	kp.arm(0, false)
	if code, out := run(rotateArgs(viaProxy, "full")...); code != 0 {
		t.Fatal(out)
	}
	writes := kp.puts
	if writes < 8 {
		t.Fatalf("a full rotation made %d writes, want at least 8", writes)
	}
	kills := 0
	defer func() {
		if !t.Failed() && kills < writes {
			t.Errorf("%d kills in %d write points x 2, want at least %d", kills, writes, writes)
		}
	}()
	for at := 1; at <= writes; at++ {
		for _, forward := range []bool{false, true} {
			c := fmt.Sprintf("k%d-%v", at, forward)
			enable(c)
			kp.arm(at, forward)
			code, out := run(rotateArgs(viaProxy, c)...)
			if !kp.wasKilled() {
				continue // renewals shifted the count: this write did not come
			}
			kills++
			if code == 0 {
				t.Fatalf("%s: killed, yet exit 0: %s", c, out)
			}
			var before cluster.Intent
			had := readIntent(t, s, c, &before)
			recorded := had && before.State == cluster.IntentPending
			// Killed after the intent was marked done: the rotation had
			// finished, and the rerun is a new one (as after any finished
			// rotation).
			finished := had && before.State == cluster.IntentDone
			// The rerun takes over the dead holder's lease after its TTL,
			// or (every other time) after store unlock --force.
			extra := []string{"--lease-wait", "10s"}
			if at%2 == 0 {
				g.forceUnlock(c)
			}
			kp.arm(0, false)
			if code, out := run(rotateArgs(direct, c, extra...)...); code != 0 {
				t.Fatalf("%s: rerun after the kill at write %d: exit %d: %s", c, at, code, out)
			}
			checkRotated(t, s, c, recorded, finished, before)
		}
	}
}

func readIntent(t *testing.T, s store.Store, c string, in *cluster.Intent) bool {
	body, _, err := s.Get(context.Background(), c+"/intent.json")
	if err != nil {
		return false
	}
	if err := json.Unmarshal(body, in); err != nil {
		t.Fatal(err)
	}
	return true
}

// checkRotated: every keyring at generation 2 (3 when the killed run had
// finished: the rerun was a second rotation), one wrap per region shared by
// its nodes, and, when the killed run had recorded its intent, that wrap is
// the recorded one (the rerun made no new wrap).
func checkRotated(t *testing.T, s store.Store, c string, recorded, finished bool, before cluster.Intent) {
	t.Helper()
	var in cluster.Intent
	if !readIntent(t, s, c, &in) || in.State != cluster.IntentDone {
		t.Fatalf("%s: intent %+v, want done", c, in)
	}
	for _, r := range []string{"r1", "r2"} {
		var wrap []byte
		for _, n := range []string{r + "a", r + "b"} {
			kr, err := cluster.ReadKeyring(context.Background(), s, c, r, n)
			if err != nil {
				t.Fatal(err)
			}
			want := 2
			if finished {
				want = 3
			}
			if kr.StoreWrap.Generation != want || len(kr.StoreKeys) != want {
				t.Fatalf("%s %s: generation %d, %d store keys: want %d (finished before the kill: %v)", c, n, kr.StoreWrap.Generation, len(kr.StoreKeys), want, finished)
			}
			if wrap == nil {
				wrap = kr.StoreWrap.Wrapped
			} else if !bytes.Equal(wrap, kr.StoreWrap.Wrapped) {
				t.Fatalf("%s: the nodes of %s hold different wraps", c, r)
			}
			if kr.LastOp != in.ID {
				t.Fatalf("%s %s: last_op %s, want %s", c, n, kr.LastOp, in.ID)
			}
		}
		if recorded {
			if in.ID != before.ID || !bytes.Equal(before.Wraps[r].Wrapped, wrap) {
				t.Fatalf("%s: the rerun made a new wrap for %s (intent %s -> %s)", c, r, before.ID, in.ID)
			}
		}
	}
}
