package filekms

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cmekctl/cmekctl/pkg/keywrap"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Real erasure. Since format version 2 a key's version material is never in
// its state file in plain: it is sealed (keywrap, AES-256-GCM with
// module-drawn nonces) under a per-key secret kept in one small file,
// <name>.secret. Every save of the state file (rotate, disable, enable)
// leaves older copies of it behind on disk and in backups of the directory;
// they are useless without the secret. Destroy overwrites the secret file in
// place, syncs and removes it: what remains of the key anywhere is sealed
// under a secret that is gone.
//
// What this does not cover: a copy of the secret file made before the
// destroy (a backup of the whole directory), and filesystems or devices
// that do not overwrite in place (copy-on-write filesystems, SSD wear
// levelling, snapshots). file-kms is for drills and labs; a real KMS's
// key material lives in hardware that is built to forget it.

// secretPath is the key's secret file.
func (k *Key) secretPath() string { return filepath.Join(k.dir, k.name+".secret") }

// newSecret writes a fresh per-key secret (mode 0600).
func (k *Key) newSecret() ([]byte, error) {
	s := make([]byte, keyBytes)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	if err := safefile.WriteFile(k.opt.FS, k.secretPath(), s, 0o600); err != nil {
		return nil, &provider.Error{Provider: name, Op: "save", Class: provider.Transient, Code: "IOError", Message: err.Error(), Err: err}
	}
	return s, nil
}

// readSecret reads the per-key secret; a missing one is nil.
func (k *Key) readSecret(op string) ([]byte, error) {
	s, err := k.opt.FS.ReadFile(k.secretPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &provider.Error{Provider: name, Op: op, Class: provider.Transient, Code: "IOError", Message: err.Error(), Err: err}
	}
	if err := safefile.CheckPrivate(k.opt.FS, k.secretPath(), false); err != nil {
		return nil, provider.Errorf(name, op, provider.Revoked, "Permissions", "%v", err)
	}
	if len(s) != keyBytes {
		return nil, provider.Errorf(name, op, provider.Misuse, "Corrupt", "secret file %s is %d bytes, want %d", k.secretPath(), len(s), keyBytes)
	}
	return s, nil
}

func (k *Key) materialAD(id int) []byte {
	return []byte("cmekctl file-kms material\x00" + k.name + "\x00" + strconv.Itoa(id))
}

// openMaterial unseals every live version's material in st (read from a
// version-2 file) into Material.
func (k *Key) openMaterial(st *stateFile, op string) error {
	live := false
	for _, v := range st.Versions {
		live = live || len(v.Sealed) > 0
	}
	if !live {
		return nil
	}
	secret, err := k.readSecret(op)
	if err != nil {
		return err
	}
	if secret == nil {
		return provider.Errorf(name, op, provider.Misuse, "Corrupt", "key %s has sealed material but no secret file %s (restored from a partial copy?)", k.name, k.secretPath())
	}
	defer clear(secret)
	for i := range st.Versions {
		v := &st.Versions[i]
		if len(v.Sealed) == 0 {
			continue
		}
		m, err := keywrap.Open(secret, v.Sealed, k.materialAD(v.ID))
		if err != nil {
			return provider.Errorf(name, op, provider.Misuse, "Corrupt", "version %d of key %s does not open under its secret file (another key's secret?)", v.ID, k.name)
		}
		v.Material, v.Sealed = m, nil
	}
	return nil
}

// sealed returns a copy of st for disk: every version's material sealed
// under the key's secret (made on first use), none in plain.
func (k *Key) sealed(st *stateFile) (*stateFile, error) {
	out := *st
	out.Version = version
	out.Versions = make([]versionFile, len(st.Versions))
	copy(out.Versions, st.Versions)
	need := false
	for _, v := range st.Versions {
		need = need || len(v.Material) > 0
	}
	if !need {
		return &out, nil
	}
	secret, err := k.readSecret("save")
	if err != nil {
		return nil, err
	}
	if secret == nil {
		if secret, err = k.newSecret(); err != nil {
			return nil, err
		}
	}
	defer clear(secret)
	for i := range out.Versions {
		v := &out.Versions[i]
		if len(v.Material) == 0 {
			continue
		}
		s, err := keywrap.Seal(nil, secret, v.Material, k.materialAD(v.ID))
		if err != nil {
			return nil, err
		}
		v.Sealed, v.Material = s, nil
	}
	return &out, nil
}

// shredSecret overwrites the secret file in place with zeros, syncs it and
// removes it. A missing file is fine.
func (k *Key) shredSecret() error {
	p := k.secretPath()
	if _, ok := k.opt.FS.(safefile.OS); ok {
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			fi, serr := f.Stat()
			if serr == nil {
				_, serr = f.WriteAt(make([]byte, fi.Size()), 0)
			}
			if serr == nil {
				serr = f.Sync()
			}
			f.Close()
			if serr != nil {
				return &provider.Error{Provider: name, Op: "destroy", Class: provider.Transient, Code: "IOError", Message: serr.Error(), Err: serr}
			}
		}
	}
	if err := k.opt.FS.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &provider.Error{Provider: name, Op: "destroy", Class: provider.Transient, Code: "IOError", Message: err.Error(), Err: err}
	}
	return k.opt.FS.SyncDir(k.dir)
}
