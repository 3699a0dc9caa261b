package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/internal/faultproxy"
	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

type fixture struct {
	kms   *kms
	st    *counted
	cmek  map[string]string
	nodes map[string][]string
}

// enabled is a cluster "c1" of the regions given, n nodes each, in a
// directory store.
func enabled(t *testing.T, n int, regions ...string) *fixture {
	t.Helper()
	f := &fixture{kms: newKMS(t), st: count(dirStore(t)), cmek: map[string]string{}, nodes: map[string][]string{}}
	for _, r := range regions {
		f.cmek[r] = f.kms.create(t, "key-"+r)
		f.nodes[r] = nodeNames(r+"-n", n)
		if _, err := cluster.Enable(context.Background(), f.st, f.kms.env(), "c1", r, f.cmek[r], f.nodes[r]); err != nil {
			t.Fatal(err)
		}
	}
	f.kms.reset()
	f.st.reset()
	return f
}

func (f *fixture) unlock(t *testing.T, host, region, node string) (*cluster.UnlockResult, error) {
	t.Helper()
	return cluster.Unlock(context.Background(), f.st, f.kms.env(), cluster.UnlockOptions{
		Cluster: "c1", Region: region, Node: node,
		Cache:  filepath.Join(host, "cache"),
		Unlock: keyring.UnlockOptions{Out: filepath.Join(host, "out"), AllowDisk: true, StorePaths: []string{"/mnt/d1"}},
	})
}

func rotate(f *fixture, op string) cluster.RotateOptions {
	return cluster.RotateOptions{Cluster: "c1", Op: op, By: "test", Lease: cluster.LeaseOptions{Holder: "test"}}
}

// A node's start: 1 store read + 1 KMS unwrap + 1 status write.
func TestUnlockCounts(t *testing.T) {
	f := enabled(t, 2, "r1")
	host := t.TempDir()
	res, err := f.unlock(t, host, "r1", "r1-n1")
	if err != nil {
		t.Fatal(err)
	}
	if c := f.st.counts(); c["get"] != 1 || c["create"]+c["replace"] != 1 || f.st.total() != 2 {
		t.Fatalf("first start: store requests %v, want 1 get + 1 status write", c)
	}
	if k := f.kms.total(); k.Unwrap != 1 || k.Wrap != 0 {
		t.Fatalf("KMS calls %+v, want 1 unwrap", k)
	}
	if _, err := os.Stat(res.Key); err != nil {
		t.Fatalf("the active key file: %v", err)
	}
	f.st.reset()
	if _, err := f.unlock(t, host, "r1", "r1-n1"); err != nil {
		t.Fatal(err)
	}
	if c := f.st.counts(); c["get"] != 1 || c["replace"] != 1 || f.st.total() != 2 {
		t.Fatalf("second start: store requests %v, want 1 get + 1 replace", c)
	}
	st, err := cluster.ReadStatus(context.Background(), f.st, "c1", "r1", "r1-n1")
	if err != nil || st.Handed == nil || st.Handed.StoreKeyID != res.StoreKey {
		t.Fatalf("status %+v %v, want the handed store key %s", st, err, res.StoreKey)
	}
}

func TestEnableRefusesExisting(t *testing.T) {
	f := enabled(t, 2, "r1")
	_, err := cluster.Enable(context.Background(), f.st, f.kms.env(), "c1", "r1", f.cmek["r1"], []string{"r1-n1", "r1-n2"})
	if !errors.Is(err, keyring.ErrAlreadyEnabled) {
		t.Fatalf("enable over existing keyrings: %v", err)
	}
	if k := f.kms.total(); k.Wrap+k.Unwrap != 0 {
		t.Fatalf("a refused enable made KMS calls: %+v", k)
	}
}

// An enable that stopped part way (some keyrings written) is finished by
// the same command: the missing nodes join the region's store key, with one
// unwrap and no wrap.
func TestEnableResumes(t *testing.T) {
	f := enabled(t, 2, "r1")
	res, err := cluster.Enable(context.Background(), f.st, f.kms.env(), "c1", "r1", f.cmek["r1"], []string{"r1-n1", "r1-n2", "r1-n3"})
	if err != nil || !res.Resumed {
		t.Fatalf("enable with one node missing: %v", err)
	}
	if k := f.kms.total(); k.Wrap != 0 || k.Unwrap != 1 {
		t.Fatalf("KMS %+v, want 1 unwrap, no wrap", k)
	}
	a, _ := cluster.ReadKeyring(context.Background(), f.st, "c1", "r1", "r1-n1")
	b, err := cluster.ReadKeyring(context.Background(), f.st, "c1", "r1", "r1-n3")
	if err != nil || a.ActiveStoreKey().ID != b.ActiveStoreKey().ID {
		t.Fatalf("the joined node: %v, store key %v", err, b)
	}
	if _, err := f.unlock(t, t.TempDir(), "r1", "r1-n3"); err != nil {
		t.Fatalf("the joined node cannot start: %v", err)
	}
}

