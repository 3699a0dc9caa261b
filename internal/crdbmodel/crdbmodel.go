// Package crdbmodel is a test model of how CockroachDB starts a node with
// --enterprise-encryption: which key files it loads, how it splits the flag,
// and which store keys a store accepts. cmekctl's tests run every flag value
// unlock prints and every key file it writes through it.
//
// It is written from CockroachDB's documented and observed rules, not from
// its code (whose licence forbids copying): the rules are those of
// pkg/storage/fs/key_manager.go (LoadKeyFromFile, the store and data key
// managers), pkg/storage/fs/ctr_stream.go, pkg/storage/storageconfig/
// encryption_spec.go and pkg/cli/gen_encryption.go, and of the Encryption
// At Rest documentation:
//
//  1. A v1 key file is 32 bytes of key ID then the key (16, 24 or 32 bytes);
//     the ID is the lowercase hex of those 32 bytes. A v2 file is a JWKS with
//     exactly one "oct" key, alg cockroach-aes-{128,192,256}-ctr-v2, kid used
//     verbatim. v2 files need CockroachDB 24.1 or later.
//  2. A store keeps its data keys in a registry encrypted with the store key
//     it last ran on; at start that key must be given as key= or old-key=,
//     or the node does not start ("store key ID … was not found"). Starting
//     with key=NEW,old-key=CURRENT moves the store to NEW. A store key once
//     replaced can never be active again ("previously used and cannot be
//     reactivated").
//  3. A registry written under a key loaded from a v1 file cannot be opened
//     with the same key loaded from a v2 file ("unknown EncryptionType").
//  4. The flag value is split on commas with no quoting; path must equal the
//     store's path or be "*"; "*" applies to the first store only, and a
//     second store then starts unencrypted; one flag per store; a path
//     starting with "~" is refused; rotation-period is a duration.
//
// Only tests import this package.
package crdbmodel

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Key is a loaded store key. Type is "v1" or "v2"; the zero Key is plain.
type Key struct {
	ID   string
	Type string
	Mat  []byte
}

// Plain reports whether k is "plain" (no encryption).
func (k Key) Plain() bool { return k.ID == "" }

