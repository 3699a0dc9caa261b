package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile/faultfs"
)

// Disk faults: ENOSPC on create and write, EIO on fsync, EACCES on rename,
// EIO on a directory fsync, injected at every operation of that kind of every
// mutating operation (one node, so that one fault stops the whole change).
// The operation must fail with the errno in its error chain, report no
// success, and leave the previous keyring byte-identical, with no temporary
// file left; the same operation then succeeds once the disk is healthy.
// Over several nodes (long form) a fault stops one node's write: the others
// may be done, and every keyring must open.
// A directory fsync fails only after its rename: there the keyring may
// already be the new one, which must still open; the error must surface all
// the same.

type diskFault struct {
	kind  faultfs.Kind
	errno syscall.Errno
}

var diskFaults = []diskFault{
	{faultfs.Create, syscall.ENOSPC},
	{faultfs.Write, syscall.ENOSPC},
	{faultfs.Fsync, syscall.EIO},
	{faultfs.Rename, syscall.EACCES},
	{faultfs.SyncDir, syscall.EIO},
	{faultfs.Mkdir, syscall.EACCES},
}

func TestDiskFaultsEveryPoint(t *testing.T) {
	n := 1
	cases := []crashCase{
		enableCase("enable", n),
		rotateCase("rotate data-key", keyring.OpRotateDataKey, 1, n),
		rotateCase("rotate store-key", keyring.OpRotateStoreKey, 1, n),
		rotateCase("rotate cmek", keyring.OpRotateCMEK, 1, n),
		unlockCase(),
	}
	if long() {
		cases = append(cases, rotateCase("rotate data-key 3 nodes", keyring.OpRotateDataKey, 1, 3))
	}
	total := 0
	for _, cc := range cases {
		t.Run(cc.name, func(t *testing.T) {
			total += runDiskFaults(t, cc)
		})
	}
	t.Logf("%d injected faults, every one reported and the keyring intact", total)
}

func runDiskFaults(t *testing.T, cc crashCase) int {
	ctx := context.Background()
	k := newKMS(t)
	var c *cluster
	if cc.enable {
		c = planCluster(t, k, "cluster-faults", cc.regions, cc.perRegion)
	} else {
		c = newCluster(t, k, "cluster-faults", cc.regions, cc.perRegion)
	}
	counter := faultfs.New()
	if err := cc.run(ctx, c, c.rebase(copyBase(t, c)), counter); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	injected := 0
	for _, df := range diskFaults {
		m := counter.CountKind(df.kind)
		for nth := 1; nth <= m; nth++ {
			injected++
			what := string(df.kind) + " #" + strconv.Itoa(nth) + " fails with " + df.errno.Error()
			base := copyBase(t, c)
			dirs := c.rebase(base)
			before := map[string][]byte{}
			for _, d := range dirs {
				before[d], _ = os.ReadFile(filepath.Join(d, keyring.FileName))
			}
			f := faultfs.New()
			f.FailNth(df.kind, nth, df.errno)
			err := cc.run(ctx, c, dirs, f)
			if err == nil {
				t.Fatalf("%s: the operation reported success", what)
			}
			if !errors.Is(err, df.errno) {
				t.Fatalf("%s: error %q does not carry the cause", what, err)
			}
			if got := f.CountKind(df.kind); got > m {
				t.Fatalf("%s: %d %s operations, more than a clean run's %d: something was retried", what, got, df.kind, m)
			}
			for _, d := range dirs {
				now, rerr := os.ReadFile(filepath.Join(d, keyring.FileName))
				switch {
				case df.kind == faultfs.SyncDir || df.kind == faultfs.Mkdir && cc.enable:
					// The rename may have happened: old or new, but readable.
					if rerr == nil {
						if _, err := (keyring.Store{Dir: d}).Load(); err != nil {
							t.Fatalf("%s: keyring %s does not open: %v", what, d, err)
						}
					}
				case cc.perRegion > 1 && !bytes.Equal(now, before[d]):
					// Several nodes: the fault stops one node's write;
					// the others may be done, and must open.
					if _, err := (keyring.Store{Dir: d}).Load(); err != nil {
						t.Fatalf("%s: keyring %s does not open: %v", what, d, err)
					}
				case cc.name == "unlock" && !bytes.Equal(now, before[d]):
					// unlock saves its intent (a pending record of the
					// directory) before it writes a key: that and nothing
					// else may have changed.
					kr, err := (keyring.Store{Dir: d}).Load()
					if err != nil || len(kr.Unlocks) != 1 || !kr.Unlocks[0].Pending {
						t.Fatalf("%s: keyring %s changed beyond the pending unlock record: %v", what, d, err)
					}
				case !bytes.Equal(now, before[d]):
					t.Fatalf("%s: keyring %s changed", what, d)
				}
				// No temporary file is left behind, and nothing was
				// retried after the failed fsync (the temporary file is gone).
				ents, _ := os.ReadDir(d)
				for _, e := range ents {
					if !slices.Contains([]string{keyring.FileName, keyring.LockName, keyring.JournalName}, e.Name()) {
						t.Fatalf("%s: %s left in %s", what, e.Name(), d)
					}
				}
			}
			// A failed operation is never retried on the same file, and a
			// file whose fsync failed is never renamed into place.
			ops := f.Ops()
			for i, op := range ops {
				if op.Err == nil {
					continue
				}
				for _, later := range ops[i+1:] {
					if later.Path == op.Path && later.Kind == op.Kind || later.Kind == faultfs.Rename && later.Old == op.Path {
						t.Fatalf("%s: %s was retried or trusted after it failed: %v", what, op.Path, later)
					}
				}
			}
			// Healthy again: an unfinished operation completes.
			unfinished := journalLeft(dirs)
			for _, d := range dirs {
				now, _ := os.ReadFile(filepath.Join(d, keyring.FileName))
				if cc.enable && now == nil || !cc.enable && bytes.Equal(now, before[d]) {
					unfinished = true
				}
			}
			if unfinished {
				if err := cc.run(ctx, c, dirs, faultfs.New()); err != nil {
					t.Fatalf("%s: the operation on a healthy disk: %v", what, err)
				}
			}
		}
	}
	return injected
}
