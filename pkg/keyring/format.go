// Package keyring is the key hierarchy on a node's disk: the region's store
// keys wrapped by the CMEK key, the node's data keys wrapped by the store key,
// backup keys wrapped by the CMEK keys, and the record of CMEK's enablement,
// unlocks and revocation. It never holds a plaintext key.
//
// A keyring is one file, DIR/keyring.json (mode 0600, DIR mode 0700), in a
// versioned JSON format. Every change is a crash-safe replace through
// package safefile, under a lock file that serialises writers.
//
// The package imports neither cobra nor viper.
package keyring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

const (
	// FormatName is the "format" field of every keyring.
	FormatName = "cmekctl-keyring"
	// FormatVersion is the keyring format this package writes. Version 2
	// added the stores' adoption records (Stores, Unrecorded) and store-key
	// bundles of more than two keys; version 1 keyrings are read and
	// upgraded on their next write.
	FormatVersion = 2
	// minReadVersion is the oldest keyring format this package reads.
	minReadVersion = 1
	// FileName is the keyring's file name inside its directory.
	FileName = "keyring.json"
	// LockName is the lock file's name inside the keyring directory.
	LockName = "keyring.lock"
	// DataKeyLifetime is when the next data-key rotation is due.
	DataKeyLifetime = 30 * 24 * time.Hour
)

// Key states.
const (
	StateActive   = "active"
	StatePrevious = "previous" // a store key still in the bundle: a store may still be on it (CockroachDB's old-key)
	StateRetired  = "retired"
)

// Keyring is one node's keyring.
type Keyring struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	ClusterID string    `json:"cluster_id"`
	Region    string    `json:"region"`
	Node      string    `json:"node"`
	EnabledAt time.Time `json:"enabled_at"`
	// StoreWrap is the region's store-key bundle wrapped by the CMEK key:
	// the active store key first, then every store key a store of the
	// region may still run on, so that one unwrap gives a node all it needs
	// (one KMS call per node start).
	StoreWrap  StoreWrap      `json:"store_wrap"`
	StoreKeys  []StoreKey     `json:"store_keys"`
	DataKeys   []DataKey      `json:"data_keys"`
	BackupKeys []BackupKey    `json:"backup_keys,omitempty"`
	Unlocks    []UnlockRecord `json:"unlocks,omitempty"`
	Revoked    *Revocation    `json:"revoked,omitempty"`
	// Stores are this node's CockroachDB stores: the store key each runs on
	// and the one it was last handed (format 2; see adoption.go).
	Stores []StoreState `json:"stores,omitempty"`
	// Unrecorded is the state of a store unlock has not seen yet: plain
	// (unencrypted) for a new node, the adopted key after enable
	// --adopt-key, what a version-1 keyring's unlocks may have handed.
	Unrecorded StoreState `json:"unrecorded,omitzero"`
	// History keeps every wrap a CMEK key made that was later replaced
	// (append-only): verify-destroyed asks about each of those CMEK keys and
	// tries the old wraps for real, since older keyring copies and backup
	// headers still hold them.
	History *History `json:"cmek_history,omitempty"`
	// LastOp is the ID of the last multi-node operation applied here, so a
	// resumed operation skips nodes it already did.
	LastOp  string    `json:"last_op,omitempty"`
	Updated time.Time `json:"updated"`
}

// StoreWrap is the wrapped store-key bundle and what wrapped it.
type StoreWrap struct {
	// Generation grows with every store-key or CMEK rotation of the region.
	Generation  int       `json:"generation"`
	CMEKURI     string    `json:"cmek_uri"`
	CMEKVersion string    `json:"cmek_version,omitempty"`
	WrappedAt   time.Time `json:"wrapped_at"`
	// KeyIDs are the store keys in the bundle, active first.
	KeyIDs []string `json:"key_ids"`
	// KeySizes are the keys' sizes in bytes when one is not 32 (an adopted
	// AES-128 or AES-192 key); nil when all are 32.
	KeySizes []int  `json:"key_sizes,omitempty"`
	Wrapped  []byte `json:"wrapped"`
	// CMEKIdentity pins the CMEK key that wrapped beyond its URI (the KMS's
	// answer at wrap time: AWS key ARN, Vault cluster, GCP resource name).
	// verify-destroyed takes no KMS answer as proof without it.
	CMEKIdentity provider.KeyIdentity `json:"cmek_identity,omitempty"`
}

