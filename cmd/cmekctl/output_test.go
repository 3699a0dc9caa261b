package main

// Where `backup decrypt`, `data decrypt` and `backup-keys export` write: a
// device or FIFO is written in place (it was once replaced by a regular file:
// `backup decrypt X /dev/null` run as root turned /dev/null into a file), a
// symbolic link stays a link, a directory is refused before any work.

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestOutputPaths(t *testing.T) {
	tmp := t.TempDir()
	kr := rssKeyring(t, tmp)
	plain := filepath.Join(tmp, "plain")
	want := bytes.Repeat([]byte("backup data\n"), 10000)
	if err := os.WriteFile(plain, want, 0o600); err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(tmp, "b.cmek")
	if code, _, stderr := cliRun(t, tmp, "backup", "encrypt", "--keyring", kr, plain, enc); code != 0 {
		t.Fatalf("encrypt: exit %d: %s", code, stderr)
	}

	t.Run("fifo", func(t *testing.T) {
		fifo := filepath.Join(tmp, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		// Both ends are held open here, so that nothing blocks even if
		// cmekctl never opens the FIFO: the read ends when our write end
		// and cmekctl's are closed.
		r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(r)
			got <- b
		}()
		code, _, stderr := cliRun(t, tmp, "backup", "decrypt", "--keyring", kr, enc, fifo)
		w.Close()
		if code != 0 {
			t.Fatalf("decrypt to a FIFO: exit %d: %s", code, stderr)
		}
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("read %d bytes from the FIFO, want %d", len(b), len(want))
		}
		fi, err := os.Lstat(fifo)
		if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Fatalf("the FIFO was replaced: %v, %v", fi.Mode(), err)
		}
		if left, _ := filepath.Glob(filepath.Join(tmp, ".fifo.tmp-*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	})

	t.Run("symlink", func(t *testing.T) {
		real := filepath.Join(tmp, "real.out")
		if err := os.WriteFile(real, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(tmp, "link.out")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := cliRun(t, tmp, "backup", "decrypt", "--keyring", kr, enc, link); code != 0 {
			t.Fatalf("decrypt to a symlink: exit %d: %s", code, stderr)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link was replaced: %v", err)
		}
		if b, _ := os.ReadFile(real); !bytes.Equal(b, want) {
			t.Fatalf("the link's target holds %d bytes, want %d", len(b), len(want))
		}
	})

	t.Run("directory", func(t *testing.T) {
		dir := filepath.Join(tmp, "outdir")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := cliRun(t, tmp, "backup", "decrypt", "--keyring", kr, enc, dir)
		if code != 2 || !strings.Contains(stderr, "is a directory") || !strings.Contains(stderr, "hint:") {
			t.Fatalf("decrypt to a directory: exit %d: %s", code, stderr)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("the directory was written to: %v", ents)
		}
	})
}
