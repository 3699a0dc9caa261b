package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile/faultfs"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// Crash safety: every mutating operation is run once through a counting
// faultfs to learn its number of write points N; then, for every k in 1..N,
// on a fresh copy of the same keyrings, it is crashed after operation k and
// the machine rebooted, once keeping and once dropping the data that was not
// made durable. After each crash every keyring must open with the real
// filesystem and hold either the old state (byte-identical) or the new one
// (the shape of a clean run's result, with no key lost); data sealed before
// must still open; and when the operation is visibly unfinished (a journal
// is left, or a node is still old), running it again must complete it without
// doubling it.

// sig is the shape of a keyring that an operation changes.
type sig struct {
	Gen, NStore, NData, NUnlocks int
	CMEKVersion                  string
	Backups                      string // backup key IDs and their wraps' CMEK versions
	Revoked                      bool
}

func sigOf(kr *keyring.Keyring) sig {
	b := ""
	for _, k := range kr.BackupKeys {
		b += k.ID + ":"
		for _, w := range k.Wraps {
			b += w.Region + "=" + w.CMEKVersion + ","
		}
		b += ";"
	}
	return sig{Gen: kr.StoreWrap.Generation, NStore: len(kr.StoreKeys), NData: len(kr.DataKeys), NUnlocks: len(kr.Unlocks),
		CMEKVersion: kr.StoreWrap.CMEKVersion, Backups: b, Revoked: kr.Revoked != nil}
}

func keyIDs(kr *keyring.Keyring) []string {
	var ids []string
	for _, s := range kr.StoreKeys {
		ids = append(ids, "s:"+s.ID)
	}
	for _, d := range kr.DataKeys {
		ids = append(ids, "d:"+d.ID)
	}
	return ids
}

// crashStats counts what the crash loop saw, for the report.
type crashStats struct {
	points, runs, old, new, mixed, reruns, lost int
}

func TestCrashEveryWritePoint(t *testing.T) {
	for _, cc := range crashCases() {
		t.Run(cc.name, func(t *testing.T) {
			st := runCrashCase(t, cc)
			t.Logf("%s: %d write points, %d crash runs: %d left old, %d new, %d mixed across nodes, %d reruns, %d keyrings lost",
				cc.name, st.points, st.runs, st.old, st.new, st.mixed, st.reruns, st.lost)
			if st.lost != 0 {
				t.Fatalf("%d keyrings lost", st.lost)
			}
		})
	}
}

