package safefile_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

func TestWriteFile(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "f")
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, data := range []string{"first", "second, longer", ""} {
		if err := safefile.WriteFile(safefile.OS{}, p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if string(b) != data || fi.Mode().Perm() != 0o600 {
			t.Fatalf("file holds %q mode %04o, want %q 0600", b, fi.Mode().Perm(), data)
		}
	}
	if ents, _ := os.ReadDir(d); len(ents) != 1 {
		t.Fatalf("%d entries: temporary files left", len(ents))
	}
	// Into a missing directory: an error naming the temporary file, nothing created.
	err := safefile.WriteFile(safefile.OS{}, filepath.Join(d, "missing", "f"), []byte("x"), 0o600)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "create") {
		t.Fatalf("write into a missing directory: %v", err)
	}
}

func TestMkdirAll(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "a", "b", "c")
	if err := (safefile.OS{}).MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{filepath.Join(d, "a"), filepath.Join(d, "a", "b"), p} {
		if fi, err := os.Stat(q); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v", q, fi, err)
		}
	}
	if err := (safefile.OS{}).MkdirAll(p, 0o700); err != nil {
		t.Fatalf("MkdirAll of an existing directory: %v", err)
	}
	f := filepath.Join(d, "file")
	os.WriteFile(f, nil, 0o600)
	if err := (safefile.OS{}).MkdirAll(f, 0o700); err == nil {
		t.Fatal("MkdirAll over a file succeeded")
	}
	if err := (safefile.OS{}).MkdirAll(filepath.Join(f, "sub"), 0o700); err == nil {
		t.Fatal("MkdirAll under a file succeeded")
	}
}

func TestCheckPrivate(t *testing.T) {
	d := t.TempDir()
	f := filepath.Join(d, "key")
	os.WriteFile(f, []byte("x"), 0o600)
	check := func(path string, isDir bool, wantOK bool, hint string) {
		t.Helper()
		err := safefile.CheckPrivate(safefile.OS{}, path, isDir)
		if wantOK != (err == nil) {
			t.Fatalf("%s: %v, want ok=%v", path, err, wantOK)
		}
		if err != nil && !strings.Contains(err.Error(), hint) {
			t.Fatalf("%s: %q does not say %q", path, err, hint)
		}
	}
	for m, ok := range map[os.FileMode]bool{0o600: true, 0o400: true, 0o700: true, 0o640: false, 0o644: false, 0o660: false, 0o602: false, 0o666: false} {
		os.Chmod(f, m)
		check(f, false, ok, "chmod 0600 "+f)
	}
	os.Chmod(f, 0o600)
	for m, ok := range map[os.FileMode]bool{0o700: true, 0o500: true, 0o750: false, 0o755: false, 0o770: false, 0o777: false, 0o711: false} {
		os.Chmod(d, m)
		check(d, true, ok, "chmod 0700 "+d)
	}
	os.Chmod(d, 0o700)
	check(f, true, false, "is not a directory")
	check(d, false, false, "is a directory")
	link := filepath.Join(d, "link")
	os.Symlink(f, link)
	check(link, false, false, "use the real path")
	dlink := filepath.Join(t.TempDir(), "dlink")
	os.Symlink(d, dlink)
	check(dlink, true, false, "use the real path")
	if err := safefile.CheckPrivate(safefile.OS{}, filepath.Join(d, "absent"), false); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent file: %v", err)
	}
	if os.Geteuid() == 0 { // chown needs root
		os.Lchown(f, 4242, 4242)
		check(f, false, false, "run cmekctl as its owner")
		os.Lchown(f, 0, 0)
	}
}

func TestLockExclusive(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "lock")
	l1, err := safefile.Acquire(ctx, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file mode %04o", fi.Mode().Perm())
	}
	_, err = safefile.Acquire(ctx, p, 0)
	// It says at once who holds the lock (this process did not say what it does).
	if want := fmt.Sprintf("held by pid %d", os.Getpid()); !errors.Is(err, safefile.ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second writer: %v, want ErrLocked naming %q", err, want)
	}
	// A waiter gets the lock when the holder releases it.
	go func() {
		time.Sleep(50 * time.Millisecond)
		l1.Release()
	}()
	l2, err := safefile.Acquire(ctx, p, 5*time.Second)
	if err != nil {
		t.Fatalf("waiter: %v", err)
	}
	// A cancelled waiter stops waiting.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := safefile.Acquire(cctx, p, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l2.Release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
}

// A lock held by a process killed with SIGKILL is released by the kernel:
// the next writer gets it at once, never blocked forever.
func TestLockKilledHolder(t *testing.T) {
	if p := os.Getenv("SAFEFILE_LOCK_HELPER"); p != "" {
		return // in the child: see lockHolderMain
	}
	p := filepath.Join(t.TempDir(), "lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	cmd.Env = append(os.Environ(), "SAFEFILE_LOCK_HELPER="+p)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "locked") {
		cmd.Process.Kill()
		t.Fatalf("child: %q %v", line, err)
	}
	if _, err := safefile.Acquire(context.Background(), p, 0); !errors.Is(err, safefile.ErrLocked) {
		cmd.Process.Kill()
		t.Fatalf("the child's lock is not held: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	l, err := safefile.Acquire(context.Background(), p, 2*time.Second)
	if err != nil {
		t.Fatalf("lock of a killed process: %v", err)
	}
	l.Release()
}

// TestLockHolderProcess is the child of TestLockKilledHolder: it takes the
// lock, says so and waits to be killed.
func TestLockHolderProcess(t *testing.T) {
	p := os.Getenv("SAFEFILE_LOCK_HELPER")
	if p == "" {
		return // only meaningful as TestLockKilledHolder's child
	}
	if _, err := safefile.Acquire(context.Background(), p, 0); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// TestLockHolderNamed: a holder that names its verb is named, with the time
// it took the lock, to a second writer: to its OnWait at once, and in the
// error when the wait ends.
func TestLockHolderNamed(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "lock")
	l1, err := safefile.AcquireWith(ctx, p, safefile.LockOptions{Owner: "rotate store-key"})
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Release()
	var told []string
	_, err = safefile.AcquireWith(ctx, p, safefile.LockOptions{Wait: 100 * time.Millisecond, OnWait: func(h string) { told = append(told, h) }})
	var le *safefile.LockedError
	if !errors.As(err, &le) || !errors.Is(err, safefile.ErrLocked) {
		t.Fatalf("second writer: %v, want a *LockedError", err)
	}
	re := regexp.MustCompile(fmt.Sprintf(`^pid %d \(rotate store-key, since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$`, os.Getpid()))
	if !re.MatchString(le.Holder) || le.Waited != 100*time.Millisecond {
		t.Errorf("holder %q waited %v, want %v and 100ms", le.Holder, le.Waited, re)
	}
	if len(told) != 1 || told[0] != le.Holder {
		t.Errorf("OnWait was told %q, want once %q", told, le.Holder)
	}
	// Released: a writer gets it at once; the file now names the new holder.
	l1.Release()
	l2, err := safefile.AcquireWith(ctx, p, safefile.LockOptions{Owner: "backup encrypt"})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Release()
	if b, _ := os.ReadFile(p); !strings.Contains(string(b), "verb backup encrypt\n") || strings.Contains(string(b), "rotate") {
		t.Errorf("lock file after the second holder: %q", b)
	}
}
