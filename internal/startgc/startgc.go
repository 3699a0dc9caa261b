// Package startgc holds Go's garbage collector off while cmekctl starts.
//
// Package initialisation (the KMS and store SDKs register protobuf types,
// build endpoint tables and compile patterns) and building the command tree
// allocate a few MiB that stay live, just over the 4 MiB at which Go's first
// collection starts by default. That collection, started while init is
// still allocating, cost about a quarter of the CPU time of `cmekctl
// version` (docs/performance.md). So the collector is off from this
// package's init (about halfway through the init order, ~1.3 MiB into
// init: Go initialises packages in import-path order as their imports
// allow, and runtime/debug sorts late) until main calls Resume, which restarts it as if the heap of that
// moment had just been collected: the next collection comes after the heap
// has grown by GOGC percent of it, and from then on collections follow GOGC
// and GOMEMLIMIT exactly as the user set them.
//
// Its init also advises the heap again for huge pages (internal/hugeheap),
// which has grown by then.
//
// Only package main imports it; whatever runs cmekctl's main (tests too)
// calls Resume first.
package startgc

import (
	"math"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/cmekctl/cmekctl/internal/hugeheap"
)

// backstop bounds the heap while the collector is off, should Resume never
// be called: the collector then runs as under GOMEMLIMIT.
const backstop = 256 << 20

var (
	gcPercent = debug.SetGCPercent(-1)
	memLimit  = debug.SetMemoryLimit(backstop)
	once      sync.Once
)

func init() {
	// About halfway through init the heap has grown past the part that
	// internal/hugeheap advised when init began.
	hugeheap.Advise()
	if memLimit < backstop {
		debug.SetMemoryLimit(memLimit) // a lower GOMEMLIMIT stays in force
	}
}

// Resume turns the collector back on; later calls do nothing.
func Resume() {
	once.Do(func() {
		debug.SetMemoryLimit(memLimit)
		if gcPercent < 0 { // GOGC=off: leave it off
			return
		}
		// Before its first collection Go starts one at 4 MiB × GOGC/100
		// (the heap minimum), which the start-up heap already exceeds;
		// twice GOGC puts the first at 8 MiB × GOGC/100, and the first
		// collection's end restores GOGC.
		debug.SetGCPercent(min(2*gcPercent, math.MaxInt32))
		first := new([16]byte)
		runtime.AddCleanup(first, func(p int) { debug.SetGCPercent(p) }, gcPercent)
	})
}
