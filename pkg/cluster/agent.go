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
}

// AgentOnce is one pass of cmekctl node agent: read the node's keyring
// (one request); if it is revoked, purge the key files unlock wrote (as the
// local cache records them) and acknowledge in the node's status.
func AgentOnce(ctx context.Context, s store.Store, o UnlockOptions) (*AgentResult, error) {
	kr, ver, err := getKeyring(ctx, s, o.Cluster, o.Region, o.Node)
	if err != nil {
		return nil, err
	}
	res := &AgentResult{KeyringRev: ver.Rev, Revoked: kr.Revoked != nil}
	if kr.Revoked == nil {
		return res, nil
	}
	cache := keyring.Store{Dir: o.Cache}
	local, err := cache.Load()
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return res, err
	}
	now := utc(o.Now)
	if local != nil {
		if res.Purged, err = keyring.PurgeUnlocked(local, now); err != nil {
			return res, err
		}
		local.Revoked = kr.Revoked
		if err := cache.Save(local); err != nil {
			return res, err
		}
	}
	err = updateStatus(ctx, s, o, func(st *Status) {
		st.KeyringRev, st.RevokedSeen, st.Purged, st.PurgedFiles, st.Updated = ver.Rev, now, now, len(res.Purged), now
	})
	res.Acked = err == nil
	return res, err
}

// Agent runs AgentOnce every interval until ctx ends, and at once when the
// store says the keyring changed (etcd's watch); each pass's result or error
// goes to report.
func Agent(ctx context.Context, s store.Store, o UnlockOptions, every time.Duration, report func(*AgentResult, error)) {
	var changed <-chan struct{}
	if w, ok := s.(store.Watcher); ok {
		changed = w.Watch(ctx, keyringKey(o.Cluster, o.Region, o.Node))
	}
	for {
		res, err := AgentOnce(ctx, s, o)
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
