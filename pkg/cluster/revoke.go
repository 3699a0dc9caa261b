package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// RevokeOptions select the nodes to revoke.
type RevokeOptions struct {
	Cluster string
	Regions []string
	Nodes   []string
	Reason  string
	Lease   LeaseOptions
	Now     func() time.Time
}

// Revoked is one node's keyring after MarkRevoked.
type Revoked struct {
	Ref     NodeRef
	At      time.Time
	CMEKURI string
	Already bool
	// Rev is the revision of the revoked keyring document: a node's
	// status that read it (or a later one) and purged acknowledges.
	Rev uint64
	// Wrap is the region's store wrap (a start attempt after the KMS
	// action unwraps it).
	Wrap keyring.StoreWrap
}

// MarkRevoked marks every selected keyring revoked with a compare-and-swap
// (a failed compare is read again; a keyring already revoked is left as it
// is), under the operator lease. From then on a node's unlock refuses, and
// purges what an earlier unlock wrote.
func MarkRevoked(ctx context.Context, s store.Store, o RevokeOptions) ([]Revoked, error) {
	lease, err := AcquireLease(ctx, s, o.Cluster, "revoke", o.Lease)
	if err != nil {
		return nil, err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	refs, err := selectNodes(ctx, s, o.Cluster, o.Regions, o.Nodes)
	if err != nil {
		return nil, err
	}
	out := make([]Revoked, len(refs))
	errs := make([]error, len(refs))
	perRegion(refs, func(i int) {
		r := refs[i]
		for attempt := 0; ; attempt++ {
			kr, ver, err := getKeyring(ctx, s, o.Cluster, r.Region, r.Node)
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = Revoked{Ref: r, CMEKURI: kr.StoreWrap.CMEKURI, Wrap: kr.StoreWrap}
			if kr.Revoked != nil {
				out[i].At, out[i].Already, out[i].Rev = kr.Revoked.At, true, ver.Rev
				return
			}
			now := utc(o.Now)
			if err := keyring.MarkRevoked(kr, o.Reason, now); err != nil {
				errs[i] = err
				return
			}
			data, err := keyring.Marshal(kr)
			if err != nil {
				errs[i] = err
				return
			}
			nv, err := s.ReplaceIfUnchanged(ctx, keyringKey(o.Cluster, r.Region, r.Node), data, ver)
			if err == nil {
				out[i].At, out[i].Rev = now, nv.Rev
				return
			}
			if attempt >= 2 || (!errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrUnavailable)) {
				errs[i] = fmt.Errorf("mark %s revoked: %w", r, err)
				return
			}
		}
	})
	return out, errors.Join(errs...)
}

// WaitAcks waits up to wait for each revoked node's status to acknowledge
// its purge: a status that says purged, written from the revoked keyring
// document's revision or a later one (revisions, never clocks, are compared
// across hosts). It returns the nodes that have not, wrapped in ErrUnacked.
func WaitAcks(ctx context.Context, s store.Store, c string, revoked []Revoked, wait, poll time.Duration) ([]NodeRef, error) {
	if poll <= 0 {
		poll = time.Second
	}
	deadline := time.Now().Add(wait)
	pending := map[NodeRef]uint64{}
	for _, r := range revoked {
		pending[r.Ref] = r.Rev
	}
	for {
		for ref, rev := range pending {
			st, err := ReadStatus(ctx, s, c, ref.Region, ref.Node)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if err == nil && !st.Purged.IsZero() && st.KeyringRev >= rev {
				delete(pending, ref)
			}
		}
		if len(pending) == 0 {
			return nil, nil
		}
		if !time.Now().Before(deadline) {
			var names []string
			var out []NodeRef
			for ref := range pending {
				out = append(out, ref)
				names = append(names, ref.String())
			}
			return out, fmt.Errorf("%w their revocation within %s: %s (they purge at their next unlock, or through cmekctl node agent)", ErrUnacked, wait, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}
