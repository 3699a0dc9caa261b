package keyring

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Plaintext keys live, where it is cheap, outside the Go heap: in one
// anonymous mapping that is excluded from core dumps (MADV_DONTDUMP) and
// locked in RAM (mlock, so never written to swap) when RLIMIT_MEMLOCK
// allows. Best effort: core dumps are off anyway (disableCoreDumps), the
// mapping is taken once, and a buffer comes from the heap when it is full
// or could not be made. Buffers are never reused: a key wiped and then read
// again by mistake reads zeros, never another key.
const (
	keyMemSize = 256 << 10
	keyMemSlot = 64
)

var keyMemState struct {
	once   sync.Once
	mu     sync.Mutex
	mem    []byte
	next   int
	locked bool
}

// keyMem returns a zeroed buffer of n bytes for key material.
func keyMem(n int) []byte {
	s := &keyMemState
	s.once.Do(func() {
		m, err := unix.Mmap(-1, 0, keyMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return
		}
		if unix.Madvise(m, unix.MADV_DONTDUMP) != nil {
			_ = unix.Munmap(m)
			return
		}
		s.locked = unix.Mlock(m) == nil
		s.mem = m
	})
	need := (n + keyMemSlot - 1) / keyMemSlot * keyMemSlot
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil || n <= 0 || s.next+need > len(s.mem) {
		return make([]byte, n)
	}
	b := s.mem[s.next : s.next+n : s.next+n]
	s.next += need
	return b
}

// keyMemLocked reports whether the key mapping is locked in RAM (mlock
// succeeded within RLIMIT_MEMLOCK).
func keyMemLocked() bool {
	keyMem(0)
	return keyMemState.locked
}
