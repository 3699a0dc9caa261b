//go:build !linux

package keyring

// keyMem returns a buffer of n bytes for key material: the heap here.
func keyMem(n int) []byte { return make([]byte, n) }

func keyMemLocked() bool { return false }
