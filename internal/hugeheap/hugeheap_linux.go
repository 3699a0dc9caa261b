//go:build linux && (amd64 || arm64)

package hugeheap

import (
	"syscall"
	"unsafe"
)

const (
	hugePage = 2 << 20  // the PMD size with 4 KiB pages (x86-64, arm64)
	arena    = 64 << 20 // Go's heap arenas on 64-bit Linux, aligned to their size
	// window is how much of the heap is advised, from the region of its
	// next allocation on: what init will still allocate, about 3 MiB,
	// wherever in that region the heap stands now.
	window = 3 * hugePage

	// MADV_HUGEPAGE (linux/mman.h), absent from package syscall.
	madvHugePage = 14
)

// modeFile says whether transparent huge pages are on for all memory
// ("[always]"), only for advised memory ("[madvise]"), or off ("[never]").
const modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

var (
	// onlyIfAdvised: modeFile said "[madvise]" at init.
	onlyIfAdvised bool
	// advised is the last range advised, for tests; empty if none was.
	advised struct{ start, end uintptr }
	// probe shows where the heap's next pages are: a new object over 32 KiB
	// gets the lowest free pages, after all that was allocated so far, and
	// fresh from the kernel it is not written to.
	probe *[64 << 10]byte
)

func init() {
	onlyIfAdvised = modeIs(modeFile, "[madvise]")
	Advise()
}

// Advise marks the heap from where its next allocation goes, 6 MiB,
// MADV_HUGEPAGE. It does nothing unless huge pages are enabled for advised
// memory only.
func Advise() {
	if !onlyIfAdvised {
		return
	}
	probe = new([64 << 10]byte)
	start := uintptr(unsafe.Pointer(probe)) &^ (hugePage - 1)
	probe = nil
	// Stay inside the probe's arena: Go has reserved all of it, so the
	// advice is only about memory that is, or will be mapped as, its heap.
	end := min(start+window, start&^(arena-1)+arena)
	// ENOMEM (part of the range not mapped) still advises the rest.
	if err := madvise(start, end-start, madvHugePage); err != nil && err != syscall.ENOMEM {
		return
	}
	advised.start, advised.end = start, end
}

func madvise(addr, n uintptr, advice int) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, n, uintptr(advice)); errno != 0 {
		return errno
	}
	return nil
}

// modeIs reports whether the file at path holds mode (e.g. "[madvise]").
func modeIs(path, mode string) bool {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	var buf [128]byte
	n, err := syscall.Read(fd, buf[:])
	if err != nil {
		return false
	}
	for i := 0; i+len(mode) <= n; i++ {
		if string(buf[i:i+len(mode)]) == mode {
			return true
		}
	}
	return false
}
