package keyring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/internal/crdbmodel"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// crdbNode is a node of a region driven as a start script would drive it:
// unlock, cockroach start (the model of internal/crdbmodel), node started.
type crdbNode struct {
	t     *testing.T
	k     *kms
	dir   string
	out   string
	paths []string
	db    *crdbmodel.Node
}

func newCRDBNodes(t *testing.T, k *kms, c *cluster, paths ...string) []*crdbNode {
	t.Helper()
	if len(paths) == 0 {
		paths = []string{"/mnt/data1"}
	}
	var out []*crdbNode
	for i, d := range c.dirs() {
		out = append(out, &crdbNode{t: t, k: k, dir: d, out: filepath.Join(t.TempDir(), "run", string(rune('a'+i))), paths: paths,
			db: crdbmodel.NewNode(crdbmodel.V24_1, paths...)})
	}
	return out
}

// unlock runs unlock and checks every file it wrote and every value it
// printed with the model's loader and parser.
func (n *crdbNode) unlock(format string) (*keyring.UnlockResult, error) {
	n.t.Helper()
	res, err := keyring.Unlock(context.Background(), n.k.env(), keyring.Store{Dir: n.dir}, keyring.UnlockOptions{Out: n.out, AllowDisk: true, Format: format, StorePaths: n.paths})
	if err != nil {
		return nil, err
	}
	for _, f := range res.Files {
		if _, err := crdbmodel.LoadKeyFile(f, crdbmodel.V24_1); err != nil {
			n.t.Fatalf("unlock wrote a file CockroachDB cannot load: %v", err)
		}
	}
	if len(res.Flags) != len(n.paths) {
		n.t.Fatalf("unlock printed %d values for %d stores", len(res.Flags), len(n.paths))
	}
	for _, v := range res.Flags {
		sp, err := crdbmodel.ParseSpec(v)
		if err != nil {
			n.t.Fatalf("unlock printed a value CockroachDB refuses: %v", err)
		}
		if sp.Path == "*" && len(n.paths) > 1 {
			n.t.Fatalf("unlock printed path=* for a node of %d stores", len(n.paths))
		}
	}
	return res, nil
}

// restart is unlock then cockroach start; it fails the test when the node
// cannot start.
func (n *crdbNode) restart(format string) {
	n.t.Helper()
	res, err := n.unlock(format)
	if err != nil {
		n.t.Fatalf("unlock: %v", err)
	}
	if err := n.db.Start(res.Flags); err != nil {
		n.t.Fatalf("node %s does not start: %v\nflags: %q", n.dir, err, res.Flags)
	}
	for _, st := range n.db.Stores {
		if st.Active.Plain() {
			n.t.Fatalf("store %s started unencrypted", st.Path)
		}
	}
}

func (n *crdbNode) confirm() {
	n.t.Helper()
	before := n.k.total()
	if _, err := keyring.NodeStarted(context.Background(), n.k.env(), keyring.Store{Dir: n.dir}, keyring.StartedOptions{}); err != nil {
		n.t.Fatalf("node started: %v", err)
	}
	if n.k.total() != before {
		n.t.Fatal("node started made a KMS call")
	}
}

func (n *crdbNode) activeKey(path string) string { return n.db.Store(path).Active.ID }

func rotateStoreKey(t *testing.T, k *kms, c *cluster) {
	t.Helper()
	k.reset()
	if _, err := rotate(context.Background(), k.env(), c.dirs(), nil, keyring.OpRotateStoreKey, keyring.RotateOptions{}); err != nil {
		t.Fatalf("rotate store-key: %v", err)
	}
	if got := k.total(); got.Unwrap != int64(len(c.regions)) || got.Wrap != int64(len(c.regions)) {
		t.Fatalf("rotate store-key: %+v KMS calls, want 1 unwrap + 1 wrap per region", got)
	}
}

// Two and three store-key rotations between restarts: every node still
// starts, and reaches the active key.
func TestCRDBRotationsBetweenRestarts(t *testing.T) {
	for _, rotations := range []int{2, 3} {
		t.Run(string(rune('0'+rotations)), func(t *testing.T) {
			k := newKMS(t)
			c := newCluster(t, k, "c1", 1, 2)
			nodes := newCRDBNodes(t, k, c)
			for _, n := range nodes {
				n.restart("")
				n.confirm()
			}
			for range rotations {
				rotateStoreKey(t, k, c)
			}
			active := load(t, c.dirs()[0]).StoreWrap.KeyIDs[0]
			for _, n := range nodes {
				k.reset()
				n.restart("")
				if got := k.total(); got.Unwrap != 1 || got.Wrap != 0 {
					t.Fatalf("unlock: %+v KMS calls, want 1 unwrap", got)
				}
				n.confirm()
				if n.activeKey("/mnt/data1") != active {
					t.Fatalf("store runs on %s, want the active key %s", keyring.Short(n.activeKey("/mnt/data1")), keyring.Short(active))
				}
			}
			// Now every store is on the active key: the next rotation keeps only it.
			rotateStoreKey(t, k, c)
			if ids := load(t, c.dirs()[0]).StoreWrap.KeyIDs; len(ids) != 2 || ids[1] != active {
				t.Fatalf("bundle after every store moved: %d keys, want the new and %s", len(ids), keyring.Short(active))
			}
		})
	}
}

