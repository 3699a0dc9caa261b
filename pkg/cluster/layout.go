// Package cluster lays a cluster's keyrings out in a shared store (package
// store) and runs the cluster-wide protocols on it: enable, a node's start
// (one store read, one KMS unwrap, one status write), rotations through an
// intent record, revocation with acknowledgements, and the operator lease.
//
// The store's compare-and-swap is the safety; the lease only avoids
// duplicate work. Nothing plaintext is ever written to the store.
//
// Layout under the store URI's prefix, per cluster C:
//
//	C/cluster.json              cluster record (create-only)
//	C/keyrings/R/N.json         node N's keyring (written by operators only)
//	C/status/R/N.json           node N's status (written by that node only)
//	C/intent.json               the intent record of a cluster-wide operation
//	C/lease.json                the operator lease
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// Document formats (the "format" field of each).
const (
	FormatCluster = "cmekctl-cluster"
	FormatStatus  = "cmekctl-node-status"
	FormatIntent  = "cmekctl-intent"
	FormatLease   = "cmekctl-lease"
)

// Errors of the cluster protocols.
var (
	// ErrBusy: another operator holds the lease (exit 9).
	ErrBusy = errors.New("another operator holds the cluster's lease")
	// ErrUnacked: nodes have not acknowledged a revocation (exit 10).
	ErrUnacked = errors.New("nodes have not acknowledged")
)

// Keys of a cluster's documents.
func clusterKey(c string) string       { return c + "/cluster.json" }
func keyringKey(c, r, n string) string { return c + "/keyrings/" + r + "/" + n + ".json" }
func statusKey(c, r, n string) string  { return c + "/status/" + r + "/" + n + ".json" }
func intentKey(c string) string        { return c + "/intent.json" }
func leaseKey(c string) string         { return c + "/lease.json" }

// CheckNames refuses a cluster, region or node name that cannot be a store
// key segment.
func CheckNames(names ...string) error {
	for _, n := range names {
		if err := store.CheckKey(n); err != nil || bytes.ContainsRune([]byte(n), '/') {
			return fmt.Errorf("%q is not a usable cluster, region or node name in a store: use letters, digits, '.', '_' and '-'", n)
		}
	}
	return nil
}

// Record is the cluster record, written once.
type Record struct {
	Format    string    `json:"format"`
	ClusterID string    `json:"cluster_id"`
	Created   time.Time `json:"created"`
}

// Status is a node's own report, written by that node only.
type Status struct {
	Format    string    `json:"format"`
	ClusterID string    `json:"cluster_id"`
	Region    string    `json:"region"`
	Node      string    `json:"node"`
	Updated   time.Time `json:"updated"`
	// KeyringRev is the revision of the keyring document the node last read.
	KeyringRev uint64 `json:"keyring_rev"`
	// Handed is what the node's last unlock gave it.
	Handed *Handed `json:"handed,omitempty"`
	// Stores are the node's CockroachDB stores as its local keyring
	// records them: the key each runs on and the one it was handed (the
	// lifecycle's adoption records). Rotations read them, so no key a store
	// may still run on is dropped.
	Stores []keyring.StoreState `json:"stores,omitempty"`
	// FromCache: the last unlock ran from the local cache (store down).
	FromCache bool `json:"from_cache,omitempty"`
	// Revoked and Purged acknowledge a revocation: the node saw its keyring
	// revoked, and removed the key files it had written.
	RevokedSeen time.Time `json:"revoked_seen,omitzero"`
	Purged      time.Time `json:"purged,omitzero"`
	PurgedFiles int       `json:"purged_files,omitempty"`
}

// Handed is what an unlock handed the database.
type Handed struct {
	StoreKeyID  string    `json:"store_key_id"`
	Generation  int       `json:"generation"`
	CMEKURI     string    `json:"cmek_uri"`
	CMEKVersion string    `json:"cmek_version,omitempty"`
	At          time.Time `json:"at"`
}

// Intent is the record of a cluster-wide operation: what it does, and the
// wraps the KMS made for it, so a resumed run makes no new wrap.
type Intent struct {
	Format  string                       `json:"format"`
	ID      string                       `json:"id"`
	Op      string                       `json:"op"`
	State   string                       `json:"state"` // pending, done
	Started time.Time                    `json:"started"`
	Done    time.Time                    `json:"done,omitzero"`
	By      string                       `json:"by"`
	Nodes   []string                     `json:"nodes"` // R/N
	Wraps   map[string]keyring.StoreWrap `json:"wraps,omitempty"`
	NewCMEK string                       `json:"new_cmek,omitempty"`
}

