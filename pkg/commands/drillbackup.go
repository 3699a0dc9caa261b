package commands

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cmekctl/cmekctl/pkg/backup"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// The drill's backup steps: a backup taken while the CMEK key works is
// proven RESTORABLE by backup verify, and the same file NOT RESTORABLE
// (exit class not-restorable) once the key is destroyed.

// drillBackup writes a 1 MiB backup under a new backup key into the
// sandbox and verifies it.
func (d *drill) drillBackup(s *kmsSession, dir string) (string, bool) {
	g, err := keyring.LoadGroup(d.ctx, d.stores, true)
	if err != nil {
		return err.Error(), false
	}
	bk, key, err := keyring.CreateBackupKey(d.ctx, d.f.env(s), g, "drill", nil)
	g.Close()
	if err != nil {
		return err.Error(), false
	}
	defer keyring.Wipe(key)
	d.backupFile = filepath.Join(dir, "backups", "drill.cmek")
	if err := writeDrillBackup(d.backupFile, g.Cluster, bk, key); err != nil {
		return err.Error(), false
	}
	rep, worst := d.verifyBackup(s)
	if len(rep.Files) != 1 {
		return "no report", false
	}
	r := rep.Files[0]
	return fmt.Sprintf("%s: %s, %d bytes in %d chunks, unwrapped by %s", filepath.Base(r.File), restorableWord(r), r.Bytes, r.Chunks, r.Region),
		worst == ExitOK && r.Bytes == 1<<20 && s.Counts().Unwrap == 1
}

// drillBackupGone verifies the backup again after the key is destroyed.
func (d *drill) drillBackupGone(s *kmsSession) (string, bool) {
	rep, worst := d.verifyBackup(s)
	if len(rep.Files) != 1 {
		return "no report", false
	}
	r := rep.Files[0]
	return fmt.Sprintf("%s: %s (%s)", filepath.Base(r.File), restorableWord(r), r.Class), worst == ExitNotRestorable && !r.Restorable
}

func (d *drill) verifyBackup(s *kmsSession) (backupVerifyReport, int) {
	g, err := keyring.LoadGroup(d.ctx, d.stores, false)
	if err != nil {
		return backupVerifyReport{}, ExitFailure
	}
	defer g.Close()
	return verifyBackups(d.ctx, d.f.env(s), g, []string{d.backupFile}, 2)
}

func restorableWord(r verifyResult) string {
	if r.Restorable {
		return "RESTORABLE"
	}
	return "NOT RESTORABLE"
}

func writeDrillBackup(path, cluster string, bk keyring.BackupKey, key []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer fh.Close()
	w, err := backup.NewWriter(fh, backup.Header{ClusterID: cluster, BackupKeyID: bk.ID, Kind: backup.KindFull, Wraps: toBackupWraps(bk.Wraps)}, key, stream.Options{})
	if err != nil {
		return err
	}
	pt := make([]byte, 1<<20)
	_, _ = rand.Read(pt)
	if _, err := w.Write(pt); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return fh.Close()
}
