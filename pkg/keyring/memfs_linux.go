package keyring

import (
	"fmt"
	"syscall"
)

const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// onMemoryFS reports whether dir is on tmpfs or ramfs.
func onMemoryFS(dir string) (bool, string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, "", fmt.Errorf("statfs %s: %w", dir, err)
	}
	switch uint32(st.Type) {
	case tmpfsMagic:
		return true, "tmpfs", nil
	case ramfsMagic:
		return true, "ramfs", nil
	}
	return false, fmt.Sprintf("a disk filesystem (type 0x%x)", uint32(st.Type)), nil
}
