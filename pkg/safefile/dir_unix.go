//go:build unix

package safefile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is a directory opened once (O_DIRECTORY|O_NOFOLLOW, one component at
// a time from /) and checked on its descriptor, with the directories above
// it. Every file in it is then opened, created, renamed and removed
// relative to that descriptor (openat, renameat, unlinkat, always
// O_NOFOLLOW), so a directory above it swapped for a symbolic link after
// the check changes nothing: the files land in the directory that was
// checked, or nowhere. (os.Root would follow a symbolic link that stays
// inside the directory, even with O_NOFOLLOW; these files must never be
// reached through one.)
type Dir struct {
	path string
	fd   int
}

var _ DirFS = (*Dir)(nil)

// OpenDir opens and checks the directory path (see DirCheck). Symbolic
// links above it are followed one at a time, each link checked like a
// directory entry (yours or root's where others can write); the directory
// itself must not be one. A missing directory is an error that
// errors.Is(fs.ErrNotExist).
func OpenDir(path string, check DirCheck) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fd, err := walkDir(abs, check)
	if err != nil {
		return nil, err
	}
	return &Dir{path: abs, fd: fd}, nil
}

type walkStep struct {
	fd   int
	st   unix.Stat_t
	path string
}

func trustedUID(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// aboveOK is StrictModes' rule for a directory above the one opened, given
// the entry in it that the path goes through.
func aboveOK(target string, dir walkStep, child *unix.Stat_t, check DirCheck) error {
	if !trustedUID(dir.st.Uid) {
		return fmt.Errorf("%s: directory %s above it is owned by uid %d, not by you or root, who could swap what it holds: use a directory whose parents only you or root own", target, dir.path, dir.st.Uid)
	}
	if dir.st.Mode&0o022 == 0 {
		return nil
	}
	if dir.st.Mode&unix.S_ISVTX != 0 && (check == Purge || trustedUID(child.Uid)) {
		return nil // sticky: only the entry's owner (or root) can swap it
	}
	return fmt.Errorf("%s: directory %s above it has mode %04o, which others can write to (they could swap what it holds): run chmod go-w %s, or use another directory", target, dir.path, dir.st.Mode&0o7777, dir.path)
}

func walkDir(abs string, check DirCheck) (fd int, err error) {
	var stack []walkStep
	defer func() {
		for _, s := range stack {
			if err != nil || s.fd != fd {
				unix.Close(s.fd)
			}
		}
	}()
	push := func(fd int, path string) error {
		s := walkStep{fd: fd, path: path}
		if err := unix.Fstat(fd, &s.st); err != nil {
			unix.Close(fd)
			return &fs.PathError{Op: "fstat", Path: path, Err: err}
		}
		stack = append(stack, s)
		return nil
	}
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	if err := push(root, "/"); err != nil {
		return -1, err
	}
	todo := strings.Split(abs, "/")
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1].fd)
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		p := filepath.Join(cur.path, c)
		last := len(strings.Join(todo, "")) == 0
		nfd, err := unix.Openat(cur.fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			var lst unix.Stat_t
			if err == unix.ENOENT || unix.Fstatat(cur.fd, c, &lst, unix.AT_SYMLINK_NOFOLLOW) != nil || lst.Mode&unix.S_IFMT != unix.S_IFLNK {
				if err == unix.ENOTDIR {
					return -1, fmt.Errorf("%s is not a directory", p)
				}
				return -1, &fs.PathError{Op: "open", Path: p, Err: err}
			}
			if last {
				return -1, fmt.Errorf("%s is a symbolic link: refusing to follow it; use the real path", p)
			}
			if err := aboveOK(abs, cur, &lst, check); err != nil {
				return -1, err
			}
			if !trustedUID(lst.Uid) {
				return -1, fmt.Errorf("%s: the symbolic link %s on its path is owned by uid %d, not by you or root: use the real path", abs, p, lst.Uid)
			}
			if links++; links > 40 {
				return -1, &fs.PathError{Op: "open", Path: abs, Err: unix.ELOOP}
			}
			target, err := readlinkat(cur.fd, c)
			if err != nil {
				return -1, &fs.PathError{Op: "readlink", Path: p, Err: err}
			}
			if filepath.IsAbs(target) {
				for len(stack) > 1 {
					unix.Close(stack[len(stack)-1].fd)
					stack = stack[:len(stack)-1]
				}
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if err := push(nfd, p); err != nil {
			return -1, err
		}
		if err := aboveOK(abs, cur, &stack[len(stack)-1].st, check); err != nil {
			return -1, err
		}
	}
	top := stack[len(stack)-1]
	if check == Private {
		if int(top.st.Uid) != os.Geteuid() {
			return -1, fmt.Errorf("%s is owned by uid %d, not by you (uid %d): run cmekctl as its owner", abs, top.st.Uid, os.Geteuid())
		}
		if perm := top.st.Mode & 0o777; perm&0o077 != 0 {
			return -1, fmt.Errorf("%s has mode %04o, which others can access: run chmod 0700 %s", abs, perm, abs)
		}
	}
	return top.fd, nil
}

