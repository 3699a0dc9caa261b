package keyring

import (
	"fmt"
	"os"
	"time"
)

// PurgeUnlocked overwrites and removes every store-key file that unlock
// wrote for this keyring, and records when. It returns the files purged.
func PurgeUnlocked(kr *Keyring, now time.Time) ([]string, error) {
	var purged []string
	for i := range kr.Unlocks {
		u := &kr.Unlocks[i]
		for _, f := range u.Files {
			if _, err := os.Lstat(f); err != nil {
				continue
			}
			if err := purgeFile(f); err != nil {
				return purged, err
			}
			purged = append(purged, f)
		}
		if u.Purged.IsZero() {
			u.Purged = now
		}
	}
	return purged, nil
}

// UnlockedFiles lists the files unlock wrote that are still present.
func UnlockedFiles(kr *Keyring) []string {
	var out []string
	for _, u := range kr.Unlocks {
		for _, f := range u.Files {
			if _, err := os.Lstat(f); err == nil {
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
