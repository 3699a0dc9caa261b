//go:build !linux

package keyring

// onMemoryFS cannot tell on this platform: report a disk, so that unlock
// needs --allow-disk.
func onMemoryFS(dir string) (bool, string, error) {
	return false, "a filesystem this platform cannot identify", nil
}
