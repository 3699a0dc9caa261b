package keyring

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// UnlockDirs returns every directory unlock recorded for this keyring
// (pending intents included), then extra, without duplicates.
func UnlockDirs(kr *Keyring, extra ...string) []string {
	var dirs []string
	for _, u := range kr.Unlocks {
		if !slices.Contains(dirs, u.Dir) {
			dirs = append(dirs, u.Dir)
		}
	}
	for _, d := range extra {
		if abs, err := filepath.Abs(d); err == nil && !slices.Contains(dirs, abs) {
			dirs = append(dirs, abs)
		}
	}
	return dirs
}

// FilesIn lists every file an unlock directory holds: each entry that is
// not a directory (regular files, dotfiles and temporary files, and
// anything else, such as a symbolic link, that purge refuses to follow),
// then the files a record names outside it. A missing directory holds
// nothing.
func FilesIn(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// PurgeUnlocked overwrites and removes every file in every directory unlock
// recorded for this keyring (a pending intent included: unlock records the
// directory before it writes) and in extra, and every file a record names;
// it records when. It returns the files purged.
func PurgeUnlocked(kr *Keyring, now time.Time, extra ...string) ([]string, error) {
	var purged []string
	for _, f := range PurgeList(kr, extra...) {
		if err := purgeFile(f); err != nil {
			return purged, err
		}
		purged = append(purged, f)
	}
	for i := range kr.Unlocks {
		if kr.Unlocks[i].Purged.IsZero() {
			kr.Unlocks[i].Purged = now
		}
	}
	return purged, nil
}

// PurgeList lists the files PurgeUnlocked would purge now: every entry of
// every recorded directory and of extra that is not a directory, and every
// file a record names inside its own directory, if present.
func PurgeList(kr *Keyring, extra ...string) []string {
	var files []string
	for _, d := range UnlockDirs(kr, extra...) {
		files = append(files, FilesIn(d)...)
	}
	for _, u := range kr.Unlocks {
		for _, f := range u.Files {
			// Only a file inside the directory the record names: a changed
			// keyring must not make revoke zero any file of the user's.
			if rel, err := filepath.Rel(u.Dir, f); err != nil || u.Dir == "" || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
				continue
			}
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	var present []string
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			present = append(present, f)
		}
	}
	return present
}

// UnlockedFiles lists every file still present in a directory unlock
// recorded (pending intents included) or in extra, and every file a record
// names that is still present.
func UnlockedFiles(kr *Keyring, extra ...string) []string {
	var out []string
	for _, d := range UnlockDirs(kr, extra...) {
		out = append(out, FilesIn(d)...)
	}
	for _, u := range kr.Unlocks {
		for _, f := range u.Files {
			if _, err := os.Lstat(f); err == nil && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// MarkRevoked marks the keyring revoked; unlock, data and rotations refuse
// it from then on, even if the KMS would still answer.
func MarkRevoked(kr *Keyring, reason string, now time.Time) error {
	if kr.Revoked != nil {
		return fmt.Errorf("%w already on %s", ErrRevoked, kr.Revoked.At.Format(time.RFC3339))
	}
	kr.Revoked = &Revocation{At: now, Reason: reason}
	kr.Updated = now
	return nil
}
