package keyring_test

import (
	"context"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/filekms"
)

// TestRotateCMEKPinsTheOldKey: a wrap written before pinning existed has
// no cmek_identity. rotate cmek unwraps it, so the old key is reachable
// then: the wrap goes to the history pinned, and once the old key is
// destroyed its KMS proves it, which an unpinned wrap never allows.
func TestRotateCMEKPinsTheOldKey(t *testing.T) {
	ctx := context.Background()
	k := newKMS(t)
	c := newCluster(t, k, "c1", 1, 2)
	dirs := c.dirs()
	old := c.regions[0].cmek
	for _, d := range dirs { // as an older cmekctl wrote it
		kr := load(t, d)
		kr.StoreWrap.CMEKIdentity = nil
		if err := (keyring.Store{Dir: d}).Save(kr); err != nil {
			t.Fatal(err)
		}
	}
	next := k.create(t, "next")
	if _, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateCMEK, keyring.RotateOptions{NewCMEK: next}); err != nil {
		t.Fatal(err)
	}
	var pin provider.KeyIdentity
	for _, d := range dirs {
		kr := load(t, d)
		if kr.History == nil || len(kr.History.StoreWraps) != 1 {
			t.Fatalf("%s: history %+v", d, kr.History)
		}
		h := kr.History.StoreWraps[0]
		if h.CMEKURI != old || len(h.CMEKIdentity) == 0 {
			t.Fatalf("%s: the replaced wrap of %s went to the history unpinned: %v", d, h.CMEKURI, h.CMEKIdentity)
		}
		if len(kr.StoreWrap.CMEKIdentity) == 0 || kr.StoreWrap.CMEKURI != next {
			t.Fatalf("%s: the new wrap is not pinned", d)
		}
		pin = h.CMEKIdentity
	}
	if _, err := k.admin(t, old).Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	key, err := k.open(old)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := provider.AsProver(key)
	proof, err := p.Prove(ctx, pin)
	if err != nil || !proof.Destroyed || proof.Mismatch != "" {
		t.Fatalf("the old key, destroyed, is not proven so through its retroactive pin: %+v %v", proof, err)
	}
	// A rotation over wraps already pinned leaves their pins as they were.
	kr := load(t, dirs[0])
	want := kr.StoreWrap.CMEKIdentity
	if _, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	kr = load(t, dirs[0])
	if got := kr.History.StoreWraps[1].CMEKIdentity; len(got) != len(want) || got[filekms.IDCreated] != want[filekms.IDCreated] {
		t.Fatalf("a pinned wrap's pin changed: %v, was %v", got, want)
	}
}

// TestRewrapPinsTheOldBackupWrap: backup-keys rewrap sends every replaced
// wrap to the history of every keyring (the first one included, whose
// backup keys the rewrap must not change in place), and pins an unpinned
// one with the key that just opened it.
func TestRewrapPinsTheOldBackupWrap(t *testing.T) {
	ctx := context.Background()
	k := newKMS(t)
	for _, nodes := range []int{1, 2} {
		c := newCluster(t, k, "c"+string(rune('0'+nodes)), 1, nodes)
		dirs := c.dirs()
		g, err := keyring.LoadGroup(ctx, stores(dirs, nil), true)
		if err != nil {
			t.Fatal(err)
		}
		bk, pt, err := keyring.CreateBackupKey(ctx, k.env(), g, "nightly", nil)
		if err != nil {
			t.Fatal(err)
		}
		keyring.Wipe(pt)
		g.Close()
		for _, d := range dirs { // as an older cmekctl wrote it
			kr := load(t, d)
			kr.BackupKeys[0].Wraps[0].CMEKIdentity = nil
			if err := (keyring.Store{Dir: d}).Save(kr); err != nil {
				t.Fatal(err)
			}
		}
		next := k.create(t, c.id+"-next")
		if _, err := rotate(ctx, k.env(), dirs, nil, keyring.OpRotateCMEK, keyring.RotateOptions{NewCMEK: next}); err != nil {
			t.Fatal(err)
		}
		g, err = keyring.LoadGroup(ctx, stores(dirs, nil), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keyring.RewrapBackupKeys(ctx, k.env(), g); err != nil {
			t.Fatal(err)
		}
		g.Close()
		for _, d := range dirs {
			kr := load(t, d)
			if kr.History == nil || len(kr.History.BackupWraps) != 1 {
				t.Fatalf("%d node(s), %s: the replaced backup-key wrap is not in the history: %+v", nodes, d, kr.History)
			}
			h := kr.History.BackupWraps[0]
			if h.BackupID != bk.ID || h.CMEKURI != c.regions[0].cmek || len(h.CMEKIdentity) == 0 {
				t.Fatalf("%d node(s), %s: history %+v (unpinned?)", nodes, d, h)
			}
			if kr.BackupKeys[0].Wraps[0].CMEKURI != next {
				t.Fatalf("%s: not rewrapped", d)
			}
		}
	}
}
