package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// RegionCMEK returns the CMEK URI of a region in the group.
func (g *Group) RegionCMEK(region string) (string, bool) {
	for _, n := range g.Nodes {
		if n.KR.Region == region {
			return n.KR.StoreWrap.CMEKURI, true
		}
	}
	return "", false
}

// KnownCMEK returns the URI, as the keyrings record it, of the CMEK key of
// region whose normalised identity (provider.Identity) is that of uri, and
// whether there is one. The keys a region's keyrings know are its store-key
// wrap's, those wrapping its backup keys, and those of the keyrings' history
// (keys that wrapped before a rotation or a rewrap).
//
// A URI read from a backup header or an escrow file is attacker-controlled:
// callers pass it here and dial only what comes back, never the file's URI,
// so a forged file cannot name a KMS host, a transport or credentials.
func (g *Group) KnownCMEK(region, uri string) (string, bool) {
	id := provider.Identity(uri)
	if id == "" {
		return "", false
	}
	for _, n := range g.Nodes {
		if n.KR.Region != region {
			continue
		}
		if provider.Identity(n.KR.StoreWrap.CMEKURI) == id {
			return n.KR.StoreWrap.CMEKURI, true
		}
		for _, b := range n.KR.BackupKeys {
			for _, w := range b.Wraps {
				if w.Region == region && provider.Identity(w.CMEKURI) == id {
					return w.CMEKURI, true
				}
			}
		}
		// Keys that wrapped before a rotation or a rewrap are known too.
		if h := n.KR.History; h != nil {
			for _, w := range h.StoreWraps {
				if provider.Identity(w.CMEKURI) == id {
					return w.CMEKURI, true
				}
			}
			for _, w := range h.BackupWraps {
				if w.Region == region && provider.Identity(w.CMEKURI) == id {
					return w.CMEKURI, true
				}
			}
		}
	}
	return "", false
}

// BackupKeys returns every backup key of the group's keyrings, by ID, in
// creation order.
func (g *Group) BackupKeys() []BackupKey {
	var out []BackupKey
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		for _, b := range n.KR.BackupKeys {
			if !seen[b.ID] {
				seen[b.ID] = true
				// A copy: RewrapBackupKeys changes the wraps it returns,
				// and the keyring's own must stay for the history.
				b.Wraps = slices.Clone(b.Wraps)
				out = append(out, b)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b BackupKey) int { return a.Created.Compare(b.Created) })
	return out
}

// CreateBackupKey makes a 256-bit backup key wrapped by the CMEK key of each
// region given (one wrap per region), never by a store key, and records it
// in every keyring of the group. It returns the plaintext key for immediate
// use; the caller wipes it.
func CreateBackupKey(ctx context.Context, env Env, g *Group, label string, regions []string) (BackupKey, []byte, error) {
	if err := g.CheckNotRevoked(); err != nil {
		return BackupKey{}, nil, err
	}
	if len(regions) == 0 {
		regions = g.Regions
	}
	disableCoreDumps()
	bk := BackupKey{ID: newID()[:32], Label: label, Created: env.now()}
	key := newKey()
	for _, r := range regions {
		uri, ok := g.RegionCMEK(r)
		if !ok {
			Wipe(key)
			return BackupKey{}, nil, fmt.Errorf("region %q has no keyring in this command: give a keyring of that region, or drop it from --regions", r)
		}
		k, err := env.Open(uri)
		if err != nil {
			Wipe(key)
			return BackupKey{}, nil, err
		}
		w, err := k.Wrap(provider.WithPurpose(ctx, "backup key of "+r), key, BackupBinding(g.Cluster, r, bk.ID))
		if err != nil {
			Wipe(key)
			return BackupKey{}, nil, &KMSError{URI: uri, Op: "wrap backup key " + short(bk.ID), Err: err}
		}
		bk.Wraps = append(bk.Wraps, RegionWrap{Region: r, CMEKURI: k.URI(), CMEKVersion: w.KeyVersion, Wrapped: w.Ciphertext,
			CMEKIdentity: provider.PinOf(ctx, k, w)})
	}
	if err := g.saveBackupKeys(env, []BackupKey{bk}); err != nil {
		Wipe(key)
		return bk, nil, err
	}
	return bk, key, nil
}

// saveBackupKeys adds or replaces backup keys in every keyring of the group.
func (g *Group) saveBackupKeys(env Env, keys []BackupKey) error {
	var errs []error
	for _, n := range g.Nodes {
		for _, bk := range keys {
			if i := slices.IndexFunc(n.KR.BackupKeys, func(b BackupKey) bool { return b.ID == bk.ID }); i >= 0 {
				// A wrap that is replaced goes to the history: backup
				// headers and older keyring copies still hold it.
				for _, old := range n.KR.BackupKeys[i].Wraps {
					if !slices.ContainsFunc(bk.Wraps, func(w RegionWrap) bool { return bytes.Equal(w.Wrapped, old.Wrapped) }) {
						n.KR.RetireBackupWrap(bk.ID, old, env.now())
					}
				}
				n.KR.BackupKeys[i] = bk
			} else {
				n.KR.BackupKeys = append(n.KR.BackupKeys, bk)
			}
		}
		n.KR.Updated = env.now()
		if err := n.Store.Save(n.KR); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrPartial, errors.Join(errs...))
	}
	return nil
}

