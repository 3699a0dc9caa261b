package keyring

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
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
// for verify-destroyed's report. A missing directory holds nothing.
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

// PurgeUnlocked overwrites and removes the key files unlock wrote in every
// directory it recorded for this keyring (a pending intent included: unlock
// records the directory before it writes), and every file in each extra
// directory (the operator's --unlock-dir); it records when. It returns the
// files purged. In a recorded directory only the names unlock itself gives
// are touched (active.key, old-ID.key and their temporary files): the
// keyring may have been changed to name any directory of the user's. Each
// directory is opened once (safefile.OpenDir) and its files are reached
// through that descriptor (see purgeFile).
func PurgeUnlocked(kr *Keyring, now time.Time, extra ...string) ([]string, error) {
	var purged []string
	for _, t := range purgeTargets(kr, extra...) {
		p, err := purgeDir(t.dir, t.all)
		purged = append(purged, p...)
		if err != nil {
			return purged, err
		}
	}
	for i := range kr.Unlocks {
		if kr.Unlocks[i].Purged.IsZero() {
			kr.Unlocks[i].Purged = now
		}
	}
	return purged, nil
}

// PurgeList lists the files PurgeUnlocked would purge now: unlock's own
// files in every recorded directory, every entry of each extra directory
// that is not a directory.
func PurgeList(kr *Keyring, extra ...string) []string {
	var out []string
	for _, t := range purgeTargets(kr, extra...) {
		entries, err := os.ReadDir(t.dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if purgeable(e.Name(), e.IsDir(), t.all) {
				out = append(out, filepath.Join(t.dir, e.Name()))
			}
		}
	}
	return out
}

type purgeTarget struct {
	dir string
	all bool // an extra directory: every file in it
}

func purgeTargets(kr *Keyring, extra ...string) []purgeTarget {
	recorded := UnlockDirs(kr)
	var out []purgeTarget
	for _, dir := range UnlockDirs(kr, extra...) {
		if filepath.IsAbs(dir) { // unlock records absolute paths only
			out = append(out, purgeTarget{dir, !slices.Contains(recorded, dir)})
		}
	}
	return out
}

// purgeable says whether the entry name is purged: unlock's own names in a
// recorded directory, anything but a directory in an extra one.
func purgeable(name string, isDir, all bool) bool {
	if all {
		return !isDir
	}
	return unlockFileName(name)
}

// purgeDir purges the files unlock names in dir (every file, with all).
func purgeDir(dir string, all bool) ([]string, error) {
	d, err := safefile.OpenDir(dir, safefile.Purge)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("purge %s: %w", dir, err)
	}
	defer d.Close()
	names, err := d.ReadDir()
	if err != nil {
		return nil, fmt.Errorf("purge %s: %w", dir, err)
	}
	slices.Sort(names)
	var purged []string
	for _, n := range names {
		p := filepath.Join(d.Path(), n)
		if fi, err := d.Lstat(p); err != nil || !purgeable(n, fi.IsDir(), all) {
			continue
		}
		if err := purgeFile(d, n); err != nil {
			return purged, err
		}
		purged = append(purged, p)
	}
	return purged, nil
}

// unlockFileName reports whether name is one that unlock gives a file in
// its --out directory (see keyFileNamer: active.key, old-<16 hex>.key, with
// -FORMAT before .key for a second format), or the temporary file of one
// (safefile.WriteFile's .NAME.tmp-...).
func unlockFileName(name string) bool {
	if rest, ok := strings.CutPrefix(name, "."); ok {
		base, _, ok := strings.Cut(rest, ".tmp-")
		if !ok {
			return false
		}
		name = base
	}
	stem, ok := strings.CutSuffix(name, ".key")
	if !ok {
		return false
	}
	if rest, ok := strings.CutPrefix(stem, "old-"); ok {
		if len(rest) < 16 || strings.Trim(rest[:16], "0123456789abcdefABCDEF") != "" {
			return false
		}
		stem = "active" + rest[16:]
	}
	switch stem {
	case "active", "active-" + FormatCockroachV1, "active-" + FormatCockroachV2, "active-" + FormatRaw:
		return true
	}
	return false
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