type crashAt string

// A crash at every step resumes with the recorded wraps: no new wrap.
func TestRotateCrashResumes(t *testing.T) {
	for _, step := range []string{"leased", "planned", "intent", "applied"} {
		t.Run(step, func(t *testing.T) {
			f := enabled(t, 3, "r1", "r2")
			o := rotate(f, keyring.OpRotateStoreKey)
			o.Lease.TTL = 200 * time.Millisecond
			o.Lease.Wait = time.Second
			o.Crash = func(s string) {
				if s == step {
					panic(crashAt(s))
				}
			}
			func() {
				defer func() {
					if r := recover(); r != crashAt(step) {
						t.Fatalf("recovered %v", r)
					}
				}()
				_, _ = cluster.Rotate(context.Background(), f.st, f.kms.env(), o)
			}()
			wrapsBefore := f.kms.total().Wrap
			o.Crash = nil
			res, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), o)
			if err != nil {
				t.Fatal(err)
			}
			k := f.kms.total()
			switch step {
			case "leased", "planned":
				// Nothing recorded: a fresh rotation (the first run's wraps
				// were never used).
				if res.Resumed {
					t.Fatal("resumed, with no intent recorded")
				}
			default:
				if !res.Resumed || k.Wrap != wrapsBefore {
					t.Fatalf("resumed=%v, wraps %d -> %d: want a resume with no new wrap", res.Resumed, wrapsBefore, k.Wrap)
				}
			}
			for _, r := range f.nodes {
				for _, n := range r {
					kr, err := cluster.ReadKeyring(context.Background(), f.st, "c1", strings.Split(n, "-")[0], n)
					if err != nil || kr.StoreWrap.Generation != 2 {
						t.Fatalf("%s: generation %d %v, want 2", n, kr.StoreWrap.Generation, err)
					}
				}
			}
		})
	}
}

// The store refuses writes mid-rotation: nothing is half-applied that a
// rerun does not finish, and the rerun makes no new wrap.
func TestRotateStoreDownMidway(t *testing.T) {
	f := enabled(t, 4, "r1", "r2")
	f.st.failAfter = 3
	_, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey))
	if !errors.Is(err, keyring.ErrPartial) {
		t.Fatalf("rotation with the store refusing: %v, want ErrPartial", err)
	}
	wraps := f.kms.total().Wrap
	f.st.failAfter = 0
	res, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey))
	if err != nil || !res.Resumed {
		t.Fatalf("rerun: %v resumed=%v", err, res.Resumed)
	}
	if f.kms.total().Wrap != wraps {
		t.Fatal("the rerun made a new wrap")
	}
	done := 0
	for _, r := range res.Nodes {
		if r.Action == "already done" {
			done++
		}
	}
	if done != 3 {
		t.Fatalf("%d nodes already done, want the 3 the first run wrote", done)
	}
	// Another rotation may now start: the intent is done.
	if _, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, keyring.OpRotateDataKey)); err != nil {
		t.Fatal(err)
	}
}

// A keyring write whose answer was lost is recognised by its last_op.
func TestRotateLostAnswer(t *testing.T) {
	f := enabled(t, 2, "r1")
	f.st.loseAnswer, f.st.loseN = "/keyrings/r1/r1-n2", 1
	res, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, keyring.OpRotateDataKey))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range res.Nodes {
		if r.Node == "r1-n2" && r.Action == "rotated" && strings.Contains(r.Detail, "answer was lost") {
			found = true
		}
	}
	if !found {
		t.Fatalf("results %+v: want r1-n2 rotated, its lost answer detected", res.Nodes)
	}
	kr, _ := cluster.ReadKeyring(context.Background(), f.st, "c1", "r1", "r1-n2")
	if len(kr.DataKeys) != 2 {
		t.Fatalf("%d data keys, want 2 (rotated once, not twice)", len(kr.DataKeys))
	}
}

func TestPendingIntentOfAnotherOp(t *testing.T) {
	f := enabled(t, 2, "r1")
	f.st.failAfter = 1
	_, _ = cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey))
	f.st.failAfter = 0
	_, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, keyring.OpRotateDataKey))
	if !errors.Is(err, keyring.ErrPending) || !strings.Contains(err.Error(), "rotate store-key") {
		t.Fatalf("another op over a pending intent: %v, want ErrPending naming it", err)
	}
}

