//go:build linux && (amd64 || arm64)

package hugeheap

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestModeIs(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]bool{
		"always [madvise] never\n": true,
		"[always] madvise never\n": false,
		"always madvise [never]\n": false,
		"":                         false,
	} {
		path := filepath.Join(dir, "enabled")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := modeIs(path, "[madvise]"); got != want {
			t.Errorf("modeIs(%q) = %v, want %v", content, got, want)
		}
	}
	if modeIs(filepath.Join(dir, "absent"), "[madvise]") {
		t.Error("modeIs of a missing file = true")
	}
}

// This test binary imports the package, so its init advised the heap if
// the system's mode asks for advice; nothing otherwise.
func TestInitAdvisesHeap(t *testing.T) {
	if !modeIs(modeFile, "[madvise]") {
		if advised.start != 0 {
			t.Fatalf("%s is not madvise, but %#x-%#x was advised", modeFile, advised.start, advised.end)
		}
		t.Logf("%s is not madvise: nothing advised, as it should be", modeFile)
		return
	}
	check := func(when string) {
		t.Helper()
		if advised.end-advised.start < hugePage {
			t.Fatalf("%s: advised %#x-%#x, want at least one huge page", when, advised.start, advised.end)
		}
		if flags := vmFlags(t, advised.start); !strings.Contains(" "+flags+" ", " hg ") {
			t.Errorf("%s: the mapping at %#x has VmFlags %q, want hg (MADV_HUGEPAGE)", when, advised.start, flags)
		}
	}
	check("after init")
	before := advised
	// The heap grows past what was advised: objects over 32 KiB take the
	// lowest free pages, one after the other.
	var grown [][]byte
	for range window / (48 << 10) {
		grown = append(grown, make([]byte, 48<<10))
	}
	Advise()
	check("after Advise")
	if advised == before {
		t.Errorf("Advise after the heap grew advised the same range %#x-%#x", before.start, before.end)
	}
	_ = grown
}

// vmFlags returns the VmFlags line of the mapping holding addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line + " x")[0], "-"); ok && !strings.HasSuffix(lo, ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = uint64(addr) >= l && uint64(addr) < h
				continue
			}
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}
