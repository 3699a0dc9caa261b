package faultfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// The filesystem calls of FS (safefile.FS): each mutating one is an
// operation, counted, logged and subject to the armed faults.

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
	missing := safefile.MissingDirs(name)
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
