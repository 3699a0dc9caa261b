package keyring_test

// The mutating operations TestCrashEveryWritePoint crashes at every write
// point (see crash_test.go).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// crashCase is a mutating operation run on a copy of the template keyrings.
type crashCase struct {
	name      string
	regions   int
	perRegion int
	enable    bool // the operation is enable: the template has no keyrings
	// prep runs once on the template (after enable, before sealing samples).
	prep func(t *testing.T, c *cluster)
	// run runs the operation on the keyrings in dirs through fsys.
	run func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error
	// skipDirs are node directories the template has no keyring for yet
	// (node add): they count as old while absent.
	skipDirs func(c *cluster) []string
	// revoked: the new state is revoked (data no longer opens through
	// OpenSealer, so the data check uses the keyring's keys directly).
	revoked bool
}

func rotateCase(name, op string, regions, perRegion int) crashCase {
	return crashCase{name: name, regions: regions, perRegion: perRegion,
		run: func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error {
			res, err := rotate(ctx, c.kms.env(), dirs, fsys, op, keyring.RotateOptions{})
			return withNodeErrors(res, err)
		}}
}

func enableCase(name string, perRegion int) crashCase {
	return crashCase{name: name, regions: 1, perRegion: perRegion, enable: true,
		run: func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error {
			rg := c.regions[0]
			req := keyring.EnableRequest{Cluster: c.id, Region: rg.name, CMEK: rg.cmek}
			for i, d := range dirs {
				req.Nodes = append(req.Nodes, keyring.EnableNode{Store: keyring.Store{Dir: d, FS: fsys}, Name: rg.nodes[i]})
			}
			res, err := keyring.Enable(ctx, c.kms.env(), req)
			return withNodeErrors(res, err)
		}}
}

func unlockCase() crashCase {
	return crashCase{name: "unlock", regions: 1, perRegion: 1,
		run: func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error {
			out := filepath.Join(filepath.Dir(filepath.Dir(dirs[0])), "out")
			_, err := keyring.Unlock(ctx, c.kms.env(), keyring.Store{Dir: dirs[0], FS: fsys}, keyring.UnlockOptions{Out: out, AllowDisk: true, StorePath: "*"})
			return err
		}}
}

// withNodeErrors joins the per-node errors of a partial result to err, so
// that a test can look for the cause (ErrPartial itself does not wrap them).
func withNodeErrors(res *keyring.Result, err error) error {
	if err == nil || res == nil {
		return err
	}
	errs := []error{err}
	for _, n := range res.Nodes {
		if n.Err != nil {
			errs = append(errs, n.Err)
		}
	}
	return errors.Join(errs...)
}

