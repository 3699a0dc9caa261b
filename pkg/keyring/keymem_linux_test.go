package keyring

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// vmFlags returns the VmFlags of the mapping of this process that holds b
// (/proc/self/smaps).
func vmFlags(t *testing.T, b []byte) []string {
	t.Helper()
	addr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := mappingRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return nil
}

func mappingRange(line string) (lo, hi uint64, ok bool) {
	r, _, _ := strings.Cut(line, " ")
	a, b, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(a, 16, 64)
	hi, err2 := strconv.ParseUint(b, 16, 64)
	return lo, hi, err1 == nil && err2 == nil
}

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
		flags := vmFlags(t, buf)
		if !slices.Contains(flags, "dd") {
			t.Errorf("%s: mapping flags %v, want dd (MADV_DONTDUMP)", name, flags)
		}
		if keyMemLocked() != slices.Contains(flags, "lo") {
			t.Errorf("%s: mlock reported %v, mapping flags %v", name, keyMemLocked(), flags)
		}
	}
	t.Logf("key mapping locked in RAM: %v", keyMemLocked())
}
