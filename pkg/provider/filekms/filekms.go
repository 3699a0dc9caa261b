// Package filekms is the embedded, file-backed KMS: `file-kms:///abs/dir/name`.
// Keys live in a local directory (one state file per key, mode 0600, in a
// directory of mode 0700) and behave like a real KMS's: 256-bit versions with
// a primary, AES-256-GCM wraps bound to the caller's additional data, and the
// states enabled, disabled, pending deletion (with a date) and destroyed.
// Destroying erases the key material; unwrapping then fails with a DESTROYED
// error. State files are replaced crash-safely (package safefile); the
// material in them is sealed under a per-key secret file that destroy
// overwrites, so copies of earlier state files are useless (erase.go).
//
// It is the default for a first run, for drills on a laptop and for
// air-gapped labs: it is not a KMS for production keys (its material is on
// the same disks as everything else, and copies of the secret file made
// before a destroy restore the key).
package filekms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keywrap"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

const (
	// Scheme is the URI scheme of the embedded KMS.
	Scheme = "file-kms"
	name   = "file kms"
	format = "cmekctl-file-kms"
	// version 2 seals each version's material under a per-key secret
	// (erase.go); version 1 kept it in plain and is read, then rewritten
	// as version 2 marked recoverable.
	version  = 2
	keyBytes = 32
)

// Options configure a key; the zero value is the real filesystem and clock.
type Options struct {
	FS  safefile.FS
	Now func() time.Time
}

// Key is a key of the embedded KMS.
type Key struct {
	uri  string
	dir  string
	name string
	opt  Options
}

var (
	_ provider.Key   = (*Key)(nil)
	_ provider.Admin = (*Key)(nil)
)

// Open is the registry's opener for file-kms URIs.
func Open(u *url.URL) (provider.Key, error) { return OpenWith(u, Options{}) }

