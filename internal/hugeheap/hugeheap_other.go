//go:build !linux || !(amd64 || arm64)

package hugeheap

// Advise does nothing: only 64-bit Linux (the release targets) is advised.
func Advise() {}
