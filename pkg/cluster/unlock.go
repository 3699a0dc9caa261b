package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// UnlockOptions are a node's start from a shared store.
type UnlockOptions struct {
	Cluster, Region, Node string
	// Cache is the node's local keyring directory: the last keyring read
	// from the store, and the record of the key files unlock wrote.
	Cache string
	// MaxStale: with the store down, the cache is used only if it is not
	// revoked and was read from the store less than this long ago.
	MaxStale time.Duration
	Unlock   keyring.UnlockOptions
	Now      func() time.Time
}

// DefaultMaxStale is --max-stale's default.
const DefaultMaxStale = 24 * time.Hour

// UnlockResult is what a node's start did.
type UnlockResult struct {
	*keyring.UnlockResult
	KeyringRev uint64 `json:"keyring_rev"`
	FromCache  bool   `json:"from_cache"`
	// CacheAge is how old the cache was, when used.
	CacheAge string `json:"cache_age,omitempty"`
	// StatusErr is set when the status write failed (the start itself
	// succeeded).
	StatusErr string `json:"status_error,omitempty"`
}

// cacheMeta is the cache's record of where its keyring came from.
type cacheMeta struct {
	Store      string        `json:"store"`
	Fetched    time.Time     `json:"fetched"`
	KeyringRev uint64        `json:"keyring_rev"`
	StatusVer  store.Version `json:"status_version"`
	// Retired are the store keys this node has written a retired-key
	// marker for (retired.go).
	Retired     []string `json:"retired,omitempty"`
	FetchedMono int64    `json:"-"`
}

const cacheMetaName = "store-cache.json"

func readMeta(dir string) (*cacheMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, cacheMetaName))
	if err != nil {
		return nil, err
	}
	var m cacheMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, cacheMetaName), keyring.ErrCorrupt)
	}
	return &m, nil
}

func writeMeta(dir string, m *cacheMeta) error {
	b, _ := json.MarshalIndent(m, "", "  ")
	return safefile.WriteFile(safefile.OS{}, filepath.Join(dir, cacheMetaName), append(b, '\n'), 0o600)
}

// Unlock is a node's start: one store read of its keyring, one KMS unwrap,
// the key files, then one status write of its own. With the store down it
// runs from the local cache if the cache is not revoked and younger than
// MaxStale, and says so; otherwise it fails with store.ErrUnavailable. A
// revoked keyring is refused, and the key files an earlier unlock wrote are
// purged and the purge acknowledged in the node's status.
func Unlock(ctx context.Context, s store.Store, env keyring.Env, o UnlockOptions) (*UnlockResult, error) {
	if err := CheckNames(o.Cluster, o.Region, o.Node); err != nil {
		return nil, err
	}
	if o.MaxStale == 0 {
		o.MaxStale = DefaultMaxStale
	}
	cache := keyring.Store{Dir: o.Cache}
	meta, _ := readMeta(o.Cache)
	res := &UnlockResult{}
	kr, ver, err := getKeyring(ctx, s, o.Cluster, o.Region, o.Node)
	switch {
	case errors.Is(err, store.ErrUnavailable):
		old, lerr := cache.Load()
		if lerr != nil || meta == nil {
			return nil, fmt.Errorf("%w, and there is no local cache in %s: the node cannot start until the store answers", err, o.Cache)
		}
		age := utc(o.Now).Sub(meta.Fetched)
		if old.Revoked != nil {
			return nil, fmt.Errorf("%s: %w (the local cache says so; the store did not answer)", o.Cache, keyring.ErrRevoked)
		}
		if age > o.MaxStale {
			return nil, fmt.Errorf("%w, and the local cache was read from it %s ago, longer than --max-stale %s: the node cannot start until the store answers", err, age.Round(time.Second), o.MaxStale)
		}
		res.FromCache, res.CacheAge, res.KeyringRev = true, age.Round(time.Second).String(), meta.KeyringRev
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("%s: no keyring for node %s of region %s, cluster %s: %w", s, o.Node, o.Region, o.Cluster, keyring.ErrNotFound)
	case err != nil:
		return nil, err
	default:
		// Keep what only this host knows: where its key files are.
		var statusVer store.Version
		if old, lerr := cache.Load(); lerr == nil {
			kr.Unlocks = old.Unlocks
			if len(old.Stores) > 0 {
				kr.Stores = old.Stores
			}
		} else if !errors.Is(lerr, keyring.ErrNotFound) {
			return nil, lerr
		} else if len(kr.StoreWrap.KeyIDs) > 1 {
			// A host without a cache (a new pod) in a region whose bundle
			// holds old keys: which one each store runs on is in the
			// node's own status (the keyring's copy may be older or
			// none); its version saves the status write a failed create.
			// With one key in the bundle a store runs on it or is plain:
			// either starts with it, and the start reads nothing more.
			var prev Status
			if v, err := getJSON(ctx, s, statusKey(o.Cluster, o.Region, o.Node), FormatStatus, &prev); err == nil {
				statusVer = v
				if len(prev.Stores) > 0 {
					kr.Stores = prev.Stores
				}
			}
		}
		opened, err := cache.Prepare()
		if err != nil {
			return nil, err
		}
		defer opened.Close()
		cache = opened
		if err := cache.Save(kr); err != nil {
			return nil, err
		}
		if meta == nil || meta.Store != s.String() {
			meta = &cacheMeta{Store: s.String(), StatusVer: statusVer}
		}
		meta.Fetched, meta.KeyringRev = utc(o.Now), ver.Rev
		if err := writeMeta(o.Cache, meta); err != nil {
			return nil, err
		}
		res.KeyringRev = ver.Rev
	}
	st := Status{Format: FormatStatus, ClusterID: o.Cluster, Region: o.Region, Node: o.Node, KeyringRev: res.KeyringRev, FromCache: res.FromCache}
	if kr != nil && kr.Revoked != nil {
		purged, perr := keyring.PurgeUnlocked(kr, utc(o.Now))
		if perr == nil {
			perr = cache.Save(kr)
		}
		st.RevokedSeen, st.Updated = utc(o.Now), utc(o.Now)
		if perr == nil {
			st.Purged, st.PurgedFiles = utc(o.Now), len(purged)
		}
		_ = writeStatus(ctx, s, o, meta, st)
		if perr != nil {
			return nil, fmt.Errorf("%w; purging the key files an earlier unlock wrote failed: %v", keyring.ErrRevoked, perr)
		}
		return nil, fmt.Errorf("%s: %w on %s (%s): the node cannot start; %d key file(s) purged", s, keyring.ErrRevoked, kr.Revoked.At.Format(time.RFC3339), kr.Revoked.Reason, len(purged))
	}
	ur, err := keyring.Unlock(ctx, env, cache, o.Unlock)
	if err != nil {
		return nil, err
	}
	res.UnlockResult = ur
	done, _ := cache.Load()
	st.Updated = utc(o.Now)
	if done != nil {
		w := done.StoreWrap
		st.Stores = done.Stores
		st.Handed = &Handed{StoreKeyID: ur.StoreKey, Generation: w.Generation, CMEKURI: w.CMEKURI, CMEKVersion: w.CMEKVersion, At: utc(o.Now)}
	}
	if err := writeStatus(ctx, s, o, meta, st); err != nil {
		res.StatusErr = err.Error()
	} else if !res.FromCache {
		publishRetired(ctx, s, o, done, meta)
	}
	return res, nil
}

