package faultfs_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/safefile"
	"github.com/cmekctl/cmekctl/pkg/safefile/faultfs"
)

func write(t *testing.T, f *faultfs.FS, path string, data []byte, sync bool) {
	t.Helper()
	h, err := f.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func content(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func TestCountsEveryMutation(t *testing.T) {
	dir := t.TempDir()
	f := faultfs.New()
	if err := safefile.WriteFile(f, filepath.Join(dir, "a"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var kinds []faultfs.Kind
	for _, op := range f.Ops() {
		kinds = append(kinds, op.Kind)
	}
	want := []faultfs.Kind{faultfs.Create, faultfs.Write, faultfs.Fsync, faultfs.Close, faultfs.Rename, faultfs.SyncDir}
	if !equalKinds(kinds, want) {
		t.Fatalf("ops %v, want %v", kinds, want)
	}
	if f.Count() != 6 || f.CountKind(faultfs.Fsync) != 1 {
		t.Fatalf("count %d, fsyncs %d", f.Count(), f.CountKind(faultfs.Fsync))
	}
	if err := f.MkdirAll(filepath.Join(dir, "p", "q"), 0o700); err != nil {
		t.Fatal(err)
	}
	if f.CountKind(faultfs.Mkdir) != 2 || f.CountKind(faultfs.SyncDir) != 3 {
		t.Fatalf("mkdirall: %d mkdir, %d syncdir, want 2 and 3", f.CountKind(faultfs.Mkdir), f.CountKind(faultfs.SyncDir))
	}
	if err := f.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if f.CountKind(faultfs.Remove) != 1 || f.Count() != 6+4+1 {
		t.Fatalf("remove not counted: %v", f.Ops())
	}
	// Reads are not counted.
	if _, err := f.ReadFile(filepath.Join(dir, "p")); err == nil {
		t.Fatal("read of a directory succeeded")
	}
	if _, err := f.Lstat(dir); err != nil || f.Count() != 11 {
		t.Fatalf("lstat: %v, count %d", err, f.Count())
	}
}

func equalKinds(a, b []faultfs.Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCrashStopsEverything(t *testing.T) {
	dir := t.TempDir()
	f := faultfs.New()
	f.CrashAfter(2) // create, write; then the fsync fails
	err := safefile.WriteFile(f, filepath.Join(dir, "a"), []byte("new"), 0o600)
	if !errors.Is(err, faultfs.ErrCrashed) || !f.Crashed() {
		t.Fatalf("WriteFile after crash point: %v", err)
	}
	// Later calls fail and change nothing.
	if _, err := f.OpenFile(filepath.Join(dir, "b"), os.O_WRONLY|os.O_CREATE, 0o600); !errors.Is(err, faultfs.ErrCrashed) {
		t.Fatalf("create after crash: %v", err)
	}
	if _, ok := content(t, filepath.Join(dir, "b")); ok {
		t.Fatal("a file was created after the crash")
	}
	if err := f.MkdirAll(filepath.Join(dir, "d"), 0o700); !errors.Is(err, faultfs.ErrCrashed) {
		t.Fatalf("mkdir after crash: %v", err)
	}
	if _, err := f.ReadFile(filepath.Join(dir, "a")); !errors.Is(err, faultfs.ErrCrashed) {
		t.Fatalf("read after crash: %v", err)
	}
	// WriteFile's cleanup (remove of the temporary file) did not reach the
	// disk either: the temporary file is still there, with its data.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %d entries, want the temporary file only", len(ents))
	}
}

func TestDurabilityModel(t *testing.T) {
	type step func(t *testing.T, f *faultfs.FS, dir string)
	cases := []struct {
		name       string
		pre        map[string]string // files present before faultfs touches them
		run        step
		keep, drop map[string]string // expected files ("" absent marker: key missing)
	}{
		{
			name: "unsynced new file, unsynced dir",
			run:  func(t *testing.T, f *faultfs.FS, d string) { write(t, f, filepath.Join(d, "a"), []byte("x"), false) },
			keep: map[string]string{"a": "x"}, drop: map[string]string{},
		},
		{
			name: "synced file, unsynced dir entry",
			run:  func(t *testing.T, f *faultfs.FS, d string) { write(t, f, filepath.Join(d, "a"), []byte("x"), true) },
			keep: map[string]string{"a": "x"}, drop: map[string]string{},
		},
		{
			name: "unsynced contents, synced dir entry: comes back empty",
			run: func(t *testing.T, f *faultfs.FS, d string) {
				write(t, f, filepath.Join(d, "a"), []byte("x"), false)
				if err := f.SyncDir(d); err != nil {
					t.Fatal(err)
				}
			},
			keep: map[string]string{"a": "x"}, drop: map[string]string{"a": ""},
		},
		{
			name: "overwrite in place without fsync reverts to the old contents",
			pre:  map[string]string{"a": "old"},
			run:  func(t *testing.T, f *faultfs.FS, d string) { write(t, f, filepath.Join(d, "a"), []byte("new"), false) },
			keep: map[string]string{"a": "new"}, drop: map[string]string{"a": "old"},
		},
		{
			name: "rename without dir fsync is undone",
			pre:  map[string]string{"a": "old"},
			run: func(t *testing.T, f *faultfs.FS, d string) {
				write(t, f, filepath.Join(d, "t"), []byte("new"), true)
				if err := f.SyncDir(d); err != nil {
					t.Fatal(err)
				}
				if err := f.Rename(filepath.Join(d, "t"), filepath.Join(d, "a")); err != nil {
					t.Fatal(err)
				}
			},
			keep: map[string]string{"a": "new"}, drop: map[string]string{"a": "old", "t": "new"},
		},
		{
			name: "rename with dir fsync is durable",
			pre:  map[string]string{"a": "old"},
			run: func(t *testing.T, f *faultfs.FS, d string) {
				if err := safefile.WriteFile(f, filepath.Join(d, "a"), []byte("new"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			keep: map[string]string{"a": "new"}, drop: map[string]string{"a": "new"},
		},
		{
			name: "remove without dir fsync is undone",
			pre:  map[string]string{"a": "old"},
			run: func(t *testing.T, f *faultfs.FS, d string) {
				if err := f.Remove(filepath.Join(d, "a")); err != nil {
					t.Fatal(err)
				}
			},
			keep: map[string]string{}, drop: map[string]string{"a": "old"},
		},
		{
			name: "mkdir is durable once MkdirAll returns",
			run: func(t *testing.T, f *faultfs.FS, d string) {
				if err := f.MkdirAll(filepath.Join(d, "p"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := safefile.WriteFile(f, filepath.Join(d, "p", "a"), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			keep: map[string]string{"p/a": "x"}, drop: map[string]string{"p/a": "x"},
		},
	}
	for _, c := range cases {
		for _, drop := range []bool{false, true} {
			t.Run(c.name+map[bool]string{false: "/keep", true: "/drop"}[drop], func(t *testing.T) {
				d := t.TempDir()
				for n, v := range c.pre {
					if err := os.WriteFile(filepath.Join(d, n), []byte(v), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				f := faultfs.New()
				c.run(t, f, d)
				f.CrashAfter(f.Count()) // nothing more
				if err := f.Reboot(drop); err != nil {
					t.Fatal(err)
				}
				want := c.keep
				if drop {
					want = c.drop
				}
				got := map[string]string{}
				filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
					if err == nil && !e.IsDir() {
						rel, _ := filepath.Rel(d, p)
						b, _ := os.ReadFile(p)
						got[filepath.ToSlash(rel)] = string(b)
					}
					return nil
				})
				if len(got) != len(want) {
					t.Fatalf("files %q, want %q", got, want)
				}
				for k, v := range want {
					if g, ok := got[k]; !ok || g != v {
						t.Fatalf("files %q, want %q", got, want)
					}
				}
			})
		}
	}
}

func TestMkdirUndoneWithoutParentSync(t *testing.T) {
	d := t.TempDir()
	f := faultfs.New()
	f.CrashAfter(1) // the mkdir, not the parent fsync
	if err := f.MkdirAll(filepath.Join(d, "p"), 0o700); !errors.Is(err, faultfs.ErrCrashed) {
		t.Fatalf("MkdirAll: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d, "p")); err != nil {
		t.Fatalf("mkdir did not reach the disk: %v", err)
	}
	if err := f.Reboot(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "p")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unsynced mkdir survived a drop reboot: %v", err)
	}
}

// WriteFile through faultfs, crashed at every operation and rebooted both
// ways, leaves the old or the new contents: never a mix, never nothing.
func TestWriteFileEveryCrashPoint(t *testing.T) {
	count := faultfs.New()
	d := t.TempDir()
	p := filepath.Join(d, "f")
	if err := safefile.WriteFile(count, p, []byte("probe"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := count.Count()
	for k := 1; k <= n; k++ {
		for _, drop := range []bool{false, true} {
			d := t.TempDir()
			p := filepath.Join(d, "f")
			os.WriteFile(p, []byte("old contents"), 0o600)
			f := faultfs.New()
			f.CrashAfter(k)
			err := safefile.WriteFile(f, p, []byte("new contents"), 0o600)
			if k < n && !errors.Is(err, faultfs.ErrCrashed) {
				t.Fatalf("k=%d: WriteFile returned %v, want a crash", k, err)
			}
			if err := f.Reboot(drop); err != nil {
				t.Fatal(err)
			}
			got, _ := content(t, p)
			if got != "old contents" && got != "new contents" {
				t.Fatalf("k=%d drop=%v: file holds %q", k, drop, got)
			}
			if drop && k < n && got != "old contents" {
				t.Fatalf("k=%d: unsynced rename survived a drop reboot", k)
			}
		}
	}
	if n != 6 {
		t.Fatalf("WriteFile has %d write points, want 6", n)
	}
}

func TestInjectedErrors(t *testing.T) {
	for _, c := range []struct {
		kind  faultfs.Kind
		errno syscall.Errno
	}{
		{faultfs.Create, syscall.ENOSPC}, {faultfs.Write, syscall.ENOSPC}, {faultfs.Fsync, syscall.EIO},
		{faultfs.Close, syscall.EIO}, {faultfs.Rename, syscall.EACCES},
	} {
		d := t.TempDir()
		p := filepath.Join(d, "f")
		os.WriteFile(p, []byte("old"), 0o600)
		f := faultfs.New()
		f.FailKind(c.kind, c.errno)
		err := safefile.WriteFile(f, p, []byte("new"), 0o600)
		if !errors.Is(err, c.errno) {
			t.Fatalf("%s: %v, want %v", c.kind, err, c.errno)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, []byte("old")) {
			t.Fatalf("%s: file changed to %q", c.kind, b)
		}
		// The temporary file was cleaned up and nothing was retried.
		if ents, _ := os.ReadDir(d); len(ents) != 1 {
			t.Fatalf("%s: %d entries left", c.kind, len(ents))
		}
		if got := f.CountKind(c.kind); got != 1 {
			t.Fatalf("%s attempted %d times: a failed operation was retried", c.kind, got)
		}
	}
	// FailAt and FailNth hit exactly one operation.
	f := faultfs.New()
	d := t.TempDir()
	f.FailAt(2, syscall.ENOSPC)
	if err := safefile.WriteFile(f, filepath.Join(d, "a"), []byte("x"), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("FailAt(2): %v", err)
	}
	if err := safefile.WriteFile(f, filepath.Join(d, "a"), []byte("x"), 0o600); err != nil {
		t.Fatalf("second WriteFile after FailAt: %v", err)
	}
	f = faultfs.New()
	f.FailNth(faultfs.Fsync, 2, syscall.EIO)
	if err := safefile.WriteFile(f, filepath.Join(d, "b"), []byte("x"), 0o600); err != nil {
		t.Fatalf("first fsync failed: %v", err)
	}
	if err := safefile.WriteFile(f, filepath.Join(d, "c"), []byte("x"), 0o600); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second fsync: %v", err)
	}
}
