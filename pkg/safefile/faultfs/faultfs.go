// Package faultfs is a safefile.FS for tests: it passes every call through to
// the real filesystem, counts every mutating operation, and can crash the
// "machine" after operation N, inject an errno at an operation, and then
// "reboot" with or without the data that was never made durable.
//
// # Operations
//
// Each of these is one operation, counted from 1 in the order it is called
// (Ops returns the log):
//
//	create   OpenFile with O_WRONLY, O_RDWR, O_CREATE, O_TRUNC or O_APPEND
//	write    File.Write
//	fsync    File.Sync
//	close    File.Close
//	rename   Rename
//	remove   Remove
//	mkdir    one directory created by MkdirAll (one per missing component)
//	syncdir  SyncDir, and the parent fsync that MkdirAll does after each mkdir
//
// ReadFile and Lstat are not counted (they change nothing), but they fail
// after a crash like everything else.
//
// # Crash
//
// CrashAfter(n): operations 1..n reach the disk; operation n+1 and every
// later call fail with ErrCrashed and change nothing on disk. The process
// under test goes on running (it is not killed), as if its disk had vanished.
//
// # Durability model
//
// faultfs keeps, beside the real files, the state that a power cut would
// leave, following POSIX's guarantees and nothing more:
//
//   - A file's contents are durable as of its last successful fsync. Data
//     written since is lost on a power cut; a file created and never fsynced
//     has no durable contents (it comes back empty, if its name survives).
//   - A directory entry (a create, a rename, a remove, a mkdir) is durable
//     only once its directory has been fsynced (SyncDir). A rename not
//     followed by a SyncDir of its directory may be undone: the target name
//     then refers again to what it referred to at the last SyncDir, and the
//     source name comes back.
//   - Whatever existed before faultfs first touched it is durable.
//
// Reboot(false) keeps everything that reached the disk (the kernel flushed
// its caches before the power cut). Reboot(true) rewrites the real files to
// the durable state: names that are not durable are removed, and every
// durable name gets its inode's last fsynced contents and mode.
// Both are legal outcomes of one crash; a crash-safe program survives both.
//
// By default faultfs does not call the real fsync (the model tracks
// durability, and tests run much faster without it); set RealSync to call it.
//
// # Injected errors
//
// FailAt(n, errno) makes operation n fail with errno (wrapped in an
// *os.PathError or *os.LinkError as the os package does) without touching
// the disk; FailNth(kind, n, errno) does so for the n-th operation of a kind;
// FailKind(kind, errno) for every operation of a kind. A failed fsync leaves
// the file's durable contents as they were.
//
// faultfs is safe for concurrent use; with concurrent callers the order of
// operations, and so which one is "operation n", depends on scheduling.
package faultfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// ErrCrashed is returned by every call after the crash point.
var ErrCrashed = errors.New("faultfs: crashed")

// Kind is the kind of a mutating operation.
type Kind string

// Operation kinds.
const (
	Create  Kind = "create"
	Write   Kind = "write"
	Fsync   Kind = "fsync"
	Close   Kind = "close"
	Rename  Kind = "rename"
	Remove  Kind = "remove"
	Mkdir   Kind = "mkdir"
	SyncDir Kind = "syncdir"
)

// Kinds lists every kind of operation.
var Kinds = []Kind{Create, Write, Fsync, Close, Rename, Remove, Mkdir, SyncDir}

// Op is one operation in the log.
type Op struct {
	N    int // 1-based position
	Kind Kind
	Path string
	Old  string // a rename's source
	Err  error  // nil if it reached the disk
}

func (o Op) String() string {
	s := fmt.Sprintf("%d %s %s", o.N, o.Kind, o.Path)
	if o.Err != nil {
		s += ": " + o.Err.Error()
	}
	return s
}

type inode struct {
	id      int
	dir     bool
	mode    os.FileMode
	cur     []byte // contents as written (files only)
	synced  []byte // contents at the last successful fsync
	everSyn bool
}

