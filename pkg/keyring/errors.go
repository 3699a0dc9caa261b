package keyring

import "errors"

// Errors the commands map to exit codes. Each is wrapped with the keyring's
// path and what to do.
var (
	ErrNotFound       = errors.New("no keyring")
	ErrCorrupt        = errors.New("keyring is corrupt")
	ErrVersion        = errors.New("keyring has an unknown format version")
	ErrPermissions    = errors.New("keyring permissions are unsafe")
	ErrForeign        = errors.New("keyring belongs elsewhere")
	ErrAlreadyEnabled = errors.New("CMEK is already enabled")
	ErrRevoked        = errors.New("keyring is revoked")
	ErrAuth           = errors.New("authentication failed")
	ErrLocked         = errors.New("keyring is locked")
)
