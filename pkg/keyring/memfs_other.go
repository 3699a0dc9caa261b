//go:build !linux

package keyring

import "github.com/cmekctl/cmekctl/pkg/safefile"

// onMemoryFS cannot tell on this platform: report a disk, so that unlock
// needs --allow-disk.
func onMemoryFS(d *safefile.Dir) (bool, string, error) {
	return false, "a filesystem this platform cannot identify", nil
}