// A node that never confirms a start: it keeps starting through any number
// of rotations, and the keys it may be on stay in the bundle.
func TestCRDBNodeNeverConfirms(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c1", 1, 2)
	nodes := newCRDBNodes(t, k, c)
	confirmed, silent := nodes[0], nodes[1]
	for round := range 4 {
		confirmed.restart("")
		confirmed.confirm()
		silent.restart("")
		silent.restart("") // a crash loop: started twice from the same hand-over
		rotateStoreKey(t, k, c)
		kr := load(t, silent.dir)
		if on := silent.activeKey("/mnt/data1"); !strings.Contains(strings.Join(kr.StoreWrap.KeyIDs, ","), on) {
			t.Fatalf("round %d: the key the silent node runs on (%s) was dropped from the bundle", round, keyring.Short(on))
		}
	}
	// Once it confirms, it moves on.
	silent.confirm()
	silent.restart("")
	silent.confirm()
	silent.restart("")
	if silent.activeKey("/mnt/data1") != load(t, silent.dir).StoreWrap.KeyIDs[0] {
		t.Fatal("after confirming, the node did not reach the active key")
	}
}

// v1 to v2: the same key never changes format (refused with a hint); after
// a rotation the new key goes in v2 with the old one in v1.
func TestCRDBV1ToV2(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c1", 1, 1)
	n := newCRDBNodes(t, k, c)[0]
	n.restart(keyring.FormatCockroachV1)
	n.confirm()
	k.reset()
	_, err := n.unlock(keyring.FormatCockroachV2)
	var he *keyring.HintError
	if !errors.Is(err, keyring.ErrUsage) || !errors.As(err, &he) || !strings.Contains(he.Hint, "rotate store-key") {
		t.Fatalf("unlock --format cockroach-v2 of a key in v1: %v, want a refusal with a hint", err)
	}
	if got := k.total(); got.Unwrap != 0 {
		t.Fatalf("a refused unlock made %+v KMS calls", got)
	}
	rotateStoreKey(t, k, c)
	n.restart(keyring.FormatCockroachV2)
	if n.db.Store("/mnt/data1").Active.Type != "v2" {
		t.Fatal("the store did not move to a v2 key")
	}
	n.confirm()
	// Later unlocks keep v2 without being told.
	n.restart("")
	if kr := load(t, n.dir); kr.Store("/mnt/data1").On.Format != keyring.FormatCockroachV2 {
		t.Fatalf("store format %q, want cockroach-v2", kr.Store("/mnt/data1").On.Format)
	}
}

// Two stores: one value each, never '*', both encrypted, both tracked.
func TestCRDBTwoStores(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c1", 1, 1)
	n := newCRDBNodes(t, k, c, "/mnt/d1", "/mnt/d2")[0]
	n.restart("")
	n.confirm()
	rotateStoreKey(t, k, c)
	rotateStoreKey(t, k, c)
	n.restart("")
	n.confirm()
	active := load(t, n.dir).StoreWrap.KeyIDs[0]
	for _, p := range n.paths {
		if n.activeKey(p) != active {
			t.Fatalf("store %s is not on the active key", p)
		}
	}
	// '*' with two stores is refused before any KMS call.
	k.reset()
	_, err := keyring.Unlock(context.Background(), k.env(), keyring.Store{Dir: n.dir}, keyring.UnlockOptions{Out: n.out, AllowDisk: true, StorePaths: []string{"*", "/mnt/d2"}})
	if !errors.Is(err, keyring.ErrUsage) || k.total().Unwrap != 0 {
		t.Fatalf("'*' with two stores: %v (%+v KMS calls), want a refusal before the KMS", err, k.total())
	}
}

