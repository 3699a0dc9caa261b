package keyring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

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
	AllowDisk bool
	// Format is the file format of a store key handed to a store for the
	// first time; "" keeps each store's own format (cockroach-v1 for a new
	// store). raw writes the bundle's keys for another database: no store,
	// no flag.
	Format string
	// StorePaths are the node's CockroachDB stores, one flag value each;
	// "*" is accepted only alone. StorePath is one more (for one store).
	StorePaths []string
	StorePath  string
	// RotationPeriod is passed to CockroachDB (how often it rotates its own
	// data keys); "" leaves its default.
	RotationPeriod string
	// SpecFile, if set, receives the flag values, one per line.
	SpecFile string
	// Probe: a drill's node-start check; the hand-over is not recorded.
	Probe bool
}

// StoreUnlock is what one store is handed.
type StoreUnlock struct {
	Path         string `json:"path"`
	Key          string `json:"key"`
	KeyID        string `json:"key_id"`
	KeyFormat    string `json:"key_format"`
	OldKey       string `json:"old_key"`
	OldKeyID     string `json:"old_key_id,omitempty"`
	OldKeyFormat string `json:"old_key_format,omitempty"`
	Flag         string `json:"enterprise_encryption"`
	Note         string `json:"note,omitempty"`
}

// UnlockResult says what unlock wrote.
type UnlockResult struct {
	Dir   string   `json:"dir"`
	Files []string `json:"files"`
	// Key, OldKey and Flag are the first store's.
	Key      string        `json:"key,omitempty"`
	OldKey   string        `json:"old_key,omitempty"`
	Flag     string        `json:"enterprise_encryption,omitempty"`
	Flags    []string      `json:"enterprise_encryption_values,omitempty"`
	Stores   []StoreUnlock `json:"stores,omitempty"`
	Format   string        `json:"format"`
	StoreKey string        `json:"store_key_id"`
	SpecFile string        `json:"spec_file,omitempty"`
}

// CheckStorePaths refuses store paths CockroachDB would refuse or mis-split
// (its flag value is split on commas, with no quoting): relative paths, a
// leading ~, commas, '=' and line breaks; "*" unless it is the only store; a
// path given twice.
func CheckStorePaths(paths []string) error {
	if len(paths) == 0 {
		return refusef("give --store-path /path/of/the/store once per store of the node (or --store-path '*' for a node with a single store)", "no store path: unlock hands keys to named CockroachDB stores")
	}
	seen := map[string]bool{}
	for _, p := range paths {
		switch {
		case p == "*" && len(paths) > 1:
			return refusef("name each store by its path: CockroachDB applies '*' to the first store only, and would start the others unencrypted", "--store-path '*' with %d stores", len(paths))
		case p == "*":
		case strings.HasPrefix(p, "~"):
			return refusef("give the absolute path (CockroachDB refuses a path starting with ~)", "store path %q starts with ~", p)
		case !filepath.IsAbs(p):
			return refusef("give the store's absolute path, as cockroach start --store=path=... names it", "store path %q is relative", p)
		case strings.ContainsAny(p, ",=\n\r"):
			return refusef("use a store path without ',' or '=': CockroachDB splits the flag value on them, with no quoting", "store path %q contains ',', '=' or a line break", p)
		}
		if seen[p] {
			return refusef("give each store once", "store path %q is given twice", p)
		}
		seen[p] = true
	}
	return nil
}

func checkUnlockOptions(opt *UnlockOptions) ([]string, error) {
	paths := slices.Clone(opt.StorePaths)
	if opt.StorePath != "" {
		paths = append(paths, opt.StorePath)
	}
	switch opt.Format {
	case "", FormatCockroachV1, FormatCockroachV2:
	case FormatRaw:
		if len(paths) > 0 || opt.RotationPeriod != "" {
			return nil, refusef("drop --store-path and --rotation-period with --format raw, or use --format cockroach-v1 or cockroach-v2", "--format raw writes key files for another database: it takes no CockroachDB store or flag")
		}
		return nil, nil
	default:
		return nil, refusef("use cockroach-v1, cockroach-v2 or raw", "unknown --format %q", opt.Format)
	}
	if err := CheckStorePaths(paths); err != nil {
		return nil, err
	}
	if opt.RotationPeriod != "" {
		d, err := time.ParseDuration(opt.RotationPeriod)
		if err != nil || d <= 0 {
			return nil, refusef("give a duration such as 168h", "--rotation-period %q is not a positive duration", opt.RotationPeriod)
		}
	}
	return paths, nil
}

// keyFileNamer names store-key files in the --out directory: active.key
// for the active store key, old-<ID prefix>.key for another; a key written
// in a second format gets the format in its name.
type keyFileNamer map[string]string // ID -> first format written