// writeStatus writes the node's status: one request when the cache knows
// the status document's version, more only when it does not.
func writeStatus(ctx context.Context, s store.Store, o UnlockOptions, meta *cacheMeta, st Status) error {
	key := statusKey(o.Cluster, o.Region, o.Node)
	body := marshal(st)
	var v store.Version
	var err error
	if meta != nil && meta.StatusVer.Rev > 0 {
		v, err = s.ReplaceIfUnchanged(ctx, key, body, meta.StatusVer)
	} else {
		v, err = s.CreateOnly(ctx, key, body)
	}
	for try := 0; try < 3 && (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)); try++ {
		// Only this node writes its status: a conflict is a cache that
		// lost track (a new cache, a lost answer). Read and replace.
		var cur store.Version
		if _, cur, err = s.Get(ctx, key); err == nil {
			v, err = s.ReplaceIfUnchanged(ctx, key, body, cur)
		}
	}
	if err != nil {
		return err
	}
	if meta != nil {
		meta.StatusVer = v
		return writeMeta(o.Cache, meta)
	}
	return nil
}

// PublishStores copies the node's store records (what each store was handed
// and started on) from its local cache into its status document, after
// cmekctl node started: rotations read them there.
func PublishStores(ctx context.Context, s store.Store, o UnlockOptions) error {
	kr, err := keyring.Store{Dir: o.Cache}.Load()
	if err != nil {
		return err
	}
	key := statusKey(o.Cluster, o.Region, o.Node)
	for try := 0; ; try++ {
		var st Status
		ver, err := getJSON(ctx, s, key, FormatStatus, &st)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: node %s has no status yet: run cmekctl unlock --store first", s, o.Node)
		}
		if err != nil {
			return err
		}
		st.Stores, st.Updated = kr.Stores, utc(o.Now)
		v, err := s.ReplaceIfUnchanged(ctx, key, marshal(st), ver)
		if err == nil {
			if meta, _ := readMeta(o.Cache); meta != nil {
				meta.StatusVer = v
				_ = writeMeta(o.Cache, meta)
				publishRetired(ctx, s, o, kr, meta)
			}
			return nil
		}
		if !errors.Is(err, store.ErrConflict) || try >= 2 {
			return err
		}
	}
}