// UnwrapBackupKey tries the key's wraps in order (or only region, if given)
// and returns the plaintext key and the region whose CMEK key unwrapped it.
// uriFor maps a region to the CMEK URI to use (the keyring's, which may
// carry what a redacted URI lacks); nil uses the wrap's own URI.
func UnwrapBackupKey(ctx context.Context, env Env, cluster string, bk BackupKey, only string) ([]byte, string, error) {
	disableCoreDumps()
	var errs []error
	for _, w := range bk.Wraps {
		if only != "" && w.Region != only {
			continue
		}
		k, err := env.Open(w.CMEKURI)
		if err != nil {
			errs = append(errs, fmt.Errorf("region %s: %w", w.Region, err))
			continue
		}
		pt, err := k.Unwrap(provider.WithPurpose(ctx, "backup key of "+w.Region), provider.Wrapped{Ciphertext: w.Wrapped, KeyVersion: w.CMEKVersion}, BackupBinding(cluster, w.Region, bk.ID))
		if err != nil {
			errs = append(errs, &KMSError{URI: w.CMEKURI, Op: "unwrap backup key " + short(bk.ID) + " in region " + w.Region, Err: err})
			continue
		}
		return pt, w.Region, nil
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("backup key %s has no wrap for region %q", short(bk.ID), only)
	}
	return nil, "", errors.Join(errs...)
}

// RewrapBackupKeys re-wraps every backup key under the current version of
// each wrapping region's CMEK key (one unwrap and one wrap per key per
// region, or one rewrap where the KMS has it), and records them.
func RewrapBackupKeys(ctx context.Context, env Env, g *Group) (int, error) {
	if err := g.CheckNotRevoked(); err != nil {
		return 0, err
	}
	keys := g.BackupKeys()
	for i := range keys {
		bk := &keys[i]
		for j := range bk.Wraps {
			w := &bk.Wraps[j]
			k, err := env.Open(w.CMEKURI)
			if err != nil {
				return 0, err
			}
			// The region's current CMEK key: after rotate cmek --cmek NEW,
			// backup keys follow the region to its new key.
			to := k
			if cur, ok := g.RegionCMEK(w.Region); ok && cur != w.CMEKURI {
				if to, err = env.Open(cur); err != nil {
					return 0, err
				}
			}
			aad := BackupBinding(g.Cluster, w.Region, bk.ID)
			ctx := provider.WithPurpose(ctx, "backup key of "+w.Region)
			old := provider.Wrapped{Ciphertext: w.Wrapped, KeyVersion: w.CMEKVersion}
			var nw provider.Wrapped
			if r, ok := provider.AsRewrapper(k); ok && to == k {
				nw, err = r.Rewrap(ctx, old, aad)
			} else {
				var pt []byte
				pt, err = k.Unwrap(ctx, old, aad)
				if err == nil {
					nw, err = to.Wrap(ctx, pt, aad)
					Wipe(pt)
				}
			}
			if err != nil {
				return 0, &KMSError{URI: w.CMEKURI, Op: "rewrap backup key " + short(bk.ID) + " in region " + w.Region, Err: err}
			}
			if len(w.CMEKIdentity) == 0 {
				// Written unpinned: the key just opened it, so pin it now,
				// before the wrap goes to the history (see pinRetiring).
				g.pinBackupWrap(w.Wrapped, provider.PinOf(ctx, k, old))
			}
			w.CMEKURI, w.Wrapped, w.CMEKVersion = to.URI(), nw.Ciphertext, nw.KeyVersion
			w.CMEKIdentity = provider.PinOf(ctx, to, nw)
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	return len(keys), g.saveBackupKeys(env, keys)
}

// pinBackupWrap records pin on every unpinned backup-key wrap of the
// group's keyrings with that ciphertext.
func (g *Group) pinBackupWrap(wrapped []byte, pin provider.KeyIdentity) {
	if pin == nil {
		return
	}
	for _, n := range g.Nodes {
		for i := range n.KR.BackupKeys {
			for j := range n.KR.BackupKeys[i].Wraps {
				if w := &n.KR.BackupKeys[i].Wraps[j]; len(w.CMEKIdentity) == 0 && bytes.Equal(w.Wrapped, wrapped) {
					w.CMEKIdentity = pin
				}
			}
		}
	}
}

// CheckEscrowCluster refuses an escrow file of another cluster.
func (g *Group) CheckEscrowCluster(cluster string) error {
	if cluster != g.Cluster {
		return fmt.Errorf("%w: the escrow file is of cluster %q, the keyrings of cluster %q: import into a keyring of the same cluster", ErrForeign, cluster, g.Cluster)
	}
	return nil
}

// ImportBackupKeys adds backup keys (from an escrow file of the same
// cluster) that the keyrings lack; it returns how many were added.
func ImportBackupKeys(env Env, g *Group, cluster string, keys []BackupKey) (int, error) {
	if err := g.CheckEscrowCluster(cluster); err != nil {
		return 0, err
	}
	// A key counts as present only if every keyring holds it: an import
	// interrupted part way is finished by running it again.
	everywhere := map[string]int{}
	for _, n := range g.Nodes {
		for _, b := range n.KR.BackupKeys {
			everywhere[b.ID]++
		}
	}
	var add []BackupKey
	added := 0
	for _, k := range keys {
		if everywhere[k.ID] < len(g.Nodes) {
			add = append(add, k)
			if everywhere[k.ID] == 0 {
				added++
			}
		}
	}
	if len(add) == 0 {
		return 0, nil
	}
	return added, g.saveBackupKeys(env, add)
}
