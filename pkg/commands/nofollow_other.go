//go:build !unix

package commands

import "os"

const noFollow = 0

const nonBlock = 0

// inode is 0: the platform has no inode numbers to stamp.
func inode(os.FileInfo) uint64 { return 0 }