// Intent states.
const (
	IntentPending = "pending"
	IntentDone    = "done"
)

// Lease is the operator lease.
type Lease struct {
	Format   string    `json:"format"`
	Token    string    `json:"token"`
	Holder   string    `json:"holder"`
	Op       string    `json:"op"`
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	TTL      Duration  `json:"ttl"`
	Released bool      `json:"released,omitempty"`
}

// Duration is a time.Duration that reads and writes as "30s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// getJSON reads and decodes a document, checking its format field.
func getJSON(ctx context.Context, s store.Store, key, format string, v any) (store.Version, error) {
	body, ver, err := s.Get(ctx, key)
	if err != nil {
		return ver, err
	}
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(body, &probe); err != nil || probe.Format != format {
		return ver, fmt.Errorf("%s: %s: %w: not a %s document", s, key, store.ErrCorrupt, format)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ver, fmt.Errorf("%s: %s: %w: %v", s, key, store.ErrCorrupt, err)
	}
	return ver, nil
}

func marshal(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // our own types always marshal
	}
	return append(b, '\n')
}

// getKeyring reads a node's keyring document.
func getKeyring(ctx context.Context, s store.Store, c, r, n string) (*keyring.Keyring, store.Version, error) {
	body, ver, err := s.Get(ctx, keyringKey(c, r, n))
	if err != nil {
		return nil, ver, err
	}
	kr, err := parseKeyring(s, body, c, r, n)
	return kr, ver, err
}

// parseKeyring parses the keyring document of node c/r/n read from s.
func parseKeyring(s store.Store, body []byte, c, r, n string) (*keyring.Keyring, error) {
	kr, err := keyring.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s, keyringKey(c, r, n), err)
	}
	if kr.ClusterID != c || kr.Region != r || kr.Node != n {
		return nil, fmt.Errorf("%s: %s holds the keyring of %s/%s/%s: %w", s, keyringKey(c, r, n), kr.ClusterID, kr.Region, kr.Node, keyring.ErrForeign)
	}
	return kr, nil
}

// NodeRef names a node of the cluster.
type NodeRef struct{ Region, Node string }

func (n NodeRef) String() string { return n.Region + "/" + n.Node }

// selectNodes is ListNodes that finds at least one node.
func selectNodes(ctx context.Context, s store.Store, c string, regions, nodes []string) ([]NodeRef, error) {
	refs, err := ListNodes(ctx, s, c, regions, nodes)
	if err == nil && len(refs) == 0 {
		err = fmt.Errorf("%s: no keyrings of cluster %s match: %w", s, c, keyring.ErrNotFound)
	}
	return refs, err
}

// ListNodes lists the nodes whose keyrings the store holds for cluster c,
// narrowed to regions and nodes when given.
func ListNodes(ctx context.Context, s store.Store, c string, regions, nodes []string) ([]NodeRef, error) {
	keys, err := s.List(ctx, c+"/keyrings/")
	if err != nil {
		return nil, err
	}
	var out []NodeRef
	for _, k := range keys {
		var r, n string
		rest := k[len(c+"/keyrings/"):]
		i := bytes.IndexByte([]byte(rest), '/')
		if i < 0 || len(rest) < len(".json") || rest[len(rest)-5:] != ".json" {
			continue
		}
		r, n = rest[:i], rest[i+1:len(rest)-5]
		if (len(regions) == 0 || contains(regions, r)) && (len(nodes) == 0 || contains(nodes, n)) {
			out = append(out, NodeRef{r, n})
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ReadKeyring reads node n's keyring from the store.
func ReadKeyring(ctx context.Context, s store.Store, c, r, n string) (*keyring.Keyring, error) {
	kr, _, err := getKeyring(ctx, s, c, r, n)
	return kr, err
}

// ReadStatus reads node n's status from the store.
func ReadStatus(ctx context.Context, s store.Store, c, r, n string) (*Status, error) {
	var st Status
	if _, err := getJSON(ctx, s, statusKey(c, r, n), FormatStatus, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