// The store down at a node's start: the cache serves if fresh and not
// revoked, and says so; otherwise the start fails with ErrUnavailable.
func TestUnlockOutage(t *testing.T) {
	f := enabled(t, 1, "r1")
	host := t.TempDir()
	if _, err := f.unlock(t, host, "r1", "r1-n1"); err != nil {
		t.Fatal(err)
	}
	f.st.down = true
	res, err := f.unlock(t, host, "r1", "r1-n1")
	if err != nil || !res.FromCache {
		t.Fatalf("store down, fresh cache: %v %+v", err, res)
	}
	_, err = cluster.Unlock(context.Background(), f.st, f.kms.env(), cluster.UnlockOptions{
		Cluster: "c1", Region: "r1", Node: "r1-n1", Cache: filepath.Join(host, "cache"), MaxStale: time.Hour,
		Now:    func() time.Time { return time.Now().Add(2 * time.Hour) },
		Unlock: keyring.UnlockOptions{Out: filepath.Join(host, "out"), AllowDisk: true, StorePaths: []string{"/mnt/d1"}},
	})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "--max-stale") {
		t.Fatalf("store down, stale cache: %v", err)
	}
	if _, err := f.unlock(t, t.TempDir(), "r1", "r1-n1"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("store down, no cache: %v", err)
	}
}

// The store refuses connections mid-rotation (a real S3 server behind a
// proxy that resets every write after the first few): nothing is
// half-applied that a rerun does not finish, with no new wrap.
func TestRotateStoreRefusesConnections(t *testing.T) {
	srv := storetest.StartS3(t, "keyrings")
	storetest.SetAWSTestEnv(t)
	p := faultproxy.Start(t, srv.URL)
	s, err := store.Open(context.Background(), srv.URI(p.URL, "refuse"))
	if err != nil {
		t.Fatal(err)
	}
	k := newKMS(t)
	for _, r := range []string{"r1", "r2"} {
		if _, err := cluster.Enable(context.Background(), s, k.env(), "c1", r, k.create(t, r), nodeNames(r+"-n", 3)); err != nil {
			t.Fatal(err)
		}
	}
	k.reset()
	// Lease and intent go through, then 2 keyrings, then every write is reset.
	p.Set(faultproxy.Fault{Drop: true, Method: http.MethodPut, Skip: 4})
	o := cluster.RotateOptions{Cluster: "c1", Op: keyring.OpRotateStoreKey, By: "a", Lease: cluster.LeaseOptions{Holder: "a", TTL: time.Second, Wait: 5 * time.Second}}
	_, err = cluster.Rotate(context.Background(), s, k.env(), o)
	if !errors.Is(err, keyring.ErrPartial) {
		t.Fatalf("rotation with the store refusing connections: %v, want ErrPartial", err)
	}
	wraps := k.total().Wrap
	p.Set(faultproxy.Fault{})
	res, err := cluster.Rotate(context.Background(), s, k.env(), o)
	if err != nil || !res.Resumed {
		t.Fatalf("rerun: %v (resumed %v)", err, res != nil && res.Resumed)
	}
	if k.total().Wrap != wraps {
		t.Fatalf("the rerun made %d new wraps", k.total().Wrap-wraps)
	}
	for _, r := range []string{"r1", "r2"} {
		for _, n := range nodeNames(r+"-n", 3) {
			kr, err := cluster.ReadKeyring(context.Background(), s, "c1", r, n)
			if err != nil || kr.StoreWrap.Generation != 2 {
				t.Fatalf("%s: %v generation %d", n, err, kr.StoreWrap.Generation)
			}
		}
	}
}

