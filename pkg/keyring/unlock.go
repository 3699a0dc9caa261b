package keyring

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Store-key file formats that unlock writes.
const (
	FormatCockroachV1 = "cockroach-v1" // 32-byte key ID then the 32-byte key
	FormatCockroachV2 = "cockroach-v2" // a JWKS with one oct key
	FormatRaw         = "raw"          // the 32-byte key alone
)

// ErrNotTmpfs is returned when unlock's output directory is on a disk.
var ErrNotTmpfs = errors.New("output directory is not on tmpfs or ramfs")

// UnlockOptions say where and how unlock writes the store keys.
type UnlockOptions struct {
	Out       string
	Format    string
	AllowDisk bool
	StorePath string // CockroachDB store path for --enterprise-encryption
}

// UnlockResult says what unlock wrote.
type UnlockResult struct {
	Dir      string   `json:"dir"`
	Files    []string `json:"files"`
	Key      string   `json:"key"`
	OldKey   string   `json:"old_key"`
	Flag     string   `json:"enterprise_encryption"`
	Format   string   `json:"format"`
	StoreKey string   `json:"store_key_id"`
}

// Unlock is a node start: one KMS unwrap of the store-key bundle, then the
// active and previous store keys written as store-key files in Out (mode
// 0600), recorded in the keyring so revoke can purge them.
func Unlock(ctx context.Context, env Env, s Store, opt UnlockOptions) (*UnlockResult, error) {
	switch opt.Format {
	case "":
		opt.Format = FormatCockroachV1
	case FormatCockroachV1, FormatCockroachV2, FormatRaw:
	default:
		return nil, fmt.Errorf("unknown --format %q: use cockroach-v1, cockroach-v2 or raw", opt.Format)
	}
	if opt.StorePath == "" {
		opt.StorePath = "*"
	}
	// The keyring first: a missing or refused keyring is the first thing to say.
	if _, err := s.Load(); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(opt.Out)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return nil, fmt.Errorf("create --out directory: %w", err)
	}
	if err := safefile.CheckPrivate(safefile.OS{}, out, true); err != nil {
		return nil, fmt.Errorf("%w: --out: %v", ErrPermissions, err)
	}
	if !opt.AllowDisk {
		ok, fstype, err := onMemoryFS(out)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s is on %s, and plaintext keys must not reach a disk: mount a tmpfs there (mount -t tmpfs -o size=1m,mode=0700 tmpfs %s) or pass --allow-disk", ErrNotTmpfs, out, fstype, out)
		}
	}
	l, err := s.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	kr, err := s.Load()
	if err != nil {
		return nil, err
	}
	if r := kr.Revoked; r != nil {
		return nil, fmt.Errorf("%s: %w on %s (%s): the node cannot start", s.Dir, ErrRevoked, r.At.Format("2006-01-02T15:04:05Z07:00"), r.Reason)
	}
	b, err := UnwrapBundle(ctx, env, kr.ClusterID, kr.Region, kr.StoreWrap)
	if err != nil {
		return nil, err
	}
	defer b.Wipe()
	res := &UnlockResult{Dir: out, Format: opt.Format, StoreKey: b.IDs[0], OldKey: "plain"}
	for i, id := range b.IDs {
		name := "active.key"
		if i > 0 {
			name = "old.key"
		}
		p := filepath.Join(out, name)
		data, err := encodeStoreKey(opt.Format, id, b.Keys[i])
		if err != nil {
			return nil, err
		}
		err = safefile.WriteFile(safefile.OS{}, p, data, 0o600)
		Wipe(data)
		if err != nil {
			return nil, err
		}
		res.Files = append(res.Files, p)
		if i == 0 {
			res.Key = p
		} else {
			res.OldKey = p
		}
	}
	// A stale old.key from an earlier unlock must not linger.
	if len(b.IDs) == 1 {
		if err := purgeFile(filepath.Join(out, "old.key")); err != nil {
			return nil, err
		}
	}
	res.Flag = fmt.Sprintf("path=%s,key=%s,old-key=%s", opt.StorePath, res.Key, res.OldKey)
	now := env.now()
	kr.Unlocks = recordUnlock(kr.Unlocks, UnlockRecord{Dir: out, Files: res.Files, Format: opt.Format, At: now})
	kr.Updated = now
	if err := s.Save(kr); err != nil {
		return res, fmt.Errorf("the store keys were written to %s but the keyring could not record it (revoke will not know to purge them): %w", out, err)
	}
	return res, nil
}

func recordUnlock(list []UnlockRecord, u UnlockRecord) []UnlockRecord {
	out := list[:0]
	for _, x := range list {
		if x.Dir != u.Dir {
			out = append(out, x)
		}
	}
	return append(out, u)
}

func encodeStoreKey(format, id string, key []byte) ([]byte, error) {
	rawID, err := hex.DecodeString(id)
	if err != nil || len(rawID) != KeySize {
		return nil, fmt.Errorf("store key ID %s is not 32 bytes of hex", short(id))
	}
	switch format {
	case FormatCockroachV1:
		return append(rawID, key...), nil
	case FormatCockroachV2:
		type jwk struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			K   string `json:"k"`
		}
		return json.Marshal(struct {
			Keys []jwk `json:"keys"`
		}{[]jwk{{Kty: "oct", Kid: id, Alg: "cockroach-aes-256-ctr-v2", K: base64.RawURLEncoding.EncodeToString(key)}}})
	default:
		return append([]byte(nil), key...), nil
	}
}

// purgeFile overwrites a file with zeros, fsyncs it and removes it. Only a
// regular file is touched: a symbolic link, FIFO or device at p is not what
// unlock wrote there, and following it could zero another file (revoke runs
// as root), so it is refused and left in place.
func purgeFile(p string) error {
	li, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("purge %s: %w", p, err)
	}
	if !li.Mode().IsRegular() {
		what := "not a regular file (" + li.Mode().Type().String() + ")"
		if li.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			what = "a symbolic link to " + target
		}
		return fmt.Errorf("purge %s: it is %s, not the file unlock wrote; it was not followed or changed: check it, remove it by hand and run again", p, what)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("purge %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err == nil && !os.SameFile(li, fi) {
		err = errors.New("it was replaced while being purged; it was not changed: run again")
	}
	if err == nil {
		_, err = f.WriteAt(make([]byte, fi.Size()), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("purge %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("purge %s: %w", p, err)
	}
	return safefile.OS{}.SyncDir(filepath.Dir(p))
}

// LeftoverKeyFiles lists files that unlock wrote which are still present,
// and key-like files (32 or 64 bytes, or a JWKS) in the keyring directory.
func LeftoverKeyFiles(s Store, kr *Keyring) []string {
	out := UnlockedFiles(kr)
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == FileName || name == LockName || name == JournalName {
			continue
		}
		p := filepath.Join(s.Dir, name)
		if keyLike(p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func keyLike(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if fi.Size() == KeySize || fi.Size() == 2*KeySize {
		return true
	}
	if fi.Size() > 64<<10 {
		return false
	}
	b, err := os.ReadFile(p)
	return err == nil && strings.Contains(string(b), `"kty"`)
}