// Restoring an older copy of a keyring: no unlock hands a key the store
// moved off as key=, and node started with the store's real key says the
// keyring is older than the store.
func TestCRDBRestoredKeyring(t *testing.T) {
	k := newKMS(t)
	c := newCluster(t, k, "c1", 1, 1)
	n := newCRDBNodes(t, k, c)[0]
	n.restart("")
	n.confirm()
	rotateStoreKey(t, k, c)
	backup := filepath.Join(t.TempDir(), "copy")
	copyTree(t, n.dir, backup)
	n.restart("")
	n.confirm()
	rotateStoreKey(t, k, c)
	n.restart("")
	n.confirm()
	// Put the old copy back.
	data, _ := os.ReadFile(filepath.Join(backup, keyring.FileName))
	if err := os.WriteFile(filepath.Join(n.dir, keyring.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := n.unlock("")
	if err == nil {
		err = n.db.Start(res.Flags)
	}
	if err == nil {
		t.Fatal("a node on a key its restored keyring does not hold started")
	}
	if strings.Contains(err.Error(), "reactivated") {
		t.Fatalf("cmekctl handed a replaced key: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(n.dir, keyring.FileName))
	_, err = keyring.NodeStarted(context.Background(), k.env(), keyring.Store{Dir: n.dir}, keyring.StartedOptions{StorePaths: []string{"/mnt/data1"}, ActiveKeyID: n.db.ActiveKeyID("/mnt/data1")})
	var he *keyring.HintError
	if !errors.As(err, &he) || !strings.Contains(he.Hint, "restore") {
		t.Fatalf("node started with the store's real key on a restored keyring: %v, want a refusal naming the restore", err)
	}
	if after, _ := os.ReadFile(filepath.Join(n.dir, keyring.FileName)); !bytes.Equal(before, after) {
		t.Fatal("a refused node started changed the keyring")
	}
}

// A keyring written by the format-1 cmekctl (bundle of the active and the
// previous key, unlocked with both): upgraded on read, its node still
// starts, whichever of the two keys its store is on, and moves on.
func TestCRDBKeyringV1Upgrade(t *testing.T) {
	for _, onPrevious := range []bool{true, false} {
		k := newKMS(t)
		c := newCluster(t, k, "c1", 1, 1)
		n := newCRDBNodes(t, k, c)[0]
		n.restart("")
		n.confirm()
		rotateStoreKey(t, k, c)
		if !onPrevious {
			n.restart("")
		}
		// Rewrite it as format 1 wrote it: no store records.
		p := filepath.Join(n.dir, keyring.FileName)
		kr := load(t, n.dir)
		if len(kr.StoreWrap.KeyIDs) != 2 {
			t.Fatalf("bundle of %d keys, want 2 for this test", len(kr.StoreWrap.KeyIDs))
		}
		kr.Version, kr.Stores, kr.Unrecorded = 1, nil, keyring.StoreState{}
		b, _ := keyring.Marshal(kr)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		n.restart("")
		n.confirm()
		if n.activeKey("/mnt/data1") != kr.StoreWrap.KeyIDs[0] {
			t.Fatal("the upgraded node did not reach the active key")
		}
		if got, _ := os.ReadFile(p); !bytes.Contains(got, []byte(`"version": 2,`)) {
			t.Fatal("the keyring was not written back as version 2")
		}
	}
}

// Adopting an operator's key file (v1 AES-128, v2 AES-192 with a kid that is
// not hex): the store already on it starts unchanged under cmekctl, and the
// next rotation moves it to a key cmekctl made.
func TestCRDBAdoptKeyFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"v1-aes128", append(fixed("adopt-id", 32), fixed("adopt-key", 16)...)},
		{"v2-aes192", []byte(`{"keys":[{"kty":"oct","kid":"operator-key-1","alg":"cockroach-aes-192-ctr-v2","k":"` + b64(fixed("adopt-key", 24)) + `"}]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKMS(t)
			c := planCluster(t, k, "c1", 1, 1)
			n := newCRDBNodes(t, k, c)[0]
			// The operator's store runs on the key file already.
			kf := filepath.Join(t.TempDir(), "operator.key")
			if err := os.WriteFile(kf, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := n.db.Start([]string{"path=/mnt/data1,key=" + kf + ",old-key=plain"}); err != nil {
				t.Fatalf("the model refuses the operator's key file: %v", err)
			}
			id, format, key, err := keyring.ParseStoreKeyFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			req := c.regions[0].request("c1", nil)
			req.Adopt = &keyring.AdoptedKey{ID: id, Format: format, Key: key}
			k.reset()
			if _, err := keyring.Enable(context.Background(), k.env(), req); err != nil {
				t.Fatal(err)
			}
			if got := k.total(); got.Wrap != 1 || got.Unwrap != 0 {
				t.Fatalf("enable --adopt-key: %+v KMS calls, want 1 wrap", got)
			}
			n.restart("")
			if n.activeKey("/mnt/data1") != id {
				t.Fatal("the adopted store did not start on its own key")
			}
			n.confirm()
			rotateStoreKey(t, k, c)
			n.restart("")
			n.confirm()
			if got := n.activeKey("/mnt/data1"); got == id || got != load(t, n.dir).StoreWrap.KeyIDs[0] {
				t.Fatal("after rotate store-key the store is not on the key cmekctl made")
			}
			// cmekctl's own data plane works under the adopted lineage.
			sealed := seal(t, k.env(), n.dir, []byte("attack at dawn"), stream.Options{})
			if got, err := open(k.env(), n.dir, sealed, stream.Options{}); err != nil || string(got) != "attack at dawn" {
				t.Fatalf("data under an adopted region: %v", err)
			}
		})
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
