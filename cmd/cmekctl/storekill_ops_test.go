package main

// SIGKILL of the operator at every write of enable --store and revoke
// --store (gofakes3 behind killProxy, as TestKillRotateStore): each rerun
// finishes what the killed run began.

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cluster"
)

// enable --store killed at each write (the cluster record, then each
// keyring), before the write and after it landed: the rerun creates the
// missing keyrings on the store key of those written (no second store key,
// no new wrap); only a kill before any keyring landed leaves nothing to
// join, and the rerun wraps afresh. A rerun that finds every keyring there
// changes nothing and exits 7, as any enable of an enabled region does.
func TestKillEnableStore(t *testing.T) {
	g := newKillRig(t, "kill-enable")
	kms := "file-kms://" + filepath.Join(g.tmp, "kms", "k1")
	if code, out := g.run("kms", "create", kms); code != 0 {
		t.Fatal(out)
	}
	nodes := []string{"n1", "n2", "n3"}
	args := func(uri, c string) []string {
		a := []string{"enable", "--store", uri, "--cluster-id", c, "--region", "r1", "--cmek", kms}
		for _, n := range nodes {
			a = append(a, "--node", n)
		}
		return a
	}
	g.kp.arm(0, false)
	if code, out := g.run(args(g.viaProxy, "full")...); code != 0 {
		t.Fatal(out)
	}
	writes := g.kp.puts
	if writes != 1+len(nodes) {
		t.Fatalf("a full enable made %d writes, want the cluster record and %d keyrings", writes, len(nodes))
	}
	for at := 1; at <= writes; at++ {
		for _, forward := range []bool{false, true} {
			c := fmt.Sprintf("e%d-%v", at, forward)
			g.kp.arm(at, forward)
			code, out := g.run(args(g.viaProxy, c)...)
			if !g.kp.wasKilled() || code == 0 {
				t.Fatalf("%s: not killed at write %d (exit %d): %s", c, at, code, out)
			}
			before := map[string][]byte{}
			for _, n := range nodes {
				if kr, err := cluster.ReadKeyring(context.Background(), g.s, c, "r1", n); err == nil {
					before[n] = kr.StoreWrap.Wrapped
				}
			}
			// Every keyring landed before the kill (the writes go out side
			// by side): the rerun finds the region enabled, changes
			// nothing, and says so (exit 7); otherwise it finishes.
			want := 0
			if len(before) == len(nodes) {
				want = 7
			}
			g.kp.arm(0, false)
			if code, out := g.run(args(g.direct, c)...); code != want {
				t.Fatalf("%s: rerun after the kill at write %d: exit %d, want %d: %s", c, at, code, want, out)
			}
			var wrap []byte
			var key string
			for _, n := range nodes {
				kr, err := cluster.ReadKeyring(context.Background(), g.s, c, "r1", n)
				if err != nil {
					t.Fatalf("%s: %s after the rerun: %v", c, n, err)
				}
				if wrap == nil {
					wrap, key = kr.StoreWrap.Wrapped, kr.ActiveStoreKey().ID
				}
				if !bytes.Equal(kr.StoreWrap.Wrapped, wrap) || kr.ActiveStoreKey().ID != key || len(kr.StoreKeys) != 1 {
					t.Fatalf("%s: %s holds another store key or wrap than its region's first node (%d store keys)", c, n, len(kr.StoreKeys))
				}
			}
			for n, w := range before {
				if !bytes.Equal(w, wrap) {
					t.Fatalf("%s: the rerun made a new wrap: %s had been written by the killed run with another", c, n)
				}
			}
		}
	}
}

// revoke --store killed at each write (the lease, each keyring's mark, the
// lease's renewal and release), before the write and after it landed: the
// rerun (taking the dead holder's lease over after its TTL, or after store
// unlock --force) marks the rest, leaves the marks already made as they
// were, and disables the key.
func TestKillRevokeStore(t *testing.T) {
	g := newKillRig(t, "kill-revoke")
	refs := []cluster.NodeRef{{Region: "r1", Node: "n1"}, {Region: "r1", Node: "n2"}, {Region: "r2", Node: "n3"}}
	setup := func(c string) string {
		kms := "file-kms://" + filepath.Join(g.tmp, "kms", c)
		if code, out := g.run("kms", "create", kms); code != 0 {
			t.Fatal(out)
		}
		for _, r := range []string{"r1", "r2"} {
			a := []string{"enable", "--store", g.direct, "--cluster-id", c, "--region", r, "--cmek", kms}
			for _, ref := range refs {
				if ref.Region == r {
					a = append(a, "--node", ref.Node)
				}
			}
			if code, out := g.run(a...); code != 0 {
				t.Fatal(out)
			}
		}
		return kms
	}
	args := func(uri, c string, extra ...string) []string {
		return append([]string{"revoke", "--store", uri, "--cluster-id", c, "--kms-action", "disable", "--yes", "--lease-ttl", "2s"}, extra...)
	}
	setup("full")
	g.kp.arm(0, false)
	if code, out := g.run(args(g.viaProxy, "full")...); code != 10 || !strings.Contains(out, "key is now DISABLED") {
		t.Fatalf("full revoke: exit %d, want 10 (no node acknowledged): %s", code, out)
	}
	writes := g.kp.puts
	if writes < 2+len(refs) {
		t.Fatalf("a full revoke made %d writes, want at least the lease, %d marks and the release", writes, len(refs))
	}
	kills := 0
	for at := 1; at <= writes; at++ {
		for _, forward := range []bool{false, true} {
			c := fmt.Sprintf("r%d-%v", at, forward)
			kms := setup(c)
			g.kp.arm(at, forward)
			code, out := g.run(args(g.viaProxy, c)...)
			if !g.kp.wasKilled() {
				continue // a renewal shifted the count: this write did not come
			}
			kills++
			if code == 0 || code == 10 {
				t.Fatalf("%s: killed, yet exit %d: %s", c, code, out)
			}
			before := map[cluster.NodeRef]time.Time{}
			for _, ref := range refs {
				if kr, err := cluster.ReadKeyring(context.Background(), g.s, c, ref.Region, ref.Node); err == nil && kr.Revoked != nil {
					before[ref] = kr.Revoked.At
				}
			}
			if at%2 == 0 {
				g.forceUnlock(c)
			}
			g.kp.arm(0, false)
			code, out = g.run(args(g.direct, c, "--lease-wait", "10s")...)
			if code != 10 || !strings.Contains(out, "key is now DISABLED") {
				t.Fatalf("%s: rerun after the kill at write %d: exit %d, want 10 and the key disabled: %s", c, at, code, out)
			}
			for _, ref := range refs {
				kr, err := cluster.ReadKeyring(context.Background(), g.s, c, ref.Region, ref.Node)
				if err != nil || kr.Revoked == nil {
					t.Fatalf("%s: %s not revoked after the rerun: %v", c, ref, err)
				}
				if at, ok := before[ref]; ok && !kr.Revoked.At.Equal(at) {
					t.Fatalf("%s: %s marked again by the rerun (%s, then %s)", c, ref, at, kr.Revoked.At)
				}
			}
			if code, out := g.run("kms", "describe", kms); code != 0 || !strings.Contains(out, "DISABLED") {
				t.Fatalf("%s: the key after the rerun: exit %d: %s", c, code, out)
			}
		}
	}
	if kills < writes {
		t.Errorf("%d kills in %d write points x 2, want at least %d", kills, writes, writes)
	}
}