func (n keyFileNamer) name(id, format, active string) string {
	base := "active"
	if id != active {
		tag := id
		if b, err := hex.DecodeString(id); err != nil || len(b) != KeySize {
			sum := sha256.Sum256([]byte(id))
			tag = hex.EncodeToString(sum[:])
		}
		base = "old-" + tag[:16]
	}
	if first, ok := n[id]; ok && first != format {
		return base + "-" + format + ".key"
	}
	n[id] = format
	return base + ".key"
}

// Unlock is a node start: one KMS unwrap of the store-key bundle, then for
// each store the key it is to run on (key=) and the key it runs on now
// (old-key=), each in the format that store got it in, written as
// store-key files in Out (mode 0600). The keyring records the hand-over
// (see adoption.go) and the files, so revoke can purge them.
func Unlock(ctx context.Context, env Env, s Store, opt UnlockOptions) (*UnlockResult, error) {
	// The keyring first: a missing or refused keyring is the first thing to say.
	kr0, err := s.Load()
	if err != nil {
		return nil, err
	}
	if s, err = s.Open(); err != nil {
		return nil, err
	}
	defer s.Close()
	paths, err := checkUnlockOptions(&opt)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(opt.Out)
	if err != nil {
		return nil, err
	}
	if opt.Format != FormatRaw && strings.ContainsAny(out, ",=\n\r") {
		return nil, refusef("use an --out directory without ',' or '='", "--out %q contains ',', '=' or a line break, and CockroachDB splits the flag value on them", out)
	}
	var plans []Handover
	for _, p := range paths {
		h, err := kr0.PlanHandover(p, opt.Format)
		if err != nil {
			return nil, err
		}
		plans = append(plans, h)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return nil, fmt.Errorf("create --out directory: %w", err)
	}
	// Opened once and checked on its descriptor (with the directories
	// above it); the tmpfs check and every key file go through it, so a
	// directory above it swapped later cannot send the keys elsewhere.
	outDir, err := safefile.OpenDir(out, safefile.Private)
	if err != nil {
		return nil, fmt.Errorf("%w: --out: %v", ErrPermissions, err)
	}
	defer outDir.Close()
	if !opt.AllowDisk {
		ok, fstype, err := onMemoryFS(outDir)
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
	// Plan again under the lock: another writer may have changed the keyring.
	plans = plans[:0]
	for _, p := range paths {
		h, err := kr.PlanHandover(p, opt.Format)
		if err != nil {
			return nil, err
		}
		plans = append(plans, h)
	}
	// Intent first: the directory is recorded before any plaintext is
	// written there, so that a kill or a failed save later leaves nothing
	// that revoke and verify-destroyed do not know of.
	prevUnlocks, prevUpdated := slices.Clone(kr.Unlocks), kr.Updated
	if err := recordIntent(s, kr, out, env.now()); err != nil {
		return nil, err
	}
	b, err := UnwrapBundle(ctx, env, kr.ClusterID, kr.Region, kr.StoreWrap)
	if err != nil {
		// Nothing was written: take the intent back (best effort; a
		// pending record left behind only makes revoke look there).
		kr.Unlocks, kr.Updated = prevUnlocks, prevUpdated
		_ = s.Save(kr)
		return nil, err
	}
	defer b.Wipe()
	res := &UnlockResult{Dir: out, Format: opt.Format, StoreKey: b.IDs[0]}
	written := map[string]bool{}
	names := map[KeyRef]string{}
	namer := keyFileNamer{}
	write := func(r KeyRef) (string, error) {
		if p, ok := names[r]; ok {
			return p, nil
		}
		p := filepath.Join(out, namer.name(r.ID, r.Format, b.IDs[0]))
		names[r] = p
		key := b.Key(r.ID)
		if key == nil {
			return "", fmt.Errorf("store key %s is not in the region's bundle", short(r.ID))
		}
		data, err := EncodeStoreKeyFile(r.Format, r.ID, key)
		if err != nil {
			return "", err
		}
		err = safefile.WriteFile(outDir, p, data, 0o600)
		Wipe(data)
		if err != nil {
			return "", err
		}
		written[p] = true
		res.Files = append(res.Files, p)
		return p, nil
	}
	if opt.Format == FormatRaw {
		for _, id := range b.IDs {
			if _, err := write(KeyRef{ID: id, Format: FormatRaw}); err != nil {
				return nil, err
			}
		}
	}
	for _, h := range plans {
		su := StoreUnlock{Path: h.Path, KeyID: h.Key.ID, KeyFormat: h.Key.Format, OldKey: "plain", Note: h.Note}
		if su.Key, err = write(h.Key); err != nil {
			return nil, err
		}
		if !h.Old.Plain() {
			su.OldKeyID, su.OldKeyFormat = h.Old.ID, h.Old.Format
			if su.OldKey, err = write(h.Old); err != nil {
				return nil, err
			}
		}
		su.Flag = fmt.Sprintf("path=%s,key=%s,old-key=%s", h.Path, su.Key, su.OldKey)
		if opt.RotationPeriod != "" {
			su.Flag += ",rotation-period=" + opt.RotationPeriod
		}
		res.Stores = append(res.Stores, su)
		res.Flags = append(res.Flags, su.Flag)
	}
	if len(res.Stores) > 0 {
		res.Key, res.OldKey, res.Flag = res.Stores[0].Key, res.Stores[0].OldKey, res.Stores[0].Flag
		if res.Format == "" {
			res.Format = res.Stores[0].KeyFormat
		}
	}
	// Files an earlier unlock wrote here and this one did not: purge them.
	for _, u := range kr.Unlocks {
		if u.Dir != out || !u.Purged.IsZero() {
			continue
		}
		for _, f := range u.Files {
			if !written[f] && filepath.Dir(f) == out && unlockFileName(filepath.Base(f)) {
				if err := purgeFile(outDir, filepath.Base(f)); err != nil {
					return nil, err
				}
			}
		}
	}
	if opt.SpecFile != "" && len(res.Flags) > 0 {
		spec, err := filepath.Abs(opt.SpecFile)
		if err != nil {
			return nil, err
		}
		if err := safefile.WriteFile(safefile.OS{}, spec, []byte(strings.Join(res.Flags, "\n")+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write --spec-file: %w", err)
		}
		res.SpecFile = spec
	}
	now := env.now()
	if !opt.Probe && len(plans) > 0 {
		kr.RecordHanded(plans, now)
	}
	kr.Unlocks = recordUnlock(kr.Unlocks, UnlockRecord{Dir: out, Files: res.Files, Format: res.Format, At: now})
	kr.Updated = now
	if err := s.Save(kr); err != nil {
		return res, fmt.Errorf("the store keys were written to %s but the keyring could not record them (the directory is recorded, so revoke purges it; the hand-over is not recorded: run unlock again): %w", out, err)
	}
	return res, nil
}

// recordIntent saves a pending record of dir (keeping the files an earlier
// unlock there recorded) before unlock writes anything in it.
func recordIntent(s Store, kr *Keyring, dir string, now time.Time) error {
	u := UnlockRecord{Dir: dir, At: now, Pending: true}
	for _, x := range kr.Unlocks {
		if x.Dir == dir && x.Purged.IsZero() {
			u.Files, u.Format = x.Files, x.Format
		}
	}
	kr.Unlocks = recordUnlock(kr.Unlocks, u)
	kr.Updated = now
	if err := s.Save(kr); err != nil {
		return fmt.Errorf("record the unlock directory %s before writing keys there (nothing was written): %w", dir, err)
	}
	return nil
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

// purgeFile overwrites the file name in the opened directory d with zeros,
// fsyncs it and removes it. Only a regular file with one name is touched: a
// symbolic link, FIFO or device there, or a hard link to a file elsewhere,
// is not what unlock wrote, and following it could zero another file
// (revoke runs as root), so it is refused and left in place. It is opened
// relative to d, O_NOFOLLOW|O_NONBLOCK: a FIFO swapped in fails at once
// instead of hanging the purge, and a directory above d swapped since it
// was opened changes nothing.
func purgeFile(d *safefile.Dir, name string) error {
	p := filepath.Join(d.Path(), name)
	li, err := d.Lstat(p)
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
	if n := safefile.Links(li); n > 1 {
		return fmt.Errorf("purge %s: it has %d names (a hard link), not the file unlock wrote; it was not changed: check it, remove it by hand and run again", p, n)
	}
	fh, err := d.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("purge %s: %w", p, err)
	}
	f := fh.(*os.File)
	fi, err := f.Stat()
	if err == nil && (!safefile.SameFile(li, fi) || !fi.Mode().IsRegular() || safefile.Links(fi) > 1) {
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
	if err := d.Remove(p); err != nil {
		return fmt.Errorf("purge %s: %w", p, err)
	}
	return d.SyncDir(d.Path())
}

// LeftoverKeyFiles lists every file left in a directory unlock recorded
// (see UnlockedFiles), and key-like files (32 or 64 bytes, or a JWKS) in
// the keyring directory.
func LeftoverKeyFiles(s Store, kr *Keyring, extra ...string) []string {
	out := UnlockedFiles(kr, extra...)
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
