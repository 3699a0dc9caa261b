package keyring

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"github.com/cmekctl/cmekctl/pkg/keywrap"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// KeySize is the size of every key in the hierarchy (256 bits), and of
// store-key IDs (CockroachDB's store-key files start with a 32-byte ID).
const KeySize = 32

// wrapFormat is the "format" bound into every wrap. It stays 1 across
// keyring format versions: a version-1 keyring's wraps must still open.
const wrapFormat = "1"

// Purposes bound into every wrap.
const (
	PurposeStoreKey  = "store-key"
	PurposeDataKey   = "data-key"
	PurposeBackupKey = "backup-key"
)

func newKey() []byte { return randInto(keyMem(KeySize)) }

func randInto(b []byte) []byte {
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return b
}

// newID is a random ID (no key: from the heap).
func newID() string { return hex.EncodeToString(randInto(make([]byte, KeySize))) }

// newStoreKeyID is a store key's ID: 32 random bytes whose first is not
// '{' or white space, so that the cockroach-v1 file (ID then key) can
// never be taken for the start of a cockroach-v2 JSON file.
func newStoreKeyID() string {
	for {
		b := randInto(make([]byte, KeySize))
		switch b[0] {
		case '{', ' ', '\t', '\r', '\n':
			continue
		}
		return hex.EncodeToString(b)
	}
}

// Wipe overwrites key material (best effort: Go may have copied it).
func Wipe(b []byte) { clear(b) }

// StoreBinding is what a store-key bundle is bound to: the cluster and
// region, the bundle's key IDs and generation. Not the node: nodes of a
// region share the bundle.
func StoreBinding(cluster, region string, w StoreWrap) []byte {
	b := provider.Binding{
		"cluster": cluster, "region": region, "purpose": PurposeStoreKey,
		"key_id": joinIDs(w.KeyIDs), "generation": strconv.Itoa(w.Generation),
		"format": wrapFormat,
	}
	if w.KeySizes != nil {
		sizes := make([]string, len(w.KeySizes))
		for i, n := range w.KeySizes {
			sizes[i] = strconv.Itoa(n)
		}
		b["key_sizes"] = joinIDs(sizes)
	}
	return b.AAD()
}

// DataBinding binds a data key to its node.
func DataBinding(cluster, region, node, id, storeKeyID string) []byte {
	return provider.Binding{
		"cluster": cluster, "region": region, "node": node, "purpose": PurposeDataKey,
		"key_id": id, "store_key_id": storeKeyID, "format": wrapFormat,
	}.AAD()
}

// BackupBinding binds a backup key to its cluster and wrapping region.
func BackupBinding(cluster, region, id string) []byte {
	return provider.Binding{
		"cluster": cluster, "region": region, "purpose": PurposeBackupKey,
		"key_id": id, "format": wrapFormat,
	}.AAD()
}

func joinIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ","
		}
		s += id
	}
	return s
}

// sealLocal wraps a data key under a store key: AES-256-GCM with a nonce
// Go's FIPS 140-3 module draws (pkg/keywrap), nonce || ciphertext || tag.
// A store key that is not 32 bytes (an adopted AES-128 or AES-192 key)
// wraps data keys through a 32-byte key derived from it (HKDF-SHA-256).
func sealLocal(kek, plaintext, aad []byte) []byte {
	kek, done := kek32(kek)
	defer done()
	out, err := keywrap.Seal(nil, kek, plaintext, aad)
	if err != nil {
		panic(err) // kek32 always gives 32 bytes
	}
	return out
}

// openLocal opens what sealLocal wrote, by this or an earlier cmekctl (the
// layout has not changed).
func openLocal(kek, wrapped, aad []byte) ([]byte, error) {
	kek, done := kek32(kek)
	defer done()
	pt, err := keywrap.Open(kek, wrapped, aad)
	if err != nil {
		return nil, err
	}
	return inKeyMem(pt), nil
}

// inKeyMem moves key material into keyMem, wiping the heap copy.
func inKeyMem(b []byte) []byte {
	k := keyMem(len(b))
	copy(k, b)
	Wipe(b)
	return k
}

func kek32(k []byte) ([]byte, func()) {
	if len(k) == KeySize {
		return k, func() {}
	}
	d, err := hkdf.Key(sha256.New, k, nil, "cmekctl data-key wrapping key from a short store key", KeySize)
	if err != nil {
		panic(err)
	}
	return d, func() { Wipe(d) }
}

// Bundle is an unwrapped store-key bundle. Keys[0] is active.
type Bundle struct {
	IDs  []string
	Keys [][]byte
	// meta is the store keys' metadata as the nodes record them, when the
	// bundle pools several nodes' (a split region: reconcile.go).
	meta map[string]StoreKey
}

// Wipe clears the bundle's keys.
func (b *Bundle) Wipe() {
	for _, k := range b.Keys {
		Wipe(k)
	}
}

// Key returns the store key with id, or nil.
func (b *Bundle) Key(id string) []byte {
	for i, x := range b.IDs {
		if x == id {
			return b.Keys[i]
		}
	}
	return nil
}

func (b *Bundle) encode() []byte {
	n := 0
	for _, k := range b.Keys {
		n += len(k)
	}
	out := keyMem(n)[:0]
	for _, k := range b.Keys {
		out = append(out, k...)
	}
	return out
}

// sizes returns the keys' sizes for StoreWrap.KeySizes: nil when all are 32.
func (b *Bundle) sizes() []int {
	var out []int
	odd := false
	for _, k := range b.Keys {
		out = append(out, len(k))
		odd = odd || len(k) != KeySize
	}
	if !odd {
		return nil
	}
	return out
}

// validKeySize: AES-128, -192 or -256, as CockroachDB's store keys.
func validKeySize(n int) bool { return n == 16 || n == 24 || n == 32 }

func decodeBundle(ids []string, sizes []int, raw []byte) (*Bundle, error) {
	want := len(ids) * KeySize
	if sizes != nil {
		want = 0
		for _, n := range sizes {
			want += n
		}
	}
	if len(raw) != want || (sizes != nil && len(sizes) != len(ids)) {
		Wipe(raw)
		return nil, fmt.Errorf("store-key bundle has %d bytes, want %d", len(raw), want)
	}
	b := &Bundle{IDs: slices.Clone(ids)}
	raw = inKeyMem(raw)
	off := 0
	for i := range ids {
		n := KeySize
		if sizes != nil {
			n = sizes[i]
		}
		b.Keys = append(b.Keys, raw[off:off+n])
		off += n
	}
	return b, nil
}