func crashCases() []crashCase {
	n := 3
	regions := 1
	if long() {
		n, regions = 5, 2
	}
	cmek := rotateCase("rotate cmek", keyring.OpRotateCMEK, regions, n)
	cmek.prep = func(t *testing.T, c *cluster) {
		// A new primary version, so the re-wrap is visible (version 1 → 2).
		for _, r := range c.regions {
			if _, err := c.kms.admin(t, r.cmek).Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return []crashCase{
		nodeAddCase(),
		revokeCase(regions, n),
		backupRewrapCase(regions, n),
		backupImportCase(regions, n),
		enableCase("enable 1 node", 1),
		enableCase(fmt.Sprintf("enable %d nodes", n), n),
		rotateCase("rotate data-key", keyring.OpRotateDataKey, regions, n),
		rotateCase("rotate store-key", keyring.OpRotateStoreKey, regions, n),
		cmek,
		unlockCase(),
	}
}

// nodeAddCase: a fourth node joins a region of three. The new node's
// keyring is the only write; a rerun after a crash that left it finishes it.
func nodeAddCase() crashCase {
	return crashCase{name: "node add", regions: 1, perRegion: 4,
		prep: func(t *testing.T, c *cluster) {
			// The template has nodes 1-3 enabled and node 4 not yet.
			if err := os.RemoveAll(c.regions[0].dirs[3]); err != nil {
				t.Fatal(err)
			}
		},
		skipDirs: func(c *cluster) []string { return c.regions[0].dirs[3:] },
		run: func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error {
			rg := c.regions[0]
			newDir := dirs[3]
			if (keyring.Store{Dir: newDir}).Exists() {
				if _, err := (keyring.Store{Dir: newDir}).Load(); err == nil {
					return nil // joined already
				}
			}
			src, err := keyring.Store{Dir: dirs[0]}.Load()
			if err != nil {
				return err
			}
			res, err := keyring.AddNodes(ctx, c.kms.env(), src, []keyring.EnableNode{{Store: keyring.Store{Dir: newDir, FS: fsys}, Name: rg.nodes[3]}})
			return withNodeErrors(res, err)
		}}
}

// revokeCase: every keyring of the group marked revoked, as revoke's
// third step does (its KMS action writes no keyring).
func revokeCase(regions, n int) crashCase {
	return crashCase{name: "revoke (mark)", regions: regions, perRegion: n,
		run: func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error {
			g, err := keyring.LoadGroup(ctx, stores(dirs, fsys), true)
			if err != nil {
				return err
			}
			defer g.Close()
			for _, node := range g.Nodes {
				if node.KR.Revoked != nil {
					continue // done by the interrupted run
				}
				if err := keyring.MarkRevoked(node.KR, "crash test", c.kms.now()); err != nil {
					return err
				}
				if err := node.Store.Save(node.KR); err != nil {
					return err
				}
			}
			return nil
		}, revoked: true}
}

// backupRewrapCase: backup keys re-wrapped under a new CMEK version.
func backupRewrapCase(regions, n int) crashCase {
	return crashCase{name: "backup-keys rewrap", regions: regions, perRegion: n,
		prep: func(t *testing.T, c *cluster) {
			ctx := context.Background()
			g, err := keyring.LoadGroup(ctx, stores(c.dirs(), nil), true)
			if err != nil {
				t.Fatal(err)
			}
			_, key, err := keyring.CreateBackupKey(ctx, c.kms.env(), g, "crash", nil)
			g.Close()
			if err != nil {
				t.Fatal(err)
			}
			keyring.Wipe(key)
			for _, r := range c.regions {
				if _, err := c.kms.admin(t, r.cmek).Rotate(ctx); err != nil {
					t.Fatal(err)
				}
			}
		},
		run: func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error {
			g, err := keyring.LoadGroup(ctx, stores(dirs, fsys), true)
			if err != nil {
				return err
			}
			defer g.Close()
			_, err = keyring.RewrapBackupKeys(ctx, c.kms.env(), g)
			return err
		}}
}

// backupImportCase: an escrowed backup key imported into every keyring.
func backupImportCase(regions, n int) crashCase {
	var escrowed []keyring.BackupKey
	return crashCase{name: "backup-keys import", regions: regions, perRegion: n,
		prep: func(t *testing.T, c *cluster) {
			// Make a backup key in a throwaway copy; import it here.
			ctx := context.Background()
			tmp := copyBase(t, c)
			g, err := keyring.LoadGroup(ctx, stores(c.rebase(tmp), nil), true)
			if err != nil {
				t.Fatal(err)
			}
			bk, key, err := keyring.CreateBackupKey(ctx, c.kms.env(), g, "escrow", nil)
			g.Close()
			if err != nil {
				t.Fatal(err)
			}
			keyring.Wipe(key)
			escrowed = []keyring.BackupKey{bk}
		},
		run: func(ctx context.Context, c *cluster, dirs []string, fsys safefile.FS) error {
			g, err := keyring.LoadGroup(ctx, stores(dirs, fsys), true)
			if err != nil {
				return err
			}
			defer g.Close()
			_, err = keyring.ImportBackupKeys(c.kms.env(), g, c.id, escrowed)
			return err
		}}
}
