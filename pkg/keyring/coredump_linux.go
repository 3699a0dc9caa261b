package keyring

import (
	"sync"

	"golang.org/x/sys/unix"
)

var coreOnce sync.Once

// disableCoreDumps makes the process undumpable and sets its core-file limit
// to zero before it holds any plaintext key, so a crash or a debugger attach
// by another user cannot copy keys out of memory. Best effort: failures are
// ignored (the operation itself must not fail because of it).
func disableCoreDumps() {
	coreOnce.Do(func() {
		_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
		_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	})
}

// CoreDumpsDisabled reports whether the process is now undumpable.
func CoreDumpsDisabled() bool {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return err == nil && v == 0
}

// DisableCoreDumps is disableCoreDumps for the command line, which calls it
// first thing in every verb (a crash in enable must not dump the new store
// key either).
func DisableCoreDumps() { disableCoreDumps() }