// FS is the fault-injecting filesystem. The zero value is not usable: call New.
type FS struct {
	// RealSync makes fsync and SyncDir also call the real fsync.
	RealSync bool

	mu       sync.Mutex
	n        int
	crashAt  int // 0: never
	crashed  bool
	failAt   map[int]error
	failNth  map[Kind]map[int]error
	failKind map[Kind]error
	perKind  map[Kind]int
	log      []Op

	nextID int
	inodes map[int]*inode
	cur    map[string]int // path → inode (0: absent), paths touched only
	dur    map[string]int // durable directory entries
}

var _ safefile.FS = (*FS)(nil)

// New returns a faultfs over the real filesystem with no fault armed.
func New() *FS {
	f := &FS{}
	f.reset()
	return f
}

func (f *FS) reset() {
	f.n, f.crashAt, f.crashed = 0, 0, false
	f.failAt, f.failNth, f.failKind = map[int]error{}, map[Kind]map[int]error{}, map[Kind]error{}
	f.perKind = map[Kind]int{}
	f.log = nil
	f.inodes, f.cur, f.dur = map[int]*inode{}, map[string]int{}, map[string]int{}
}

// CrashAfter arms a crash after operation n (n ≥ 1); 0 disarms it.
func (f *FS) CrashAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashAt = n
}

// FailAt makes operation n fail with err.
func (f *FS) FailAt(n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt[n] = err
}

// FailNth makes the n-th (1-based) operation of kind k fail with err.
func (f *FS) FailNth(k Kind, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNth[k] == nil {
		f.failNth[k] = map[int]error{}
	}
	f.failNth[k][n] = err
}

// FailKind makes every operation of kind k fail with err.
func (f *FS) FailKind(k Kind, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failKind[k] = err
}

// Crashed reports whether the crash point was reached.
func (f *FS) Crashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// Count returns the number of operations attempted so far.
func (f *FS) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// CountKind returns the number of operations of kind k attempted so far.
func (f *FS) CountKind(k Kind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perKind[k]
}

// Ops returns a copy of the operation log.
func (f *FS) Ops() []Op {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// begin counts an operation and decides its fate: nil (go ahead), ErrCrashed,
// or an injected errno. Called with f.mu held.
func (f *FS) begin(k Kind, path string) error {
	if f.crashed {
		return ErrCrashed
	}
	f.n++
	f.perKind[k]++
	if f.crashAt > 0 && f.n > f.crashAt {
		f.crashed = true
		f.log = append(f.log, Op{N: f.n, Kind: k, Path: path, Err: ErrCrashed})
		return ErrCrashed
	}
	var err error
	if e, ok := f.failAt[f.n]; ok {
		err = e
	} else if e, ok := f.failNth[k][f.perKind[k]]; ok {
		err = e
	} else if e, ok := f.failKind[k]; ok {
		err = e
	}
	f.log = append(f.log, Op{N: f.n, Kind: k, Path: path, Err: err})
	return err
}

// touch starts tracking path: whatever is there now is taken as durable.
// Called with f.mu held, before the path changes.
func (f *FS) touch(path string) {
	if _, ok := f.cur[path]; ok {
		return
	}
	id := 0
	if fi, err := os.Lstat(path); err == nil {
		f.nextID++
		id = f.nextID
		ino := &inode{id: id, dir: fi.IsDir(), mode: fi.Mode().Perm(), everSyn: true}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(path)
			ino.cur, ino.synced = b, slices.Clone(b)
		}
		f.inodes[id] = ino
	}
	f.cur[path], f.dur[path] = id, id
}

func (f *FS) newInode(dir bool, mode os.FileMode) *inode {
	f.nextID++
	ino := &inode{id: f.nextID, dir: dir, mode: mode}
	f.inodes[ino.id] = ino
	return ino
}

