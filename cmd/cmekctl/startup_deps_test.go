package main

import (
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Packages that every cmekctl start would initialise and no verb uses
// (docs/performance.md, "Start-up"): cloud.google.com/go/storage brought a
// gRPC transport with xDS, Envoy's protobufs and a metrics exporter, ~2 ms
// and 130 packages of init per start, for a store that speaks the JSON API.
var unwantedAtStart = []string{
	"cloud.google.com/go/storage",
	"google.golang.org/grpc/xds",
	"github.com/envoyproxy/",
	"github.com/cncf/xds/",
	"cloud.google.com/go/monitoring",
	"github.com/GoogleCloudPlatform/opentelemetry-operations-go/",
}

func TestStartupLinksNoXDS(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range unwantedAtStart {
			if pkg == bad || strings.HasPrefix(pkg, bad) || strings.HasPrefix(pkg, bad+"/") {
				t.Errorf("cmekctl links %s: its package init runs at every start (see docs/performance.md, Start-up)", pkg)
			}
		}
	}
}

// initBytesLimit bounds what one linked package may allocate in its init:
// every start of cmekctl pays for it, in page faults of fresh heap.
// tablewriter v1.1 preallocated a 663 KB width cache (an 8192-entry map) in
// pkg/twwidth's init, ~140 page faults and ~0.3 ms per start.
var initBytesLimit = map[string]int{
	"github.com/olekukonko/tablewriter/pkg/twwidth": 64 << 10,
}

var initTraceLine = regexp.MustCompile(`(?m)^init (\S+) @\S+ ms, \S+ ms clock, (\d+) bytes`)

// TestStartupInitAllocations runs this test binary, which links the same
// module versions as cmekctl, with GODEBUG=inittrace=1 and checks the
// bytes the packages above allocate in their init.
func TestStartupInitAllocations(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range initTraceLine.FindAllSubmatch(initTrace(t), -1) {
		pkg := string(m[1])
		limit, ok := initBytesLimit[pkg]
		if !ok {
			continue
		}
		seen[pkg] = true
		if n, _ := strconv.Atoi(string(m[2])); n > limit {
			t.Errorf("init of %s allocates %d bytes at every start, over %d (docs/performance.md, Start-up)", pkg, n, limit)
		}
	}
	for pkg := range initBytesLimit {
		if !seen[pkg] {
			t.Logf("%s has no init work", pkg)
		}
	}
}

// initTrace runs this test binary, which links the same packages as
// cmekctl, with GODEBUG=inittrace=1 and returns its output: a line per
// package init, in the order they ran.
func initTrace(t *testing.T) []byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	godebug := "inittrace=1"
	if v := os.Getenv("GODEBUG"); v != "" { // e.g. fips140=only: keep it
		godebug = v + "," + godebug
	}
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", os.Args[0], err, out)
	}
	return out
}

// internal/hugeheap advises the heap for huge pages in its init, which
// helps only before the SDKs' init has written it: no package outside the
// standard library may be initialised before it.
func TestStartupHugeHeapFirst(t *testing.T) {
	const hugeheap = "github.com/cmekctl/cmekctl/internal/hugeheap"
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("internal/hugeheap is empty on %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	var before []string
	for _, m := range initTraceLine.FindAllSubmatch(initTrace(t), -1) {
		pkg := string(m[1])
		if pkg == hugeheap {
			if len(before) > 0 {
				t.Errorf("initialised before %s: %s", hugeheap, strings.Join(before, ", "))
			}
			return
		}
		if first, _, _ := strings.Cut(pkg, "/"); strings.Contains(first, ".") {
			before = append(before, pkg)
		}
	}
	t.Fatalf("%s was not initialised (is it still imported by package main?)", hugeheap)
}