// History is the record of every CMEK wrap a keyring replaced: store-key
// bundles (rotate cmek, rotate store-key) and backup-key wraps (backup-keys
// rewrap). Entries are only ever appended.
type History struct {
	StoreWraps  []StoreWrap   `json:"store_wraps,omitempty"`
	BackupWraps []BackupWrapH `json:"backup_wraps,omitempty"`
}

// BackupWrapH is a replaced wrap of backup key BackupID.
type BackupWrapH struct {
	BackupID string    `json:"backup_id"`
	Replaced time.Time `json:"replaced"`
	RegionWrap
}

// RetireStoreWrap appends w to the history unless it is already there.
func (k *Keyring) RetireStoreWrap(w StoreWrap) {
	if k.History == nil {
		k.History = &History{}
	}
	for i, h := range k.History.StoreWraps {
		if bytes.Equal(h.Wrapped, w.Wrapped) {
			if len(h.CMEKIdentity) == 0 { // pinned since (pinRetiring)
				k.History.StoreWraps[i].CMEKIdentity = w.CMEKIdentity
			}
			return
		}
	}
	k.History.StoreWraps = append(k.History.StoreWraps, w)
}

// RetireBackupWrap appends backup key id's wrap w to the history unless it
// is already there.
func (k *Keyring) RetireBackupWrap(id string, w RegionWrap, now time.Time) {
	if k.History == nil {
		k.History = &History{}
	}
	for i, h := range k.History.BackupWraps {
		if h.BackupID == id && bytes.Equal(h.Wrapped, w.Wrapped) {
			if len(h.CMEKIdentity) == 0 {
				k.History.BackupWraps[i].CMEKIdentity = w.CMEKIdentity
			}
			return
		}
	}
	k.History.BackupWraps = append(k.History.BackupWraps, BackupWrapH{BackupID: id, Replaced: now, RegionWrap: w})
}

