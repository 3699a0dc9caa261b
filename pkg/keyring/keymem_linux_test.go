package keyring

import (
	"slices"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/internal/smaps"
)

// TestKeyMaterialNotDumped: key material that cmekctl makes or unwraps
// (a new key, a store-key bundle as the KMS returns it, a data key opened
// under a store key) sits in a mapping the kernel leaves out of core dumps
// (VmFlags dd) and, within RLIMIT_MEMLOCK, locks in RAM (lo). On the heap
// (the old code) the mapping has no dd.
func TestKeyMaterialNotDumped(t *testing.T) {
	k := newKey()
	raw := make([]byte, 2*KeySize)
	copy(raw, k)
	b, err := decodeBundle([]string{"s1", "s2"}, nil, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(raw, make([]byte, 2*KeySize)) {
		t.Error("the KMS's copy of the bundle was not wiped")
	}
	kr := &Keyring{ClusterID: "c", Region: "r", Node: "n"}
	d := newDataKey(kr, "s1", b.Keys[0], time.Now())
	dk, err := openDataKey(kr, b, &d)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.encode()
	for name, buf := range map[string][]byte{"new key": k, "bundle key 0": b.Keys[0], "bundle key 1": b.Keys[1], "data key": dk, "encoded bundle": enc} {
		flags, err := smaps.VmFlags(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(flags, "dd") {
			t.Errorf("%s: mapping flags %v, want dd (MADV_DONTDUMP)", name, flags)
		}
		if keyMemLocked() != slices.Contains(flags, "lo") {
			t.Errorf("%s: mlock reported %v, mapping flags %v", name, keyMemLocked(), flags)
		}
	}
	t.Logf("key mapping locked in RAM: %v", keyMemLocked())
}
