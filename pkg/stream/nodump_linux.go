package stream

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

var pageSize = uintptr(os.Getpagesize())

// noDump marks the whole pages inside b MADV_DONTDUMP: a plaintext buffer
// (a reader's out, a writer's in) stays out of a core dump or gcore image
// even if one is taken despite the limits cmekctl sets. Best effort: a
// buffer smaller than a page, or a failing call, is left as it is. The
// pages are b's alone while b lives (the Go heap gives a buffer of a page
// or more its own pages, up to its ends, which may share a page with other
// objects and are left out); when the heap reuses them after b is freed,
// what lands there is left out of dumps too, which costs nothing.
func noDump(b []byte) {
	if cap(b) == 0 {
		return
	}
	b = b[:cap(b)]
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(len(b))
	lo := (start + pageSize - 1) &^ (pageSize - 1)
	hi := end &^ (pageSize - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo-start:hi-start], unix.MADV_DONTDUMP)
}