func pathErr(op, path string, err error) error {
	return &os.PathError{Op: op, Path: path, Err: err}
}

// OpenFile opens a file. Opening for writing is a create operation.
func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (safefile.File, error) {
	name = filepath.Clean(name)
	writing := flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0
	f.mu.Lock()
	defer f.mu.Unlock()
	if !writing {
		if f.crashed {
			return nil, pathErr("open", name, ErrCrashed)
		}
		fh, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		return &file{fs: f, f: fh, path: name, ro: true}, nil
	}
	if err := f.begin(Create, name); err != nil {
		return nil, pathErr("open", name, err)
	}
	f.touch(name)
	fh, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	ino := f.inodes[f.cur[name]]
	if ino == nil || ino.dir {
		fi, _ := fh.Stat()
		mode := perm.Perm()
		if fi != nil {
			mode = fi.Mode().Perm()
		}
		ino = f.newInode(false, mode)
		f.cur[name] = ino.id
	}
	if flag&os.O_TRUNC != 0 {
		ino.cur = nil
	}
	var off int64
	if flag&os.O_APPEND != 0 {
		off = int64(len(ino.cur))
	}
	return &file{fs: f, f: fh, path: name, ino: ino, off: off, appnd: flag&os.O_APPEND != 0}, nil
}

type file struct {
	fs    *FS
	f     *os.File
	path  string
	ino   *inode
	off   int64
	appnd bool
	ro    bool
}

func (h *file) Write(p []byte) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.ro {
		return 0, pathErr("write", h.path, fs.ErrPermission)
	}
	if err := h.fs.begin(Write, h.path); err != nil {
		return 0, pathErr("write", h.path, err)
	}
	n, err := h.f.Write(p)
	if h.appnd {
		h.off = int64(len(h.ino.cur))
	}
	end := h.off + int64(n)
	if int64(len(h.ino.cur)) < end {
		h.ino.cur = append(h.ino.cur, make([]byte, end-int64(len(h.ino.cur)))...)
	}
	copy(h.ino.cur[h.off:end], p[:n])
	h.off = end
	return n, err
}

func (h *file) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.ro {
		return nil
	}
	if err := h.fs.begin(Fsync, h.path); err != nil {
		return pathErr("sync", h.path, err)
	}
	if h.fs.RealSync {
		if err := h.f.Sync(); err != nil {
			return err
		}
	}
	h.ino.synced, h.ino.everSyn = slices.Clone(h.ino.cur), true
	return nil
}

func (h *file) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.ro {
		return h.f.Close()
	}
	// The descriptor is released whatever happens: a crashed process's
	// descriptors are closed too.
	cerr := h.f.Close()
	if err := h.fs.begin(Close, h.path); err != nil {
		return pathErr("close", h.path, err)
	}
	return cerr
}

// ReadFile reads a file (not counted).
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	crashed := f.crashed
	f.mu.Unlock()
	if crashed {
		return nil, pathErr("read", name, ErrCrashed)
	}
	return os.ReadFile(name)
}

// Lstat describes a file (not counted).
func (f *FS) Lstat(name string) (os.FileInfo, error) {
	f.mu.Lock()
	crashed := f.crashed
	f.mu.Unlock()
	if crashed {
		return nil, pathErr("lstat", name, ErrCrashed)
	}
	return os.Lstat(name)
}

// Rename renames a file; the rename is durable after a SyncDir of the
// directory (both directories, if they differ).
func (f *FS) Rename(oldpath, newpath string) error {
	oldpath, newpath = filepath.Clean(oldpath), filepath.Clean(newpath)
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.begin(Rename, newpath)
	f.log[len(f.log)-1].Old = oldpath
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	f.touch(oldpath)
	f.touch(newpath)
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	f.cur[newpath], f.cur[oldpath] = f.cur[oldpath], 0
	return nil
}

