// Package hugeheap asks Linux to back the part of Go's heap that package
// initialisation fills with transparent huge pages.
//
// The packages that cmekctl links (the KMS and store SDKs) leave ~3 MiB on
// the heap in their init, which the kernel faults in 4 KiB at a time: ~1000
// page faults, a large part of the CPU time of `cmekctl version`
// (docs/performance.md, "Start-up"). Go does not advise its heap itself, so
// where transparent huge pages are enabled only for memory that asks
// (/sys/kernel/mm/transparent_hugepage/enabled is "madvise", the default of
// most distributions) the heap never gets them. Advise marks the 2 MiB
// regions of the heap from where its next allocation goes MADV_HUGEPAGE, so
// that each region init has not written yet comes in one fault. (The region
// the heap has begun stays in 4 KiB pages: MADV_COLLAPSE would move it to a
// huge page, but it first waits for every CPU to drain its page lists, which
// on a busy machine took up to 7 ms.)
//
// This package's init calls Advise; it imports only syscall, so it is
// initialised among the first packages, before any SDK (package main
// imports it for that). Go maps its heap in 4 MiB steps, and a step mapped
// after the advice is not advised: internal/startgc, initialised about
// halfway through, calls Advise again. Where huge pages are "always" or
// "never" it does nothing (the first needs no advice, the second refuses
// it), and elsewhere than on 64-bit Linux (amd64, arm64: Go's heap arenas
// there are the 64 MiB it assumes) the package is empty.
package hugeheap
