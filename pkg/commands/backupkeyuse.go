package commands

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// backup-keys create and backup encrypt --backup-key: a backup key made
// ahead of its backup.

// backupKeyUseHelp is said in the help of both verbs.
const backupKeyUseHelp = `backup encrypt makes a full backup's key itself (one KMS wrap per region):
that is the usual way, and backup-keys create is not needed for it.
backup-keys create makes a key ahead of its backup, for when the key must
exist first: to put it in escrow (backup-keys export) or check that every
region unwraps it (backup-keys verify) before any data is sealed under it,
or to make the KMS wraps where the operator's credentials are and run the
backup job with unwrap alone. backup encrypt --backup-key ID then seals one
full backup under it (one KMS unwrap); create prints that command. Use each
key for one full backup (its incrementals reuse it through --incremental-of):
a key is what crypto-shredding a backup destroys.`

// useBackupKey finds the backup key id (the whole ID, or a prefix of at
// least 8 characters that names one key) in the keyrings and unwraps it.
func useBackupKey(ctx context.Context, env keyring.Env, g *keyring.Group, id string) (keyring.BackupKey, []byte, error) {
	var found []keyring.BackupKey
	for _, b := range g.BackupKeys() {
		if b.ID == id || (len(id) >= 8 && strings.HasPrefix(b.ID, id)) {
			found = append(found, b)
		}
	}
	switch {
	case len(found) == 0:
		return keyring.BackupKey{}, nil, usageError("cmekctl backup-keys list --keyring DIR shows the keys these keyrings record; a key made with other keyrings comes in with backup-keys import",
			"--backup-key %s: no backup key of that ID in the keyrings given", id)
	case len(found) > 1:
		return keyring.BackupKey{}, nil, usageError("give more of the ID (cmekctl backup-keys list -o json shows whole IDs)", "--backup-key %s names %d backup keys", id, len(found))
	}
	if err := g.CheckNotRevoked(); err != nil {
		return keyring.BackupKey{}, nil, err
	}
	key, _, err := keyring.UnwrapBackupKey(ctx, env, g.Cluster, found[0], "")
	return found[0], key, err
}

// backupEncryptNext is the command that seals a full backup under the key
// backup-keys create just made, with the keyrings it was given (none when
// they came from the cluster config, which backup encrypt reads too).
func backupEncryptNext(f *Factory, dirs []string, id string) string {
	args := []string{"cmekctl", "backup", "encrypt"}
	if f.flagSources["keyring"] != srcCluster {
		for _, d := range dirs {
			if abs, err := filepath.Abs(d); err == nil {
				d = abs
			}
			args = append(args, "--keyring", shellWord(d))
		}
	}
	return strings.Join(append(args, "--backup-key", id, "IN", "OUT"), " ")
}

// checkBackupKeyFlags refuses --backup-key with a flag that makes or picks
// another key.
func checkBackupKeyFlags(o *BackupOptions) error {
	switch {
	case o.BackupKey == "":
	case o.IncrementalOf != "":
		return usageError("an incremental uses its full backup's key: drop --backup-key", "--backup-key and --incremental-of both name the key")
	case o.Label != "":
		return usageError("the key has the label backup-keys create gave it: drop --label", "--label names a new key, and --backup-key uses one made before")
	}
	return nil
}

func printBackupNext(f *Factory, dirs []string, id string) {
	fmt.Fprintf(f.IO.ErrOut, "cmekctl: next: %s\n", backupEncryptNext(f, dirs, id))
}