// StoreKey is a store key's metadata (its material is only in the bundle).
type StoreKey struct {
	ID      string    `json:"id"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
	// Origin is "adopted" for a key brought in by enable --adopt-key.
	Origin string `json:"origin,omitempty"`
}

// DataKey is a node's data key wrapped by a store key.
type DataKey struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	Created    time.Time `json:"created"`
	StoreKeyID string    `json:"store_key_id"`
	Wrapped    []byte    `json:"wrapped"`
}

// RegionWrap is a key wrapped by one region's CMEK key.
type RegionWrap struct {
	Region      string `json:"region"`
	CMEKURI     string `json:"cmek_uri"`
	CMEKVersion string `json:"cmek_version,omitempty"`
	Wrapped     []byte `json:"wrapped"`
	// CMEKIdentity pins the CMEK key that wrapped (see StoreWrap).
	CMEKIdentity provider.KeyIdentity `json:"cmek_identity,omitempty"`
}

// BackupKey is a backup key wrapped by the CMEK key of each region that may
// restore it, never by a store key.
type BackupKey struct {
	ID      string       `json:"id"`
	Label   string       `json:"label,omitempty"`
	Created time.Time    `json:"created"`
	Wraps   []RegionWrap `json:"wraps"`
}

// UnlockRecord records where unlock wrote unwrapped key material, so revoke can
// purge it and verify-destroyed can look for it.
type UnlockRecord struct {
	Dir    string    `json:"dir"`
	Files  []string  `json:"files"`
	Format string    `json:"format"`
	At     time.Time `json:"at"`
	Purged time.Time `json:"purged,omitzero"`
	// Pending marks the intent record that unlock saves before it writes
	// any plaintext: if unlock dies before it records the files, revoke
	// still purges the directory and verify-destroyed still searches it.
	Pending bool `json:"pending,omitempty"`
}

// Revocation marks a revoked keyring.
type Revocation struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Marshal encodes a keyring.
func Marshal(k *Keyring) ([]byte, error) {
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes and validates a keyring. Unknown fields, an unknown format
// version and inconsistent contents are errors (ErrCorrupt, ErrVersion).
func Parse(data []byte) (*Keyring, error) {
	var probe struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON (truncated or damaged?)", ErrCorrupt)
	}
	if probe.Format != FormatName {
		return nil, fmt.Errorf("%w: not a cmekctl keyring (format %q)", ErrCorrupt, probe.Format)
	}
	if probe.Version < minReadVersion || probe.Version > FormatVersion {
		return nil, fmt.Errorf("%w: format version %d; this cmekctl reads versions %d to %d: use a cmekctl that knows it", ErrVersion, probe.Version, minReadVersion, FormatVersion)
	}
	var k Keyring
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the keyring", ErrCorrupt)
	}
	if k.Version == 1 && (len(k.Stores) > 0 || !k.Unrecorded.isZero() || len(k.StoreWrap.KeyIDs) > 2 || k.StoreWrap.KeySizes != nil) {
		return nil, fmt.Errorf("%w: version 1 keyring with version 2 fields", ErrCorrupt)
	}
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if k.Version == 1 {
		k.upgradeV1()
	}
	return &k, nil
}

func (k *Keyring) validate() error {
	switch {
	case k.ClusterID == "" || k.Region == "" || k.Node == "":
		return fmt.Errorf("cluster, region or node missing")
	case k.StoreWrap.CMEKURI == "" || len(k.StoreWrap.Wrapped) == 0 || len(k.StoreWrap.KeyIDs) == 0 || len(k.StoreWrap.KeyIDs) > maxBundle:
		return fmt.Errorf("store-key bundle missing or malformed")
	case k.StoreWrap.KeySizes != nil && len(k.StoreWrap.KeySizes) != len(k.StoreWrap.KeyIDs):
		return fmt.Errorf("store-key bundle sizes do not match its keys")
	}
	ids := map[string]bool{}
	for _, s := range k.StoreKeys {
		if s.ID == "" || ids[s.ID] {
			return fmt.Errorf("store key %q listed twice or empty", short(s.ID))
		}
		ids[s.ID] = true
	}
	inBundle := map[string]bool{}
	for i, id := range k.StoreWrap.KeyIDs {
		if !ids[id] {
			return fmt.Errorf("store key %s of the bundle is not listed", short(id))
		}
		if inBundle[id] {
			return fmt.Errorf("store key %s is twice in the bundle", short(id))
		}
		inBundle[id] = true
		if k.StoreWrap.KeySizes != nil && !validKeySize(k.StoreWrap.KeySizes[i]) {
			return fmt.Errorf("store key %s has size %d", short(id), k.StoreWrap.KeySizes[i])
		}
	}
	if err := k.validateStores(inBundle); err != nil {
		return err
	}
	if k.ActiveStoreKey() == nil || k.StoreKeys[k.indexStore(k.StoreWrap.KeyIDs[0])].State != StateActive {
		return fmt.Errorf("no active store key at the head of the bundle")
	}
	active := 0
	for _, d := range k.DataKeys {
		if d.State == StateActive {
			active++
		}
		if !ids[d.StoreKeyID] || len(d.Wrapped) == 0 || d.ID == "" {
			return fmt.Errorf("data key %s is malformed", short(d.ID))
		}
	}
	if active != 1 {
		return fmt.Errorf("%d active data keys, want 1", active)
	}
	return nil
}

func (k *Keyring) indexStore(id string) int {
	for i := range k.StoreKeys {
		if k.StoreKeys[i].ID == id {
			return i
		}
	}
	return -1
}

// ActiveStoreKey returns the active store key's metadata.
func (k *Keyring) ActiveStoreKey() *StoreKey {
	for i := range k.StoreKeys {
		if k.StoreKeys[i].State == StateActive {
			return &k.StoreKeys[i]
		}
	}
	return nil
}

// ActiveDataKey returns the active data key.
func (k *Keyring) ActiveDataKey() *DataKey {
	for i := range k.DataKeys {
		if k.DataKeys[i].State == StateActive {
			return &k.DataKeys[i]
		}
	}
	return nil
}

// DataKey returns the data key with id, active or retired.
func (k *Keyring) DataKey(id string) *DataKey {
	for i := range k.DataKeys {
		if k.DataKeys[i].ID == id {
			return &k.DataKeys[i]
		}
	}
	return nil
}

// NextRotation is when the active data key is due for rotation.
func (k *Keyring) NextRotation() time.Time {
	if d := k.ActiveDataKey(); d != nil {
		return d.Created.Add(DataKeyLifetime)
	}
	return time.Time{}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Short returns the short form of a key ID used in tables and messages.
func Short(id string) string { return short(id) }