// OpenWith opens a file-kms URI with options.
func OpenWith(u *url.URL, opt Options) (*Key, error) {
	if u.Scheme != Scheme {
		return nil, provider.Errorf(name, "parse uri", provider.Misuse, "", "scheme %q is not %s", u.Scheme, Scheme)
	}
	if u.Host != "" {
		return nil, provider.Errorf(name, "parse uri", provider.Misuse, "", "file-kms URIs have no host: write file-kms:///abs/dir/name")
	}
	if err := provider.CheckParams(name, u); err != nil {
		return nil, err
	}
	p := u.Path
	if !filepath.IsAbs(p) || strings.HasSuffix(p, "/") || filepath.Clean(p) != p {
		return nil, provider.Errorf(name, "parse uri", provider.Misuse, "", "path %q must be an absolute, clean path to a key: file-kms:///abs/dir/name", p)
	}
	base := filepath.Base(p)
	if base == "." || base == "/" || strings.HasPrefix(base, ".") {
		return nil, provider.Errorf(name, "parse uri", provider.Misuse, "", "invalid key name %q", base)
	}
	if opt.FS == nil {
		opt.FS = safefile.OS{}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	// The URI is rebuilt escaped, so that it names the same key when parsed
	// again (a keyring records it).
	uri := (&url.URL{Scheme: Scheme, Path: p}).String()
	return &Key{uri: uri, dir: filepath.Dir(p), name: base, opt: opt}, nil
}

// URI returns the key's URI.
func (k *Key) URI() string { return k.uri }

func (k *Key) path() string { return filepath.Join(k.dir, k.name+".key.json") }

type versionFile struct {
	ID        int       `json:"id"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	Destroyed time.Time `json:"destroyed,omitzero"`
	Material  []byte    `json:"material,omitempty"` // version 1 only: in plain
	Sealed    []byte    `json:"sealed,omitempty"`   // version 2: under the key's secret
}

type stateFile struct {
	Format       string        `json:"format"`
	Version      int           `json:"version"`
	Name         string        `json:"name"`
	State        string        `json:"state"`
	Primary      int           `json:"primary"`
	DeletionDate time.Time     `json:"deletion_date,omitzero"`
	Created      time.Time     `json:"created"`
	Versions     []versionFile `json:"versions"`
	// PlainSince is set on a key first written by a file-kms that kept
	// material in plain (format 1): copies of those files still hold it,
	// so the key is recoverable whatever destroy does.
	PlainSince time.Time `json:"plain_since,omitzero"`
}

func (k *Key) load(op string) (*stateFile, error) {
	data, err := k.opt.FS.ReadFile(k.path())
	if errors.Is(err, fs.ErrNotExist) {
		// Not proof of destruction: the key may be elsewhere or never have
		// existed, as a cloud KMS's "not found / access denied" is.
		return nil, provider.Errorf(name, op, provider.Revoked, "NotFound", "no key %s (create it with: cmekctl kms create %s)", k.name, k.uri)
	}
	if err != nil {
		return nil, &provider.Error{Provider: name, Op: op, Class: provider.Transient, Code: "IOError", Message: err.Error(), Err: err}
	}
	if err := safefile.CheckPrivate(k.opt.FS, k.path(), false); err != nil {
		return nil, provider.Errorf(name, op, provider.Revoked, "Permissions", "%v", err)
	}
	var st stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil || st.Format != format {
		return nil, provider.Errorf(name, op, provider.Misuse, "Corrupt", "key file %s is corrupt or not a file-kms key", k.path())
	}
	switch st.Version {
	case 1:
		if st.PlainSince.IsZero() {
			st.PlainSince = st.Created
		}
	case version:
		if err := k.openMaterial(&st, op); err != nil {
			return nil, err
		}
	default:
		return nil, provider.Errorf(name, op, provider.Misuse, "UnknownVersion", "key file %s has format version %d; this cmekctl reads versions 1 and %d: upgrade cmekctl", k.path(), st.Version, version)
	}
	// A deletion window that has passed destroys the key, as a real KMS does.
	if st.State == string(provider.StatePendingDeletion) && !k.opt.Now().Before(st.DeletionDate) {
		destroy(&st, k.opt.Now())
		if err := k.save(&st); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

func destroy(st *stateFile, now time.Time) {
	st.State = string(provider.StateDestroyed)
	for i := range st.Versions {
		clear(st.Versions[i].Material)
		st.Versions[i].Material = nil
		st.Versions[i].State = string(provider.StateDestroyed)
		st.Versions[i].Destroyed = now
	}
}

// save replaces the state file crash-safely. When the new state drops key
// material, the old file's blocks are overwritten through an open handle
// after the rename, so the material does not linger in the unlinked inode.
func (k *Key) save(st *stateFile) error {
	disk, err := k.sealed(st)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(disk, "", "  ")
	if err != nil {
		return err
	}
	var old *os.File
	if _, ok := k.opt.FS.(safefile.OS); ok && st.State == string(provider.StateDestroyed) {
		old, _ = os.OpenFile(k.path(), os.O_WRONLY, 0)
	}
	err = safefile.WriteFile(k.opt.FS, k.path(), append(data, '\n'), 0o600)
	if old != nil {
		if err == nil {
			if fi, serr := old.Stat(); serr == nil {
				_, _ = old.WriteAt(make([]byte, fi.Size()), 0)
				_ = old.Sync()
			}
		}
		old.Close()
	}
	if err != nil {
		return &provider.Error{Provider: name, Op: "save", Class: provider.Transient, Code: "IOError", Message: err.Error(), Err: err}
	}
	if st.State == string(provider.StateDestroyed) {
		// The state file no longer holds sealed material; the secret that
		// sealed every earlier copy goes now.
		return k.shredSecret()
	}
	return nil
}

func (k *Key) lock(ctx context.Context) (*safefile.Lock, error) {
	l, err := safefile.Acquire(ctx, filepath.Join(k.dir, "."+k.name+".lock"), 10*time.Second)
	if err != nil {
		return nil, &provider.Error{Provider: name, Op: "lock", Class: provider.Transient, Message: err.Error(), Err: err}
	}
	return l, nil
}

// update loads the key under the lock, applies fn and saves.
func (k *Key) update(ctx context.Context, op string, fn func(*stateFile) error) (provider.KeyState, error) {
	l, err := k.lock(ctx)
	if err != nil {
		return provider.KeyState{}, err
	}
	defer l.Release()
	st, err := k.load(op)
	if err != nil {
		return provider.KeyState{}, err
	}
	if err := fn(st); err != nil {
		return provider.KeyState{}, err
	}
	if err := k.save(st); err != nil {
		return provider.KeyState{}, err
	}
	return k.state(st), nil
}

func newMaterial() ([]byte, error) {
	b := make([]byte, keyBytes)
	_, err := rand.Read(b)
	return b, err
}

// additional data: the key's identity and version, then the caller's AAD, so
// a ciphertext moved to another key or version fails to open.
func (k *Key) ad(ver int, aad []byte) []byte {
	return append([]byte(fmt.Sprintf("file-kms\x00%s\x00%d\x00", k.name, ver)), aad...)
}

func (k *Key) usable(st *stateFile, op string) error {
	switch provider.State(st.State) {
	case provider.StateEnabled:
		return nil
	case provider.StateDisabled:
		return provider.Errorf(name, op, provider.Revoked, "DisabledException", "key %s is disabled", k.name)
	case provider.StatePendingDeletion:
		return provider.Errorf(name, op, provider.Revoked, "KMSInvalidStateException", "key %s is pending deletion on %s", k.name, st.DeletionDate.UTC().Format(time.RFC3339))
	case provider.StateDestroyed:
		return provider.Errorf(name, op, provider.Destroyed, "KeyDestroyed", "key %s is destroyed: its material is gone", k.name)
	}
	return provider.Errorf(name, op, provider.Misuse, "Corrupt", "key %s has unknown state %q", k.name, st.State)
}

// Wrap seals plaintext under the primary version.
func (k *Key) Wrap(ctx context.Context, plaintext, aad []byte) (provider.Wrapped, error) {
	st, err := k.load("wrap")
	if err != nil {
		return provider.Wrapped{}, err
	}
	if err := k.usable(st, "wrap"); err != nil {
		return provider.Wrapped{}, err
	}
	v := st.find(st.Primary)
	if v == nil || v.State != string(provider.StateEnabled) {
		return provider.Wrapped{}, provider.Errorf(name, "wrap", provider.Revoked, "DisabledException", "primary version %d of key %s is not enabled", st.Primary, k.name)
	}
	// version (4 bytes) || nonce || ciphertext || tag; the nonce is drawn by
	// Go's FIPS 140-3 module (pkg/keywrap), in the place earlier versions
	// put theirs.
	out := make([]byte, 4, 4+len(plaintext)+keywrap.Overhead)
	binary.BigEndian.PutUint32(out, uint32(v.ID))
	out, err = keywrap.Seal(out, v.Material, plaintext, k.ad(v.ID, aad))
	if err != nil {
		return provider.Wrapped{}, provider.Errorf(name, "wrap", provider.Misuse, "Corrupt", "version %d of key %s: %v", v.ID, k.name, err)
	}
	return provider.Wrapped{Ciphertext: out, KeyVersion: strconv.Itoa(v.ID)}, nil
}

// Unwrap opens a ciphertext made by Wrap with the version that made it.
func (k *Key) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) ([]byte, error) {
	st, err := k.load("unwrap")
	if err != nil {
		return nil, err
	}
	if err := k.usable(st, "unwrap"); err != nil {
		return nil, err
	}
	if len(w.Ciphertext) < 4+keywrap.Overhead {
		return nil, provider.Errorf(name, "unwrap", provider.Misuse, "InvalidCiphertextException", "ciphertext is too short")
	}
	id := int(binary.BigEndian.Uint32(w.Ciphertext))
	v := st.find(id)
	if v == nil {
		return nil, provider.Errorf(name, "unwrap", provider.Misuse, "InvalidCiphertextException", "ciphertext names version %d, which key %s does not have", id, k.name)
	}
	switch provider.State(v.State) {
	case provider.StateDestroyed:
		return nil, provider.Errorf(name, "unwrap", provider.Destroyed, "KeyDestroyed", "version %d of key %s is destroyed: its material is gone", id, k.name)
	case provider.StateDisabled:
		return nil, provider.Errorf(name, "unwrap", provider.Revoked, "DisabledException", "version %d of key %s is disabled", id, k.name)
	}
	pt, err := keywrap.Open(v.Material, w.Ciphertext[4:], k.ad(id, aad))
	if errors.Is(err, keywrap.ErrAuth) {
		return nil, provider.Errorf(name, "unwrap", provider.Misuse, "InvalidCiphertextException", "ciphertext does not authenticate under key %s version %d (wrong key, wrong binding, or corrupt)", k.name, id)
	}
	if err != nil {
		return nil, provider.Errorf(name, "unwrap", provider.Misuse, "Corrupt", "version %d of key %s: %v", id, k.name, err)
	}
	return pt, nil
}

func (st *stateFile) find(id int) *versionFile {
	for i := range st.Versions {
		if st.Versions[i].ID == id {
			return &st.Versions[i]
		}
	}
	return nil
}

func (k *Key) state(st *stateFile) provider.KeyState {
	ks := provider.KeyState{
		URI: k.uri, Provider: Scheme, State: provider.State(st.State),
		PrimaryVersion: strconv.Itoa(st.Primary), DeletionDate: st.DeletionDate,
		Details: map[string]string{"path": k.path(), IDCreated: st.Created.UTC().Format(time.RFC3339Nano)},
	}
	for _, v := range st.Versions {
		ks.Versions = append(ks.Versions, provider.VersionState{ID: strconv.Itoa(v.ID), State: provider.State(v.State), Created: v.Created})
	}
	if !st.PlainSince.IsZero() {
		ks.Recoverable = true
		ks.RecoverableReason = "an older file-kms (format 1) kept this key's material in plain in its state file since " +
			st.PlainSince.UTC().Format(time.RFC3339) + ": any copy of those files restores it; create a new key and rotate cmek to it"
	}
	return ks
}

// Describe reads the key's state.
func (k *Key) Describe(ctx context.Context) (provider.KeyState, error) {
	st, err := k.load("describe")
	if err != nil {
		var pe *provider.Error
		if errors.As(err, &pe) && pe.Code == "NotFound" {
			return provider.KeyState{URI: k.uri, Provider: Scheme, State: provider.StateNotFound}, nil
		}
		return provider.KeyState{}, err
	}
	return k.state(st), nil
}

// Create makes a new key with one enabled version.
func (k *Key) Create(ctx context.Context) (provider.KeyState, error) {
	if err := k.opt.FS.MkdirAll(k.dir, 0o700); err != nil {
		return provider.KeyState{}, provider.Errorf(name, "create", provider.Misuse, "IOError", "create key directory: %v", err)
	}
	if err := safefile.CheckPrivate(k.opt.FS, k.dir, true); err != nil {
		return provider.KeyState{}, provider.Errorf(name, "create", provider.Misuse, "Permissions", "%v", err)
	}
	l, err := k.lock(ctx)
	if err != nil {
		return provider.KeyState{}, err
	}
	defer l.Release()
	if _, err := k.opt.FS.Lstat(k.path()); err == nil {
		return provider.KeyState{}, provider.Errorf(name, "create", provider.Misuse, "AlreadyExists", "key %s already exists", k.uri)
	}
	m, err := newMaterial()
	if err != nil {
		return provider.KeyState{}, err
	}
	now := k.opt.Now().UTC()
	st := &stateFile{Format: format, Version: version, Name: k.name, State: string(provider.StateEnabled), Primary: 1, Created: now,
		Versions: []versionFile{{ID: 1, State: string(provider.StateEnabled), Created: now, Material: m}}}
	if err := k.save(st); err != nil {
		return provider.KeyState{}, err
	}
	return k.state(st), nil
}

// Rotate adds a new version and makes it primary; old versions still unwrap.
func (k *Key) Rotate(ctx context.Context) (provider.KeyState, error) {
	return k.update(ctx, "rotate", func(st *stateFile) error {
		if err := k.usable(st, "rotate"); err != nil {
			return err
		}
		m, err := newMaterial()
		if err != nil {
			return err
		}
		id := 0
		for _, v := range st.Versions {
			id = max(id, v.ID)
		}
		st.Versions = append(st.Versions, versionFile{ID: id + 1, State: string(provider.StateEnabled), Created: k.opt.Now().UTC(), Material: m})
		st.Primary = id + 1
		return nil
	})
}

// Disable makes every wrap and unwrap fail until Enable.
func (k *Key) Disable(ctx context.Context) (provider.KeyState, error) {
	return k.update(ctx, "disable", func(st *stateFile) error {
		if st.State != string(provider.StateEnabled) && st.State != string(provider.StateDisabled) {
			return k.usable(st, "disable")
		}
		st.State = string(provider.StateDisabled)
		return nil
	})
}

// Enable re-enables a disabled key.
func (k *Key) Enable(ctx context.Context) (provider.KeyState, error) {
	return k.update(ctx, "enable", func(st *stateFile) error {
		if st.State != string(provider.StateEnabled) && st.State != string(provider.StateDisabled) {
			return k.usable(st, "enable")
		}
		st.State = string(provider.StateEnabled)
		return nil
	})
}

// ScheduleDeletion schedules destruction after pendingDays (1..30).
func (k *Key) ScheduleDeletion(ctx context.Context, pendingDays int) (provider.KeyState, error) {
	if pendingDays < 1 || pendingDays > 30 {
		return provider.KeyState{}, provider.Errorf(name, "schedule deletion", provider.Misuse, "ValidationException", "pending window %d days is out of range: use 1 to 30", pendingDays)
	}
	return k.update(ctx, "schedule deletion", func(st *stateFile) error {
		if st.State == string(provider.StateDestroyed) {
			return k.usable(st, "schedule deletion")
		}
		st.State = string(provider.StatePendingDeletion)
		st.DeletionDate = k.opt.Now().UTC().Add(time.Duration(pendingDays) * 24 * time.Hour)
		return nil
	})
}

// CancelDeletion returns a key pending deletion to DISABLED, as AWS does.
func (k *Key) CancelDeletion(ctx context.Context) (provider.KeyState, error) {
	return k.update(ctx, "cancel deletion", func(st *stateFile) error {
		if st.State != string(provider.StatePendingDeletion) {
			return provider.Errorf(name, "cancel deletion", provider.Misuse, "KMSInvalidStateException", "key %s is %s, not pending deletion", k.name, st.State)
		}
		st.State = string(provider.StateDisabled)
		st.DeletionDate = time.Time{}
		return nil
	})
}

// Destroy erases every version's material at once. There is no way back.
func (k *Key) Destroy(ctx context.Context) (provider.KeyState, error) {
	return k.update(ctx, "destroy", func(st *stateFile) error {
		destroy(st, k.opt.Now().UTC())
		return nil
	})
}
