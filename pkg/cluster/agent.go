package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// AgentResult is one pass of the node agent.
type AgentResult struct {
	KeyringRev uint64   `json:"keyring_rev"`
	Revoked    bool     `json:"revoked"`
	Purged     []string `json:"purged,omitempty"`
	Acked      bool     `json:"acknowledged"`
	// Unchanged: the keyring is still at the version the last complete
	// pass handled; the store said so without sending it (a conditional
	// read), and the pass did nothing else.
	Unchanged bool `json:"unchanged,omitempty"`
}

// AgentOnce is one pass of cmekctl node agent: read the node's keyring
// (one request); if it is revoked, purge the key files unlock wrote (as the
// local cache records them) and acknowledge in the node's status.
func AgentOnce(ctx context.Context, s store.Store, o UnlockOptions) (*AgentResult, error) {
	var a agent
	return a.pass(ctx, s, o)
}

// agent carries what its last complete pass handled to the next pass.
type agent struct {
	ver  store.Version // the keyring version handled; zero until a pass completes
	last AgentResult
}

// pass reads the keyring only if it changed since the last complete pass
// (store.GetIfChanged: S3's If-None-Match, a 304 with no body), and acts on
// a changed one. A pass that failed leaves the version unset, so the next
// one reads the keyring again in full and retries the purge and the ack.
func (a *agent) pass(ctx context.Context, s store.Store, o UnlockOptions) (*AgentResult, error) {
	key := keyringKey(o.Cluster, o.Region, o.Node)
	body, ver, changed, err := store.GetIfChanged(ctx, s, key, a.ver)
	if err != nil {
		return nil, err
	}
	if !changed {
		res := a.last
		res.Purged, res.Unchanged = nil, true
		return &res, nil
	}
	kr, err := parseKeyring(s, body, o.Cluster, o.Region, o.Node)
	if err != nil {
		return nil, err
	}
	res := &AgentResult{KeyringRev: ver.Rev, Revoked: kr.Revoked != nil}
	if kr.Revoked != nil {
		if err := purgeAndAck(ctx, s, o, kr, ver, res); err != nil {
			return res, err
		}
	}
	a.ver, a.last = ver, *res
	return res, nil
}

// purgeAndAck purges the key files of a revoked keyring (as the local cache
// records them), marks the cache revoked, and acknowledges in the status.
func purgeAndAck(ctx context.Context, s store.Store, o UnlockOptions, kr *keyring.Keyring, ver store.Version, res *AgentResult) error {
	cache := keyring.Store{Dir: o.Cache}
	local, err := cache.Load()
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return err
	}
	now := utc(o.Now)
	if local != nil {
		if res.Purged, err = keyring.PurgeUnlocked(local, now); err != nil {
			return err
		}
		local.Revoked = kr.Revoked
		if err := cache.Save(local); err != nil {
			return err
		}
	}
	err = updateStatus(ctx, s, o, func(st *Status) {
		st.KeyringRev, st.RevokedSeen, st.Purged, st.PurgedFiles, st.Updated = ver.Rev, now, now, len(res.Purged), now
	})
	res.Acked = err == nil
	return err
}

// Agent runs a pass every interval until ctx ends, and at once when the
// store says the keyring changed (etcd's watch); each pass's result or error
// goes to report. Between changes a pass costs one conditional read that
// transfers no keyring (S3: 304 Not Modified).
func Agent(ctx context.Context, s store.Store, o UnlockOptions, every time.Duration, report func(*AgentResult, error)) {
	var changed <-chan struct{}
	if w, ok := s.(store.Watcher); ok {
		changed = w.Watch(ctx, keyringKey(o.Cluster, o.Region, o.Node))
	}
	var a agent
	for {
		res, err := a.pass(ctx, s, o)
		report(res, err)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(every):
		}
	}
}

// updateStatus reads the node's status, changes it, and replaces it (or
// creates it), reading again after a failed compare.
func updateStatus(ctx context.Context, s store.Store, o UnlockOptions, change func(*Status)) error {
	key := statusKey(o.Cluster, o.Region, o.Node)
	for try := 0; ; try++ {
		st := Status{Format: FormatStatus, ClusterID: o.Cluster, Region: o.Region, Node: o.Node}
		ver, err := getJSON(ctx, s, key, FormatStatus, &st)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		change(&st)
		var v store.Version
		if errors.Is(err, store.ErrNotFound) {
			v, err = s.CreateOnly(ctx, key, marshal(st))
		} else {
			v, err = s.ReplaceIfUnchanged(ctx, key, marshal(st), ver)
		}
		if err == nil {
			if meta, _ := readMeta(o.Cache); meta != nil {
				meta.StatusVer = v
				_ = writeMeta(o.Cache, meta)
			}
			return nil
		}
		if try >= 2 || (!errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists)) {
			return err
		}
	}
}
