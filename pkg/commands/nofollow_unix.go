//go:build unix

package commands

import (
	"os"
	"syscall"
)

// noFollow makes an open fail on a symbolic link.
const noFollow = syscall.O_NOFOLLOW

// nonBlock makes an open of a FIFO return at once (no writer: EOF).
const nonBlock = syscall.O_NONBLOCK

// inode is a file's inode number (0 where the platform has none).
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
