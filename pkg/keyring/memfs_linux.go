package keyring

import (
	"fmt"
	"syscall"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// onMemoryFS reports whether the opened directory d is on tmpfs or ramfs
// (fstatfs on its descriptor: the directory checked, not its path again).
func onMemoryFS(d *safefile.Dir) (bool, string, error) {
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(d.Fd()), &st); err != nil {
		return false, "", fmt.Errorf("statfs %s: %w", d.Path(), err)
	}
	switch uint32(st.Type) {
	case tmpfsMagic:
		return true, "tmpfs", nil
	case ramfsMagic:
		return true, "ramfs", nil
	}
	return false, fmt.Sprintf("a disk filesystem (type 0x%x)", uint32(st.Type)), nil
}
