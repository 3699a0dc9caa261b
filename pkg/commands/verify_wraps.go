package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/cmekctl/cmekctl/pkg/backup"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/verify"
)

// pinnedWrap is a CMEK URI with the identity pinned when it wrapped.
type pinnedWrap struct {
	uri string
	pin provider.KeyIdentity
}

func (p pinnedWrap) key() string { return p.uri + "\x00" + p.pin.String() }

// wrapUnderTest is one CMEK wrap that verify-destroyed unwraps for real:
// the keyrings' current wraps and every wrap of their history.
type wrapUnderTest struct {
	target, check string
	pinnedWrap
	w   provider.Wrapped
	aad []byte
}

// evidenceWraps lists every distinct wrap of the group: each region's
// current store-key bundle, every backup key's wrap per region, and every
// wrap the keyrings' history kept (rotate cmek, rotate store-key,
// backup-keys rewrap replaced them, but older keyring copies and backup
// headers still hold them).
func evidenceWraps(g *keyring.Group) []wrapUnderTest {
	var out []wrapUnderTest
	seen := map[string]bool{}
	add := func(t wrapUnderTest) {
		if seen[string(t.w.Ciphertext)] {
			return
		}
		seen[string(t.w.Ciphertext)] = true
		out = append(out, t)
	}
	store := func(n *keyring.Node, w keyring.StoreWrap, check, note string) {
		add(wrapUnderTest{
			target: fmt.Sprintf("store key %s (region %s, generation %d%s)", keyring.Short(w.KeyIDs[0]), n.KR.Region, w.Generation, note),
			check:  check, pinnedWrap: pinnedWrap{w.CMEKURI, w.CMEKIdentity},
			w:   provider.Wrapped{Ciphertext: w.Wrapped, KeyVersion: w.CMEKVersion},
			aad: keyring.StoreBinding(n.KR.ClusterID, n.KR.Region, w),
		})
	}
	backupWrap := func(n *keyring.Node, id string, w keyring.RegionWrap, check, note string) {
		add(wrapUnderTest{
			target: fmt.Sprintf("backup key %s (region %s%s)", keyring.Short(id), w.Region, note),
			check:  check, pinnedWrap: pinnedWrap{w.CMEKURI, w.CMEKIdentity},
			w:   provider.Wrapped{Ciphertext: w.Wrapped, KeyVersion: w.CMEKVersion},
			aad: keyring.BackupBinding(n.KR.ClusterID, w.Region, id),
		})
	}
	for _, n := range g.Nodes {
		store(n, n.KR.StoreWrap, "unwrap store key", "")
	}
	for _, n := range g.Nodes {
		for _, b := range n.KR.BackupKeys {
			for _, w := range b.Wraps {
				backupWrap(n, b.ID, w, "unwrap backup key", "")
			}
		}
	}
	for _, n := range g.Nodes {
		if h := n.KR.History; h != nil {
			for _, w := range h.StoreWraps {
				store(n, w, "unwrap replaced store-key wrap", ", replaced wrap under "+redact(w.CMEKURI))
			}
			for _, w := range h.BackupWraps {
				backupWrap(n, w.BackupID, w.RegionWrap, "unwrap replaced backup-key wrap", ", replaced wrap under "+redact(w.CMEKURI))
			}
		}
	}
	return out
}

// proveAll asks, once per pinned identity, whether the KMS proves the key
// destroyed, and returns the proof per pinnedWrap.key().
func proveAll(ctx context.Context, s *kmsSession, wraps []wrapUnderTest, now func() time.Time, add func(verify.Check)) map[string]bool {
	proven := map[string]bool{}
	for _, t := range wraps {
		pk := t.key()
		if _, done := proven[pk]; done {
			continue
		}
		proven[pk] = false
		k, err := s.Open(t.uri)
		if err != nil {
			add(verify.ErrorCheck(redact(t.uri), "prove CMEK key destroyed", err, now().UTC()))
			continue
		}
		c, ok := verify.ProveCheck(ctx, k, t.pin, redact(t.uri), now)
		proven[pk] = ok
		add(c)
	}
	return proven
}

// backupSampleChecks tries the header wraps of a backup file given as a
// --sample. A header is data, unauthenticated until opened: a wrap is tried
// only under a CMEK key the keyrings know (dialled by the keyring's URI,
// never the header's), and it is proof of destruction only if the keyrings
// pinned that key at that version and it was proven destroyed. A wrap under
// a key the keyrings do not know is reported as not checked (INCONCLUSIVE).
func backupSampleChecks(ctx context.Context, s *kmsSession, g *keyring.Group, path string, h *backup.Header,
	wraps []wrapUnderTest, proven map[string]bool, now func() time.Time) []verify.Check {
	var out []verify.Check
	for _, w := range h.Wraps {
		target := fmt.Sprintf("%s: backup key %s (region %s, header wrap)", path, keyring.Short(h.BackupKeyID), w.Region)
		uri, ok := g.KnownCMEK(w.Region, w.CMEKURI)
		if !ok {
			out = append(out, verify.Check{Target: target, Check: "unwrap backup header wrap", Outcome: verify.OutInconclusive, At: now().UTC(),
				Result: "NOT CHECKED: the header names a CMEK key these keyrings do not know (never dialled): give the keyrings of region " + w.Region})
			continue
		}
		isProven := false
		for _, t := range wraps {
			if t.uri == uri && t.w.KeyVersion == w.KeyVersion && len(t.pin) > 0 {
				isProven = proven[t.key()]
				break
			}
		}
		k, err := s.Open(uri)
		if err != nil {
			out = append(out, verify.ErrorCheck(target, "unwrap backup header wrap", err, now().UTC()))
			continue
		}
		out = append(out, verify.UnwrapCheck(ctx, k, provider.Wrapped{Ciphertext: w.Wrapped, KeyVersion: w.KeyVersion},
			keyring.BackupBinding(g.Cluster, w.Region, h.BackupKeyID), target, "unwrap backup header wrap", isProven, now))
	}
	if len(h.Wraps) == 0 {
		out = append(out, verify.Check{Target: path, Check: "unwrap backup header wrap", Outcome: verify.OutInconclusive, At: now().UTC(),
			Result: "NOT CHECKED: the header has no wrap"})
	}
	return out
}
