//go:build unix

package commands

import "syscall"

// noFollow makes an open fail on a symbolic link.
const noFollow = syscall.O_NOFOLLOW

// nonBlock makes an open of a FIFO return at once (no writer: EOF).
const nonBlock = syscall.O_NONBLOCK