// LoadKeyFile loads a store-key file by rule 1; "plain" is no key.
func LoadKeyFile(path string, version Version) (Key, error) {
	if path == "plain" {
		return Key{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("could not read key file %s: %w", path, err)
	}
	if json.Valid(data) {
		if version < V24_1 {
			return Key{}, fmt.Errorf("key file %s: unsupported key file format (v2 needs 24.1+)", path)
		}
		var f struct {
			Keys []struct {
				Kty, Kid, Alg, K string
			} `json:"keys"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return Key{}, fmt.Errorf("key file %s: invalid JWKS: %w", path, err)
		}
		if len(f.Keys) != 1 {
			return Key{}, fmt.Errorf("key file %s: want exactly one key, got %d", path, len(f.Keys))
		}
		j := f.Keys[0]
		if j.Kty != "oct" {
			return Key{}, fmt.Errorf("key file %s: kty %q", path, j.Kty)
		}
		mat, err := base64.RawURLEncoding.DecodeString(j.K)
		if err != nil {
			return Key{}, fmt.Errorf("key file %s: bad k", path)
		}
		want := map[string]int{"cockroach-aes-128-ctr-v2": 16, "cockroach-aes-192-ctr-v2": 24, "cockroach-aes-256-ctr-v2": 32}[j.Alg]
		if want == 0 || want != len(mat) {
			return Key{}, fmt.Errorf("key file %s: alg %q with a %d-byte key", path, j.Alg, len(mat))
		}
		return Key{ID: j.Kid, Type: "v2", Mat: mat}, nil
	}
	switch len(data) - 32 {
	case 16, 24, 32:
	default:
		return Key{}, fmt.Errorf("key file %s is %d bytes, want 32 bytes of ID plus 16, 24 or 32 bytes of key", path, len(data))
	}
	return Key{ID: hex.EncodeToString(data[:32]), Type: "v1", Mat: bytes.Clone(data[32:])}, nil
}

// Version is a CockroachDB version.
type Version int

// Versions that matter to the key file formats.
const (
	V23_2 Version = 232
	V24_1 Version = 241
)

// Spec is one parsed --enterprise-encryption value.
type Spec struct {
	Path, Key, OldKey string
	RotationPeriod    time.Duration
}

// ParseSpec splits a flag value by rule 4.
func ParseSpec(value string) (Spec, error) {
	s := Spec{RotationPeriod: 168 * time.Hour}
	seen := map[string]bool{}
	for _, part := range strings.Split(value, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Spec{}, fmt.Errorf("field not in the form <key>=<value>: %q", part)
		}
		if seen[k] {
			return Spec{}, fmt.Errorf("%s given twice", k)
		}
		seen[k] = true
		switch k {
		case "path":
			if strings.HasPrefix(v, "~") {
				return Spec{}, fmt.Errorf("path %q: ~ is not expanded", v)
			}
			s.Path = v
		case "key":
			s.Key = v
		case "old-key":
			s.OldKey = v
		case "rotation-period":
			d, err := time.ParseDuration(v)
			if err != nil {
				return Spec{}, fmt.Errorf("rotation-period: %w", err)
			}
			s.RotationPeriod = d
		default:
			return Spec{}, fmt.Errorf("unknown field %q", k)
		}
	}
	if s.Path == "" || s.Key == "" || s.OldKey == "" {
		return Spec{}, errors.New("path, key and old-key are all required")
	}
	return s, nil
}

// Store is one store's registry: the store key it runs on (zero: plain or
// new) and the keys it ran on before.
type Store struct {
	Path    string
	Active  Key
	Used    map[string]bool
	Started bool
}

// Node is a node's stores, in --store order, and what it knows of keys.
type Node struct {
	Version Version
	Stores  []*Store
	// material is every key ID's bytes ever seen: a file that gives an ID
	// other bytes would make the store's data unreadable.
	material map[string][]byte
}

// NewNode returns a node with stores at paths, all new.
func NewNode(v Version, paths ...string) *Node {
	n := &Node{Version: v, material: map[string][]byte{}}
	for _, p := range paths {
		n.Stores = append(n.Stores, &Store{Path: p, Used: map[string]bool{}})
	}
	return n
}

// Store returns the store at path.
func (n *Node) Store(path string) *Store {
	for _, s := range n.Stores {
		if s.Path == path {
			return s
		}
	}
	return nil
}

// Start starts the node with these --enterprise-encryption values. Either
// every store starts and moves to its key=, or none changes and the error
// says why (as CockroachDB's would). A store given no value starts plain;
// an encrypted store given none does not start.
func (n *Node) Start(values []string) error {
	specs := map[*Store]Spec{}
	for _, v := range values {
		sp, err := ParseSpec(v)
		if err != nil {
			return fmt.Errorf("invalid --enterprise-encryption %q: %w", v, err)
		}
		st := n.Store(sp.Path)
		if sp.Path == "*" && len(n.Stores) > 0 {
			st = n.Stores[0]
		}
		if st == nil {
			return fmt.Errorf("no store with path %q", sp.Path)
		}
		if _, dup := specs[st]; dup {
			return fmt.Errorf("store %s: more than one encryption spec", st.Path)
		}
		specs[st] = sp
	}
	next := map[*Store]Key{}
	for _, st := range n.Stores {
		sp, ok := specs[st]
		if !ok {
			if !st.Active.Plain() {
				return fmt.Errorf("store %s is encrypted and no key was given", st.Path)
			}
			next[st] = Key{}
			continue
		}
		key, err := LoadKeyFile(sp.Key, n.Version)
		if err != nil {
			return err
		}
		old, err := LoadKeyFile(sp.OldKey, n.Version)
		if err != nil {
			return err
		}
		for _, k := range []Key{key, old} {
			if m, ok := n.material[k.ID]; ok && !k.Plain() && !bytes.Equal(m, k.Mat) {
				return fmt.Errorf("store key %s: material differs from the key of that ID", k.ID)
			}
		}
		cur := st.Active
		switch {
		case cur.Plain() && st.Started && !key.Plain() && !old.Plain():
			return fmt.Errorf("store %s: store key ID plain was not found", st.Path)
		case cur.Plain():
		case key.ID == cur.ID && key.Type != cur.Type, old.ID == cur.ID && old.Type != cur.Type:
			return fmt.Errorf("store %s: unknown EncryptionType for store key %s", st.Path, cur.ID)
		case key.ID != cur.ID && old.ID != cur.ID:
			return fmt.Errorf("store %s: store key ID %s was not found", st.Path, cur.ID)
		}
		if key.ID != cur.ID && st.Used[key.ID] {
			return fmt.Errorf("store %s: key %s was previously used and cannot be reactivated", st.Path, key.ID)
		}
		next[st] = key
	}
	for st, k := range next {
		if k.ID != st.Active.ID && !st.Active.Plain() {
			st.Used[st.Active.ID] = true
		}
		if !k.Plain() {
			n.material[k.ID] = bytes.Clone(k.Mat)
		}
		st.Active, st.Started = k, true
	}
	return nil
}

// ActiveKeyID is what `cockroach debug encryption-active-key` prints for a
// store: the key type and ID.
func (n *Node) ActiveKeyID(path string) string {
	st := n.Store(path)
	if st == nil || st.Active.Plain() {
		return "Plaintext:"
	}
	return fmt.Sprintf("AES%d_CTR:%s", len(st.Active.Mat)*8, st.Active.ID)
}
