//go:build unix

package safefile

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func owner(fi os.FileInfo) (int, bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return int(st.Uid), true
	case *unix.Stat_t:
		return int(st.Uid), true
	}
	return 0, false
}
