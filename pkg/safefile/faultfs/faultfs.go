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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

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
