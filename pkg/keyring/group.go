package keyring

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Env is what operations need from outside: a way to open CMEK keys (the
// caller wraps them to count calls or audit them) and a clock.
type Env struct {
	Open func(uri string) (provider.Key, error)
	Now  func() time.Time
	// Progress, if set, is told when a node is done (for progress bars).
	Progress func(region, node string, err error)
}

func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

// KMSError is a CMEK key's failure, with the key's URI and what was tried.
type KMSError struct {
	URI string
	Op  string
	Err error
}

func (e *KMSError) Error() string {
	return fmt.Sprintf("%s with CMEK key %s: %v", e.Op, provider.RedactURI(e.URI), e.Err)
}
func (e *KMSError) Unwrap() error { return e.Err }

// Node is one loaded, locked keyring.
type Node struct {
	Store Store
	KR    *Keyring
	lock  *safefile.Lock
}

// Group is the keyrings an operation works on, locked, grouped by region.
type Group struct {
	Cluster string
	Nodes   []*Node
	Regions []string // sorted
}

// ByRegion returns the nodes of a region, in the order given.
func (g *Group) ByRegion(region string) []*Node {
	var out []*Node
	for _, n := range g.Nodes {
		if n.KR.Region == region {
			out = append(out, n)
		}
	}
	return out
}

// Close releases every lock.
func (g *Group) Close() {
	for _, n := range g.Nodes {
		if n.lock != nil {
			n.lock.Release()
			n.lock = nil
		}
		n.Store.Close()
		n.Store.dir = nil
	}
}

// LoadGroup locks (in path order, so two commands never deadlock) and loads
// every keyring. Keyrings of different clusters, two keyrings of the same
// node, or nodes of one region whose store-key bundles are of unrelated
// lineages are refused. With write false no lock is taken.
func LoadGroup(ctx context.Context, stores []Store, write bool) (*Group, error) {
	if len(stores) == 0 {
		return nil, errors.New("no keyring given: pass --keyring DIR (or a config file)")
	}
	sorted := slices.Clone(stores)
	slices.SortFunc(sorted, func(a, b Store) int { return cmp.Compare(a.Dir, b.Dir) })
	g := &Group{}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()
	seenDir := map[string]bool{}
	for _, s := range sorted {
		if seenDir[s.Dir] {
			return nil, fmt.Errorf("keyring %s is given twice", s.Dir)
		}
		seenDir[s.Dir] = true
		if !s.Exists() {
			if _, err := s.Load(); err != nil {
				return nil, err
			}
		}
		// The directory is opened once: every file of it, from the lock on,
		// is reached through that descriptor (see Store.Open).
		s, err := s.Open()
		if err != nil {
			return nil, err
		}
		n := &Node{Store: s}
		if write {
			l, err := s.Lock(ctx)
			if err != nil {
				s.Close()
				return nil, err
			}
			n.lock = l
		}
		kr, err := s.Load()
		if err != nil {
			if n.lock != nil {
				n.lock.Release() // not yet in g.Nodes: release it here
			}
			s.Close()
			return nil, err
		}
		n.KR = kr
		g.Nodes = append(g.Nodes, n)
	}
	// Keep the caller's order for output.
	order := map[string]int{}
	for i, s := range stores {
		order[s.Dir] = i
	}
	slices.SortFunc(g.Nodes, func(a, b *Node) int { return order[a.Store.Dir] - order[b.Store.Dir] })
	g.Cluster = g.Nodes[0].KR.ClusterID
	nodes := map[string]string{}
	for _, n := range g.Nodes {
		if n.KR.ClusterID != g.Cluster {
			return nil, fmt.Errorf("%w: %s is of cluster %q, %s of cluster %q: give keyrings of one cluster per command", ErrForeign, g.Nodes[0].Store.Dir, g.Cluster, n.Store.Dir, n.KR.ClusterID)
		}
		key := n.KR.Region + "/" + n.KR.Node
		if other, dup := nodes[key]; dup {
			return nil, fmt.Errorf("%w: %s and %s are both node %q of region %q", ErrForeign, other, n.Store.Dir, n.KR.Node, n.KR.Region)
		}
		nodes[key] = n.Store.Dir
		if !slices.Contains(g.Regions, n.KR.Region) {
			g.Regions = append(g.Regions, n.KR.Region)
		}
	}
	slices.Sort(g.Regions)
	ok = true
	return g, nil
}

// CheckNotRevoked refuses a group with a revoked keyring.
func (g *Group) CheckNotRevoked() error {
	for _, n := range g.Nodes {
		if r := n.KR.Revoked; r != nil {
			return fmt.Errorf("%s: %w on %s (%s): CMEK access was revoked; nothing can be unlocked, decrypted or rotated", n.Store.Dir, ErrRevoked, r.At.Format(time.RFC3339), r.Reason)
		}
	}
	return nil
}

// newest returns the node of a region whose bundle has the highest
// generation: after an interrupted rotation, the one to finish from.
func newest(nodes []*Node) *Node {
	best := nodes[0]
	for _, n := range nodes[1:] {
		if n.KR.StoreWrap.Generation > best.KR.StoreWrap.Generation {
			best = n
		}
	}
	return best
}

// UnwrapBundle unwraps a store-key bundle with the CMEK key that wrapped it:
// one KMS call.
func UnwrapBundle(ctx context.Context, env Env, cluster, region string, w StoreWrap) (*Bundle, error) {
	disableCoreDumps()
	key, err := env.Open(w.CMEKURI)
	if err != nil {
		return nil, err
	}
	ctx = provider.WithPurpose(ctx, "store key of "+region)
	raw, err := key.Unwrap(ctx, provider.Wrapped{Ciphertext: w.Wrapped, KeyVersion: w.CMEKVersion}, StoreBinding(cluster, region, w))
	if err != nil {
		return nil, &KMSError{URI: w.CMEKURI, Op: "unwrap store key " + short(w.KeyIDs[0]), Err: err}
	}
	return decodeBundle(w.KeyIDs, w.KeySizes, raw)
}

// wrapBundle wraps a bundle with key: one KMS call.
func wrapBundle(ctx context.Context, key provider.Key, cluster, region string, b *Bundle, gen int, now time.Time) (StoreWrap, error) {
	w := StoreWrap{Generation: gen, CMEKURI: key.URI(), KeyIDs: slices.Clone(b.IDs), KeySizes: b.sizes(), WrappedAt: now}
	raw := b.encode()
	defer Wipe(raw)
	out, err := key.Wrap(provider.WithPurpose(ctx, "store key of "+region), raw, StoreBinding(cluster, region, w))
	if err != nil {
		return StoreWrap{}, &KMSError{URI: key.URI(), Op: "wrap store key " + short(b.IDs[0]), Err: err}
	}
	w.Wrapped, w.CMEKVersion = out.Ciphertext, out.KeyVersion
	w.CMEKIdentity = provider.PinOf(ctx, key, out)
	return w, nil
}

// openDataKey unwraps a data key with the bundle's store keys (no KMS call).
func openDataKey(kr *Keyring, b *Bundle, d *DataKey) ([]byte, error) {
	kek := b.Key(d.StoreKeyID)
	if kek == nil {
		return nil, fmt.Errorf("data key %s is wrapped by store key %s, which is not in the unwrapped bundle", short(d.ID), short(d.StoreKeyID))
	}
	dk, err := openLocal(kek, d.Wrapped, DataBinding(kr.ClusterID, kr.Region, kr.Node, d.ID, d.StoreKeyID))
	if err != nil {
		return nil, fmt.Errorf("%w: data key %s does not authenticate for node %q of region %q (moved from another node or damaged)", ErrForeign, short(d.ID), kr.Node, kr.Region)
	}
	return dk, nil
}

func newDataKey(kr *Keyring, storeID string, kek []byte, now time.Time) DataKey {
	id := newID()
	dk := newKey()
	defer Wipe(dk)
	return DataKey{ID: id, State: StateActive, Created: now, StoreKeyID: storeID,
		Wrapped: sealLocal(kek, dk, DataBinding(kr.ClusterID, kr.Region, kr.Node, id, storeID))}
}

// ErrSecretURI is returned for a CMEK URI that carries credentials: a
// keyring records its CMEK URI, and a keyring holds no secret.
var ErrSecretURI = errors.New("the CMEK URI carries credentials")

// recordable refuses a URI whose recorded (redacted) form would differ from
// it: later commands could not reopen the key from the keyring.
func recordable(uri string) error {
	if provider.RedactURI(uri) != uri {
		return fmt.Errorf("%w, which a keyring must not hold: use AUTH=implicit and give credentials through the KMS's own chain (AWS profile or AWS_* variables, GCP application default credentials, VAULT_TOKEN)", ErrSecretURI)
	}
	return nil
}
