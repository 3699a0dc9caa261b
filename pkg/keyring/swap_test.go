package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// Swaps: key material moved to where it does not belong is rejected by the
// AAD binding, never by luck. Both clusters and both regions share ONE CMEK
// key, so nothing but the binding tells them apart.

type swapWorld struct {
	k    *kms
	env  keyring.Env
	dirs []string // every node of both clusters
}

func newSwapWorld(t *testing.T) *swapWorld {
	k := newKMS(t)
	uri := k.create(t, "shared")
	w := &swapWorld{k: k, env: k.env()}
	base := t.TempDir()
	for _, cl := range []string{"cluster-a", "cluster-b"} {
		for _, rg := range []string{"region-1", "region-2"} {
			req := keyring.EnableRequest{Cluster: cl, Region: rg, CMEK: uri}
			for _, n := range []string{"node-1", "node-2"} {
				d := filepath.Join(base, cl, rg, n)
				w.dirs = append(w.dirs, d)
				req.Nodes = append(req.Nodes, keyring.EnableNode{Store: keyring.Store{Dir: d}, Name: n})
			}
			if _, err := keyring.Enable(context.Background(), k.env(), req); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

type tally struct{ tried, rejected int }

func (ty *tally) report(t *testing.T, what string) {
	t.Logf("%s: %d of %d rejected", what, ty.rejected, ty.tried)
	if ty.tried == 0 || ty.rejected != ty.tried {
		t.Fatalf("%s: %d of %d rejected, want all", what, ty.rejected, ty.tried)
	}
}

// A store-key bundle presented for another region or cluster fails to
// unwrap with a MISUSE-class error: directly, and as a whole keyring copied
// to another region or cluster and relabelled.
func TestSwapStoreKeyBundle(t *testing.T) {
	w := newSwapWorld(t)
	ctx := context.Background()
	var direct, copied tally
	for _, from := range w.dirs {
		src := load(t, from)
		for _, to := range w.dirs {
			dst := load(t, to)
			if src.ClusterID == dst.ClusterID && src.Region == dst.Region {
				continue // same region: the bundle is shared on purpose
			}
			direct.tried++
			b, err := keyring.UnwrapBundle(ctx, w.env, dst.ClusterID, dst.Region, src.StoreWrap)
			if err == nil {
				b.Wipe()
				t.Errorf("bundle of %s/%s unwrapped as %s/%s", src.ClusterID, src.Region, dst.ClusterID, dst.Region)
			} else if provider.Classify(err) == provider.Misuse {
				direct.rejected++
			} else {
				t.Errorf("bundle swap: %v is not MISUSE", err)
			}
			// The whole keyring copied to the other region or cluster.
			copied.tried++
			kr := load(t, from)
			kr.ClusterID, kr.Region, kr.Node = dst.ClusterID, dst.Region, dst.Node
			d := filepath.Join(t.TempDir(), "moved")
			s, err := keyring.Store{Dir: d}.Prepare()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Save(kr); err != nil {
				t.Fatal(err)
			}
			sl, err := keyring.OpenSealer(ctx, w.env, s)
			if err == nil {
				sl.Close()
				t.Errorf("keyring of %s opened as %s", from, to)
			} else if provider.Classify(err) == provider.Misuse {
				copied.rejected++
			} else {
				t.Errorf("keyring swap: %v is not MISUSE", err)
			}
		}
	}
	direct.report(t, "store-key bundle unwrapped for another region or cluster")
	copied.report(t, "keyring copied to another region or cluster")

	// A bundle relabelled with another generation fails too.
	kr := load(t, w.dirs[0])
	sw := kr.StoreWrap
	sw.Generation++
	if _, err := keyring.UnwrapBundle(ctx, w.env, kr.ClusterID, kr.Region, sw); provider.Classify(err) != provider.Misuse {
		t.Fatalf("bundle with a changed generation: %v", err)
	}
}

// A data key copied from another node of the same region (same store key,
// so only the binding differs) fails with ErrForeign: its wrapped bytes
// alone, or its whole entry.
func TestSwapDataKey(t *testing.T) {
	w := newSwapWorld(t)
	ctx := context.Background()
	var ty tally
	for _, from := range w.dirs {
		src := load(t, from)
		for _, to := range w.dirs {
			dst := load(t, to)
			if from == to || src.ClusterID != dst.ClusterID || src.Region != dst.Region {
				continue
			}
			for _, mode := range []string{"wrapped bytes", "whole entry"} {
				ty.tried++
				kr := load(t, to)
				a := kr.ActiveDataKey()
				if mode == "wrapped bytes" {
					a.Wrapped = src.ActiveDataKey().Wrapped
				} else {
					*a = *src.ActiveDataKey()
				}
				dir := filepath.Join(t.TempDir(), "n")
				s := keyring.Store{Dir: dir}
				s, _ = s.Prepare()
				defer s.Close()
				if err := s.Save(kr); err != nil {
					t.Fatal(err)
				}
				sl, err := keyring.OpenSealer(ctx, w.env, s)
				if err == nil {
					sl.Close()
					t.Errorf("data key of %s (%s) accepted on %s", from, mode, to)
				} else if errors.Is(err, keyring.ErrForeign) {
					ty.rejected++
				} else {
					t.Errorf("data key swap: %v is not ErrForeign", err)
				}
			}
		}
	}
	ty.report(t, "data key copied from another node")
}

// Data sealed on one node does not open on any other, even with its header
// rewritten to name the other node; a header naming another data key of the
// same node fails authentication with no plaintext released.
func TestSwapDataFile(t *testing.T) {
	w := newSwapWorld(t)
	ctx := context.Background()
	plain := bytes.Repeat([]byte("secret row "), 50)
	sealed := map[string][]byte{}
	for _, d := range w.dirs {
		sealed[d] = seal(t, w.env, d, plain, stream.Options{})
	}
	var ty tally
	for _, from := range w.dirs {
		for _, to := range w.dirs {
			if from == to {
				continue
			}
			src, dst := load(t, from), load(t, to)
			relabelled := bytes.Replace(sealed[from], []byte(fmt.Sprintf(`"cluster_id":%q,"region":%q,"node":%q`, src.ClusterID, src.Region, src.Node)),
				[]byte(fmt.Sprintf(`"cluster_id":%q,"region":%q,"node":%q`, dst.ClusterID, dst.Region, dst.Node)), 1)
			if bytes.Equal(relabelled, sealed[from]) {
				t.Fatal("header relabelling did not apply") // names have equal lengths, so the header length holds
			}
			for _, data := range [][]byte{sealed[from], relabelled} {
				ty.tried++
				out, err := open(w.env, to, data, stream.Options{})
				switch {
				case err == nil:
					t.Errorf("data of %s opened on %s", from, to)
				case len(out) > 0:
					t.Errorf("data of %s: %d bytes of plaintext released on %s", from, len(out), to)
				case errors.Is(err, keyring.ErrForeign) || errors.Is(err, stream.ErrAuth):
					ty.rejected++
				default:
					t.Errorf("data swap: %v is neither ErrForeign nor ErrAuth", err)
				}
			}
		}
	}
	ty.report(t, "data file opened on another node")

	// Another data key of the same node named in the header.
	d := w.dirs[0]
	old := load(t, d).ActiveDataKey().ID
	if _, err := rotate(ctx, w.env, []string{d}, nil, keyring.OpRotateDataKey, keyring.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh := seal(t, w.env, d, plain, stream.Options{})
	active := load(t, d).ActiveDataKey().ID
	swapped := bytes.Replace(fresh, []byte(active), []byte(old), 1)
	out, err := open(w.env, d, swapped, stream.Options{})
	if !errors.Is(err, stream.ErrAuth) || len(out) != 0 {
		t.Fatalf("header naming the retired key: %v, %d bytes out; want ErrAuth and nothing", err, len(out))
	}
}