func readlinkat(fd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		m, err := unix.Readlinkat(fd, name, b)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(b[:m]), nil
		}
	}
}

// Path is the directory's path, as given (made absolute).
func (d *Dir) Path() string { return d.path }

// Fd is the directory's descriptor (for fstatfs).
func (d *Dir) Fd() uintptr { return uintptr(d.fd) }

// Close closes the descriptor.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// base is name's entry in d: name must be a path directly inside it.
func (d *Dir) base(op, name string) (string, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(d.path, name)
	}
	name = filepath.Clean(name)
	b := filepath.Base(name)
	if filepath.Dir(name) != d.path || b == "." || b == ".." || b == "/" {
		return "", &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("not a file directly in %s", d.path)}
	}
	return b, nil
}

// OpenFile opens a file in d, never through a symbolic link.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	return d.openFile(name, flag, perm)
}

func (d *Dir) openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	b, err := d.base("open", name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd, b, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(d.path, b), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, b)), nil
}

// ReadFile reads a regular file in d (a FIFO or device in its place is
// refused, not waited on).
func (d *Dir) ReadFile(name string) ([]byte, error) {
	f, err := d.openFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: f.Name(), Err: errors.New("not a regular file")}
	}
	return io.ReadAll(f)
}

// Rename renames within d.
func (d *Dir) Rename(oldpath, newpath string) error {
	o, err := d.base("rename", oldpath)
	if err != nil {
		return err
	}
	n, err := d.base("rename", newpath)
	if err != nil {
		return err
	}
	if err := unix.Renameat(d.fd, o, d.fd, n); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// Remove removes a file (not a directory) in d.
func (d *Dir) Remove(name string) error {
	b, err := d.base("remove", name)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, b, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: filepath.Join(d.path, b), Err: err}
	}
	return nil
}

// Lstat describes d itself (its path) or an entry in it, not following a
// symbolic link.
func (d *Dir) Lstat(name string) (os.FileInfo, error) {
	var st unix.Stat_t
	if filepath.Clean(name) == d.path {
		if err := unix.Fstat(d.fd, &st); err != nil {
			return nil, &fs.PathError{Op: "fstat", Path: d.path, Err: err}
		}
		return newStatInfo(filepath.Base(d.path), &st), nil
	}
	b, err := d.base("lstat", name)
	if err != nil {
		return nil, err
	}
	if err := unix.Fstatat(d.fd, b, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: filepath.Join(d.path, b), Err: err}
	}
	return newStatInfo(b, &st), nil
}

// MkdirAll of d itself does nothing: it exists.
func (d *Dir) MkdirAll(name string, perm os.FileMode) error {
	if filepath.Clean(name) == d.path {
		return nil
	}
	return &fs.PathError{Op: "mkdir", Path: name, Err: fmt.Errorf("not the directory %s", d.path)}
}

// SyncDir fsyncs d.
func (d *Dir) SyncDir(name string) error {
	if filepath.Clean(name) != d.path {
		return &fs.PathError{Op: "fsync", Path: name, Err: fmt.Errorf("not the directory %s", d.path)}
	}
	if err := unix.Fsync(d.fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// ReadDir lists d's entries (names only, sorted by the kernel's order).
func (d *Dir) ReadDir() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// Lock takes the lock file name in d (see AcquireWith).
func (d *Dir) Lock(ctx context.Context, name string, o LockOptions) (*Lock, error) {
	if _, err := d.base("open", name); err != nil {
		return nil, err
	}
	return acquire(ctx, filepath.Join(d.path, filepath.Base(name)), func(flag int) (*os.File, error) {
		return d.openFile(name, flag, 0o600)
	}, o)
}

// statInfo is an os.FileInfo from fstatat.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func newStatInfo(name string, st *unix.Stat_t) *statInfo { return &statInfo{name, *st} }

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }
func (s *statInfo) Mode() os.FileMode {
	m := os.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if s.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	if s.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	return m
}

// Links is how many names a file has (1 where the platform does not say).
func Links(fi os.FileInfo) uint64 {
	switch st := fi.Sys().(type) {
	case *unix.Stat_t:
		return uint64(st.Nlink)
	case *syscall.Stat_t:
		return uint64(st.Nlink)
	}
	return 1
}

// SameFile reports whether a and b describe the same file (device and
// inode), whether they come from os or from a Dir.
func SameFile(a, b os.FileInfo) bool {
	da, ia, oka := devIno(a)
	db, ib, okb := devIno(b)
	return oka && okb && da == db && ia == ib
}

func devIno(fi os.FileInfo) (dev, ino uint64, ok bool) {
	switch st := fi.Sys().(type) {
	case *unix.Stat_t:
		return uint64(st.Dev), uint64(st.Ino), true
	case *syscall.Stat_t:
		return uint64(st.Dev), uint64(st.Ino), true
	}
	return 0, 0, false
}