// Remove removes a file or an empty directory.
func (f *FS) Remove(name string) error {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(Remove, name); err != nil {
		return pathErr("remove", name, err)
	}
	f.touch(name)
	if err := os.Remove(name); err != nil {
		return err
	}
	f.cur[name] = 0
	return nil
}

// MkdirAll creates name and its missing parents, one mkdir operation each,
// and makes each durable by fsyncing its parent (a syncdir operation), as
// safefile.OS does.
func (f *FS) MkdirAll(name string, perm os.FileMode) error {
	name = filepath.Clean(name)
	var missing []string
	for p := name; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if len(missing) == 0 {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.crashed {
			return pathErr("mkdir", name, ErrCrashed)
		}
		if fi, err := os.Stat(name); err == nil && !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
		return nil
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := f.mkdir(p, perm); err != nil {
			return err
		}
		if err := f.SyncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

func (f *FS) mkdir(p string, perm os.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(Mkdir, p); err != nil {
		return pathErr("mkdir", p, err)
	}
	f.touch(p)
	if err := os.Mkdir(p, perm); err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	mode := perm.Perm()
	if err == nil {
		mode = fi.Mode().Perm()
	}
	f.cur[p] = f.newInode(true, mode).id
	return nil
}

// SyncDir makes the entries of directory name durable.
func (f *FS) SyncDir(name string) error {
	name = filepath.Clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(SyncDir, name); err != nil {
		return pathErr("sync", name, err)
	}
	if f.RealSync {
		if err := (safefile.OS{}).SyncDir(name); err != nil {
			return err
		}
	} else if fi, err := os.Stat(name); err != nil {
		return err
	} else if !fi.IsDir() {
		return &os.PathError{Op: "sync", Path: name, Err: syscall.ENOTDIR}
	}
	for p, id := range f.cur {
		if filepath.Dir(p) == name {
			f.dur[p] = id
		}
	}
	return nil
}

// Reboot ends the crash: with dropUnsynced false the disk stays as it is;
// with true every touched path is rewritten to its durable state (see the
// package comment). Afterwards faultfs starts afresh: no fault armed, the
// counters at zero, and everything on disk taken as durable.
func (f *FS) Reboot(dropUnsynced bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dropUnsynced {
		if err := f.restore(); err != nil {
			return err
		}
	}
	f.reset()
	return nil
}

// restore rewrites the touched paths to their durable state.
func (f *FS) restore() error {
	paths := make([]string, 0, len(f.cur))
	for p := range f.cur {
		paths = append(paths, p)
	}
	// Shallow first, so directories exist before their files.
	slices.SortFunc(paths, func(a, b string) int {
		if d := strings.Count(a, string(filepath.Separator)) - strings.Count(b, string(filepath.Separator)); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	gone := func(p string) bool { // an ancestor directory does not survive
		for d := filepath.Dir(p); d != filepath.Dir(d); d = filepath.Dir(d) {
			if id, ok := f.dur[d]; ok && id == 0 {
				return true
			}
		}
		return false
	}
	for _, p := range paths {
		id := f.dur[p]
		if gone(p) {
			continue
		}
		if id == 0 {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("faultfs: reboot: %w", err)
			}
			continue
		}
		ino := f.inodes[id]
		if ino.dir {
			if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
				continue
			}
			_ = os.RemoveAll(p)
			if err := os.Mkdir(p, ino.mode); err != nil {
				return fmt.Errorf("faultfs: reboot: %w", err)
			}
			continue
		}
		var data []byte
		if ino.everSyn {
			data = ino.synced
		}
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			_ = os.RemoveAll(p)
		}
		_ = os.Remove(p) // a new inode, as the durable one may differ from the one there now
		if err := os.WriteFile(p, data, ino.mode); err != nil {
			return fmt.Errorf("faultfs: reboot: %w", err)
		}
		if err := os.Chmod(p, ino.mode); err != nil {
			return fmt.Errorf("faultfs: reboot: %w", err)
		}
	}
	return nil
}