func runCrashCase(t *testing.T, cc crashCase) crashStats {
	ctx := context.Background()
	k := newKMS(t)
	var c *cluster
	if cc.enable {
		c = planCluster(t, k, "cluster-crash", cc.regions, cc.perRegion)
	} else {
		c = newCluster(t, k, "cluster-crash", cc.regions, cc.perRegion)
	}
	if cc.prep != nil {
		cc.prep(t, c)
	}
	env := k.env()
	fresh := map[string]bool{} // node dirs (relative) with no keyring in the template
	if cc.skipDirs != nil {
		for _, d := range cc.skipDirs(c) {
			rel, _ := filepath.Rel(c.base, d)
			fresh[rel] = true
		}
	}
	// openData opens data sealed before; for a revoked keyring it goes
	// around the revocation mark (the keys must still be there).
	openData := func(d string, ct []byte) ([]byte, error) {
		if !cc.revoked {
			return open(env, d, ct, stream.Options{ChunkSize: 64})
		}
		kr, err := keyring.Store{Dir: d}.Load()
		if err != nil {
			return nil, err
		}
		sl, err := keyring.NewSealer(ctx, env, kr)
		if err != nil {
			return nil, err
		}
		defer sl.Close()
		var out bytes.Buffer
		_, err = sl.Open(&out, bytes.NewReader(ct), stream.Options{ChunkSize: 64})
		return out.Bytes(), err
	}
	plain := map[string][]byte{}
	sealed := map[string][]byte{}
	before := map[string][]byte{} // raw keyring bytes
	beforeKR := map[string]*keyring.Keyring{}
	for _, d := range c.dirs() {
		rel, _ := filepath.Rel(c.base, d)
		if cc.enable || fresh[rel] {
			continue
		}
		plain[rel] = []byte("data of " + rel + " sealed before the operation")
		sealed[rel] = seal(t, env, d, plain[rel], stream.Options{ChunkSize: 64})
		before[rel], _ = os.ReadFile(filepath.Join(d, keyring.FileName))
		beforeKR[rel] = load(t, d)
	}

	// A clean run: the number of write points and the new state's shape.
	counter := faultfs.New()
	cleanBase := copyBase(t, c)
	cleanDirs := c.rebase(cleanBase)
	if err := cc.run(ctx, c, cleanDirs, counter); err != nil {
		t.Fatalf("clean run: %v", err)
	}
	n := counter.Count()
	if n == 0 {
		t.Fatal("the operation made no write")
	}
	clean := map[string]sig{}
	for _, d := range cleanDirs {
		rel, _ := filepath.Rel(cleanBase, d)
		clean[rel] = sigOf(load(t, d))
	}
	st := crashStats{points: n}

	for kk := 1; kk <= n; kk++ {
		for _, drop := range []bool{false, true} {
			st.runs++
			what := fmt.Sprintf("crash after op %d/%d (%s), drop=%v", kk, n, opAt(counter, kk), drop)
			base := copyBase(t, c)
			dirs := c.rebase(base)
			ffs := faultfs.New()
			ffs.CrashAfter(kk)
			err := cc.run(ctx, c, dirs, ffs)
			if kk < n && err == nil {
				t.Fatalf("%s: the operation reported success", what)
			}
			if kk < n && !errors.Is(err, faultfs.ErrCrashed) {
				t.Fatalf("%s: error %v does not say the disk failed", what, err)
			}
			if err := ffs.Reboot(drop); err != nil {
				t.Fatal(err)
			}

			// Every keyring opens and is old or new.
			unfinished := journalLeft(dirs)
			olds, news := 0, 0
			for _, d := range dirs {
				rel, _ := filepath.Rel(base, d)
				s := keyring.Store{Dir: d}
				if cc.enable || fresh[rel] {
					if !s.Exists() {
						olds++
						continue
					}
				}
				kr, err := s.Load()
				if err != nil {
					st.lost++
					t.Errorf("%s: keyring %s does not open: %v", what, rel, err)
					continue
				}
				switch {
				case cc.enable || fresh[rel]:
					news++
				case bytes.Equal(mustRead(t, s.Path()), before[rel]):
					olds++
				case sigOf(kr) == clean[rel] && superset(keyIDs(kr), keyIDs(beforeKR[rel])):
					news++
				default:
					st.lost++
					t.Errorf("%s: keyring %s is neither old nor new: %+v (old %+v, new %+v)", what, rel, sigOf(kr), sigOf(beforeKR[rel]), clean[rel])
					continue
				}
				if !cc.enable && !fresh[rel] {
					got, err := openData(d, sealed[rel])
					if err != nil || !bytes.Equal(got, plain[rel]) {
						st.lost++
						t.Errorf("%s: data sealed before on %s does not open: %v", what, rel, err)
					}
				}
			}
			switch {
			case olds == len(dirs):
				st.old++
			case news == len(dirs):
				st.new++
			default:
				st.mixed++
			}
			if olds > 0 {
				unfinished = true
			}
			if unfinished {
				st.reruns++
				if err := cc.run(ctx, c, dirs, faultfs.New()); err != nil {
					t.Fatalf("%s: running the operation again: %v", what, err)
				}
			}
			// Finished: every node new, exactly once; no journal; old data opens.
			if journalLeft(dirs) {
				t.Fatalf("%s: a journal is left after the operation finished", what)
			}
			for _, d := range dirs {
				rel, _ := filepath.Rel(base, d)
				kr, err := keyring.Store{Dir: d}.Load()
				if err != nil {
					st.lost++
					t.Errorf("%s: after the rerun, %s does not open: %v", what, rel, err)
					continue
				}
				if !cc.enable {
					if got := sigOf(kr); got != clean[rel] {
						t.Errorf("%s: after the rerun, %s is %+v, want %+v (done twice or not at all)", what, rel, got, clean[rel])
					}
					if fresh[rel] {
						continue
					}
					if !superset(keyIDs(kr), keyIDs(beforeKR[rel])) {
						st.lost++
						t.Errorf("%s: after the rerun, %s lost a key", what, rel)
					}
					got, err := openData(d, sealed[rel])
					if err != nil || !bytes.Equal(got, plain[rel]) {
						st.lost++
						t.Errorf("%s: after the rerun, data sealed before on %s does not open: %v", what, rel, err)
					}
				}
			}
			if !cc.revoked {
				checkRegionsConsistent(t, what, dirs)
			}
			if t.Failed() {
				return st
			}
		}
	}
	return st
}

// checkRegionsConsistent checks that the nodes of each region share one
// store-key bundle and that each node can seal and open new data.
func checkRegionsConsistent(t *testing.T, what string, dirs []string) {
	t.Helper()
	wraps := map[string][]byte{}
	for _, d := range dirs {
		kr, err := keyring.Store{Dir: d}.Load()
		if err != nil {
			continue // reported by the caller
		}
		if w, ok := wraps[kr.Region]; ok && !bytes.Equal(w, kr.StoreWrap.Wrapped) {
			t.Errorf("%s: nodes of region %s hold different store-key bundles", what, kr.Region)
		}
		wraps[kr.Region] = kr.StoreWrap.Wrapped
		if active := kr.ActiveDataKey(); active == nil {
			t.Errorf("%s: %s has no active data key", what, d)
		}
	}
}

func copyBase(t *testing.T, c *cluster) string {
	base := t.TempDir()
	copyTree(t, c.base, base)
	return base
}

func opAt(f *faultfs.FS, k int) string {
	ops := f.Ops()
	if k-1 < len(ops) {
		return string(ops[k-1].Kind)
	}
	return "?"
}

func journalLeft(dirs []string) bool {
	for _, d := range dirs {
		if _, err := os.Lstat(filepath.Join(d, keyring.JournalName)); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func superset(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
