//go:build !linux

package keyring

// disableCoreDumps is a no-op where the platform has no equivalent.
func disableCoreDumps() {}

// CoreDumpsDisabled reports false: this platform cannot say.
func CoreDumpsDisabled() bool { return false }

// DisableCoreDumps is a no-op where the platform has no equivalent.
func DisableCoreDumps() {}