// Two operators apply the same intent: the second takes over while the
// first is between recording the intent and writing the keyrings (its
// lease forced away). Both finish; the keyrings are rotated once.
func TestTwoOperatorsSameIntent(t *testing.T) {
	f := enabled(t, 3, "r1")
	ctx := context.Background()
	var second *keyring.Result
	var secondErr error
	o := rotate(f, keyring.OpRotateStoreKey)
	o.Crash = func(step string) {
		if step != "intent" {
			return
		}
		body, _, err := f.st.Get(ctx, "c1/lease.json")
		if err != nil {
			t.Fatal(err)
		}
		var l cluster.Lease
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		if _, err := cluster.ForceRelease(ctx, f.st, "c1", l.Token); err != nil {
			t.Fatal(err)
		}
		second, secondErr = cluster.Rotate(ctx, f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey))
	}
	first, err := cluster.Rotate(ctx, f.st, f.kms.env(), o)
	if err != nil && !strings.Contains(err.Error(), "taken over") {
		t.Fatalf("first operator: %v", err)
	}
	if secondErr != nil || !second.Resumed {
		t.Fatalf("second operator: %v (resumed %v)", secondErr, second != nil && second.Resumed)
	}
	if first != nil {
		for _, r := range first.Nodes {
			if r.Action != "already done" && !strings.Contains(r.Detail, "another operator applied the same intent") {
				t.Fatalf("first operator after the second finished: %+v", r)
			}
		}
	}
	if k := f.kms.total(); k.Wrap != 1 {
		t.Fatalf("%d wraps, want 1", k.Wrap)
	}
	for _, n := range f.nodes["r1"] {
		kr, _ := cluster.ReadKeyring(ctx, f.st, "c1", "r1", n)
		if kr.StoreWrap.Generation != 2 {
			t.Fatalf("%s: generation %d, want 2", n, kr.StoreWrap.Generation)
		}
	}
}

// The node agent on etcd wakes on the watch: a revocation is purged and
// acknowledged long before its next tick.
func TestAgentWatchEtcd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := store.Open(ctx, "etcd://"+storetest.StartEtcd(t)+"/agent")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := newKMS(t)
	o, res := enableAndUnlock(ctx, t, s, k)
	acked := make(chan struct{})
	go cluster.Agent(ctx, s, o, time.Hour, func(r *cluster.AgentResult, err error) {
		if err == nil && r.Acked && !r.Unchanged { // the pass that acknowledged
			close(acked)
		}
	})
	time.Sleep(300 * time.Millisecond) // the watch is set up
	revs, err := cluster.MarkRevoked(ctx, s, cluster.RevokeOptions{Cluster: "c1", Reason: "drill", Lease: cluster.LeaseOptions{Holder: "op"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not wake on the watch")
	}
	if _, err := os.Stat(res.Key); !os.IsNotExist(err) {
		t.Fatalf("the key file is still there: %v", err)
	}
	if un, err := cluster.WaitAcks(ctx, s, "c1", revs, time.Second, 100*time.Millisecond); err != nil || len(un) != 0 {
		t.Fatalf("acks: %v %v", un, err)
	}
}

// rotate data-key --if-older-than skips young keys, with no KMS call and no
// intent when nothing is due.
func TestRotateIfOlderThan(t *testing.T) {
	f := enabled(t, 2, "r1")
	o := rotate(f, keyring.OpRotateDataKey)
	o.Rotate.IfOlderThan = 720 * time.Hour
	res, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Nodes {
		if r.Action != "skipped" {
			t.Fatalf("%+v, want skipped", r)
		}
	}
	if k := f.kms.total(); k.Unwrap != 0 {
		t.Fatalf("%d unwraps for nothing due", k.Unwrap)
	}
	kr, _ := cluster.ReadKeyring(context.Background(), f.st, "c1", "r1", "r1-n1")
	if len(kr.DataKeys) != 1 {
		t.Fatalf("%d data keys, want 1", len(kr.DataKeys))
	}
	o.Rotate.IfOlderThan = 0
	if _, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), o); err != nil {
		t.Fatal(err)
	}
	kr, _ = cluster.ReadKeyring(context.Background(), f.st, "c1", "r1", "r1-n1")
	if len(kr.DataKeys) != 2 {
		t.Fatalf("%d data keys after a rotation, want 2", len(kr.DataKeys))
	}
}

// The dry run's KMS calls are the ones the rotation makes; it writes nothing.
func TestPlanRotateMatches(t *testing.T) {
	f := enabled(t, 2, "r1", "r2")
	plan, err := cluster.PlanRotate(context.Background(), f.st, rotate(f, keyring.OpRotateStoreKey), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c := f.st.counts(); c["create"]+c["replace"] != 0 {
		t.Fatalf("the plan wrote: %v", c)
	}
	wrap, unwrap := plan.Calls()
	if _, err := cluster.Rotate(context.Background(), f.st, f.kms.env(), rotate(f, keyring.OpRotateStoreKey)); err != nil {
		t.Fatal(err)
	}
	if k := f.kms.total(); int(k.Wrap) != wrap || int(k.Unwrap) != unwrap || wrap != 2 {
		t.Fatalf("plan wrap %d unwrap %d; rotation %+v", wrap, unwrap, k)
	}
}
