package main

// Real processes killed with SIGKILL (issue 9, "Real processes" and "a lock
// left by a killed process does not block forever").
//
// cmekctl runs as a child process: the test binary itself, started with
// argv[0] "cmekctl", which testscript.Main (main_test.go) dispatches to
// commands.Main, the same function cmd/cmekctl's main calls. Nothing in the
// child knows it is being tested.
//
// Short form (normal suite): 30 kills. Long form:
//
//	CMEKCTL_LONG=1 go test -timeout 60m -run TestKillRotate -v ./cmd/cmekctl/
//
// CMEKCTL_KILL_SEED=N replays a run (the seed is printed either way).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// cliEnv is a small, known environment for child processes: no user config,
// the audit log in the test's directory.
func cliEnv(tmp string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(tmp, "home"),
		"XDG_STATE_HOME=" + filepath.Join(tmp, "state"),
		"XDG_CONFIG_HOME=" + filepath.Join(tmp, "config"),
		"NO_COLOR=1",
	}
}

// cliCmd is cmekctl ARGS as a child process.
func cliCmd(t testing.TB, tmp string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &exec.Cmd{Path: exe, Args: append([]string{"cmekctl"}, args...), Env: cliEnv(tmp)}
}

// cliRun runs cmekctl ARGS to completion and returns its exit code and output.
func cliRun(t testing.TB, tmp string, args ...string) (int, string, string) {
	t.Helper()
	c := cliCmd(t, tmp, args...)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("cmekctl %s: %v", strings.Join(args, " "), err)
	return -1, "", ""
}

func cliOK(t testing.TB, tmp string, args ...string) string {
	t.Helper()
	code, out, errOut := cliRun(t, tmp, args...)
	if code != 0 {
		t.Fatalf("cmekctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// killWorld is 3 nodes of one region enabled on the embedded KMS, with
// data sealed on each node before anything is killed.
type killWorld struct {
	tmp    string
	uri    string
	dirs   []string
	plain  []byte
	sealed map[string][]byte // dir → data file
}

func newKillWorld(t *testing.T) *killWorld {
	tmp := t.TempDir()
	w := &killWorld{tmp: tmp, sealed: map[string][]byte{}}
	kms := filepath.Join(tmp, "kms")
	if err := os.Mkdir(kms, 0o700); err != nil {
		t.Fatal(err)
	}
	w.uri = "file-kms://" + filepath.Join(kms, "k1")
	cliOK(t, tmp, "kms", "create", w.uri)
	args := []string{"enable", "--cluster-id", "c1", "--region", "r1", "--cmek", w.uri}
	for i := 1; i <= 3; i++ {
		d := filepath.Join(tmp, fmt.Sprintf("n%d", i))
		w.dirs = append(w.dirs, d)
		args = append(args, "--keyring", d, "--node", fmt.Sprintf("n%d", i))
	}
	cliOK(t, tmp, args...)
	w.plain = make([]byte, 10_000)
	_, _ = rand.Read(w.plain)
	// Sealed by cmekctl itself, as a child: this test process unwraps no
	// key here (coredump_test.go needs its core-file limit untouched).
	pf := filepath.Join(tmp, "plain.bin")
	if err := os.WriteFile(pf, w.plain, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, d := range w.dirs {
		sf := filepath.Join(tmp, fmt.Sprintf("sealed-%d.bin", i))
		cliOK(t, tmp, "data", "encrypt", "--keyring", d, pf, sf)
		b, err := os.ReadFile(sf)
		if err != nil {
			t.Fatal(err)
		}
		w.sealed[d] = b
	}
	return w
}

func (w *killWorld) keyringArgs() []string {
	var a []string
	for _, d := range w.dirs {
		a = append(a, "--keyring", d)
	}
	return a
}

// check: every keyring opens, and the data sealed before the loop opens on
// every node.
func (w *killWorld) check() error {
	env := keyring.Env{Open: registry.Default().Open, Now: time.Now}
	for _, d := range w.dirs {
		if _, err := (keyring.Store{Dir: d}).Load(); err != nil {
			return fmt.Errorf("keyring %s does not open: %w", d, err)
		}
		s, err := keyring.OpenSealer(context.Background(), env, keyring.Store{Dir: d})
		if err != nil {
			return fmt.Errorf("open sealer of %s: %w", d, err)
		}
		var out bytes.Buffer
		_, err = s.Open(&out, bytes.NewReader(w.sealed[d]), stream.Options{})
		s.Close()
		if err != nil {
			return fmt.Errorf("data sealed on %s before the loop: %w", d, err)
		}
		if !bytes.Equal(out.Bytes(), w.plain) {
			return fmt.Errorf("data sealed on %s before the loop opens to other bytes", d)
		}
	}
	return nil
}

func (w *killWorld) journalLeft() bool {
	for _, d := range w.dirs {
		if _, err := os.Lstat(filepath.Join(d, keyring.JournalName)); err == nil {
			return true
		}
	}
	return false
}

func (w *killWorld) snapshot() map[string]string {
	m := map[string]string{}
	for _, d := range w.dirs {
		b, _ := os.ReadFile(filepath.Join(d, keyring.FileName))
		m[d] = string(b)
	}
	return m
}

func killIterations() int {
	if os.Getenv("CMEKCTL_LONG") != "" {
		return 1000
	}
	return 30
}

func killSeed(t *testing.T) uint64 {
	if s := os.Getenv("CMEKCTL_KILL_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CMEKCTL_KILL_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestKillRotate starts `cmekctl rotate store-key|data-key|cmek` over 3
// keyrings as a child process and kills it with SIGKILL after a random
// delay of 0-30 ms; then every keyring must open, the data sealed before
// the loop must open on every node, and the same command run again must
// finish (exit 0), leaving no journal: a journal left by the kill means the
// rerun resumed it.
func TestKillRotate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: not in -short")
	}
	w := newKillWorld(t)
	seed := killSeed(t)
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := killIterations()
	// A window of 0-30 ms after start ends before a child has started,
	// taken the locks and unwrapped the store key: every kill would land
	// before the first write (measured: 30 of 30). So the window follows the
	// length of a whole run, measured as the loop goes (1.2 x the median of
	// the last 9 full reruns; at least 30 ms), which follows the machine's
	// load.
	var runs []time.Duration
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		cliOK(t, w.tmp, append([]string{"rotate", "data-key"}, w.keyringArgs()...)...)
		runs = append(runs, time.Since(t0))
	}
	t.Logf("seed %d (CMEKCTL_KILL_SEED=%d replays the delays), %d iterations, delay uniform in 0..1.2 x the median full run (first window %v)", seed, seed, n, window(runs))

	ops := []string{"store-key", "data-key", "cmek"}
	var (
		failures                         []string
		exitedFirst, noChange, mid, done int
		journals, resumed, rerunFailed   int
		kmsRotations                     int
		delays                           []time.Duration
		start                            = time.Now()
	)
	for i := 0; i < n; i++ {
		op := ops[i%3]
		if op == "cmek" && i%9 == 2 {
			// Now and then a new CMEK key version, so `rotate cmek` has
			// something to move to (not killed: the KMS is not under test).
			cliOK(t, w.tmp, "kms", "rotate", w.uri)
			kmsRotations++
		}
		args := append([]string{"rotate", op}, w.keyringArgs()...)
		before := w.snapshot()
		delay := time.Duration(rng.Int64N(int64(window(runs)) + 1)).Round(time.Millisecond)
		delays = append(delays, delay)
		c := cliCmd(t, w.tmp, args...)
		var errOut bytes.Buffer
		c.Stderr = &errOut
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = c.Process.Signal(syscall.SIGKILL)
		err := c.Wait()
		killed := false
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				killed = true
			} else {
				failures = append(failures, fmt.Sprintf("iteration %d (%s, %v): exited %d before the kill: %s", i, op, delay, ee.ExitCode(), oneLine(errOut.String())))
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if !killed {
			exitedFirst++
		}
		after := w.snapshot()
		changed := 0
		for _, d := range w.dirs {
			if before[d] != after[d] {
				changed++
			}
		}
		j := w.journalLeft()
		switch {
		case j:
			journals++
			mid++
		case changed == 0:
			noChange++
		default:
			done++
		}
		if err := w.check(); err != nil {
			failures = append(failures, fmt.Sprintf("iteration %d (%s, killed after %v): %v", i, op, delay, err))
			continue
		}
		t0 := time.Now()
		code, out, stderr := cliRun(t, w.tmp, args...)
		runs = append(runs, time.Since(t0))
		if code != 0 {
			rerunFailed++
			failures = append(failures, fmt.Sprintf("iteration %d (%s, killed after %v): rerun exit %d: %s %s", i, op, delay, code, oneLine(stderr), oneLine(out)))
			continue
		}
		if w.journalLeft() {
			failures = append(failures, fmt.Sprintf("iteration %d (%s): the rerun exited 0 but left a journal", i, op))
		}
		if j {
			resumed++
		}
		if err := w.check(); err != nil {
			failures = append(failures, fmt.Sprintf("iteration %d (%s): after the rerun: %v", i, op, err))
		}
		if len(failures) > 20 {
			break
		}
		if (i+1)%100 == 0 {
			t.Logf("%d/%d: %d mid-rotation kills so far, %d failures, %v", i+1, n, mid, len(failures), time.Since(start).Round(time.Second))
		}
	}
	stray := strayFiles(t, w.dirs)
	t.Logf("kill loop: %d iterations in %v (seed %d): killed before any keyring changed %d, mid-rotation (journal left) %d, with keyrings changed and no journal %d, exited before the kill %d; reruns that resumed a journal %d, reruns failed %d; kms rotations %d; files other than keyring/lock left: %v; failures %d",
		n, time.Since(start).Round(time.Second), seed, noChange, mid, done, exitedFirst, resumed, rerunFailed, kmsRotations, stray, len(failures))
	for _, f := range failures {
		t.Error(f)
	}
	if len(stray) > 0 {
		// Temporary files of killed writers: Store.Save removes them under
		// the lock (stale_tmp_test.go), so after a finished rerun none is left.
		t.Errorf("files left in the keyring directories after the loop: %v", stray)
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	if len(delays) > 0 {
		t.Logf("delays: min %v, median %v, max %v", delays[0], delays[len(delays)/2], delays[len(delays)-1])
	}
	if n >= 100 && mid == 0 {
		t.Errorf("no kill of %d landed mid-rotation (journal left): the delays miss the window, the test proves little", n)
	}
}

// window is 1.2 times the median of the last 9 full runs (at least 30 ms).
func window(runs []time.Duration) time.Duration {
	d := append([]time.Duration(nil), runs[max(0, len(runs)-9):]...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return max(30*time.Millisecond, (d[len(d)/2] * 6 / 5).Round(time.Millisecond))
}

// strayFiles lists files in the keyring directories other than the keyring
// and its lock file (temporary files a killed writer left behind).
func strayFiles(t *testing.T, dirs []string) []string {
	var out []string
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != keyring.FileName && e.Name() != keyring.LockName {
				out = append(out, filepath.Join(filepath.Base(d), e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestHelperHoldLock is not a test: run as a child process with
// CMEKCTL_HOLD_LOCK=DIR, it takes DIR's keyring lock, says "locked" and
// sleeps until killed.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv("CMEKCTL_HOLD_LOCK")
	if dir == "" {
		t.Skip("helper process only")
	}
	l, err := keyring.Store{Dir: dir, LockWait: time.Second}.Lock(context.Background())
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	_ = l
	os.Exit(0)
}

// TestKillLockHolder: a process holding a keyring's lock is killed with
// SIGKILL. While it lived, a rotate waited (still running after 1 s); once
// it is killed, that rotate finishes at once, and a new rotate succeeds at
// once too: the kernel released the flock, nothing stale blocks.
func TestKillLockHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: not in -short")
	}
	w := newKillWorld(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(exe, "-test.run=^TestHelperHoldLock$")
	holder.Env = append(cliEnv(w.tmp), "CMEKCTL_HOLD_LOCK="+w.dirs[1])
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		_ = holder.Process.Kill()
		_ = holder.Wait()
		t.Fatalf("lock holder said %q, not locked", line)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	before := w.snapshot()
	// A script fails at once by default (lock.txtar): this one waits.
	args := append([]string{"rotate", "data-key", "--lock-wait", "30s"}, w.keyringArgs()...)
	waiter := cliCmd(t, w.tmp, args...)
	var wout, werr syncBuffer
	waiter.Stdout, waiter.Stderr = &wout, &werr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- waiter.Wait() }()
	select {
	case err := <-exited:
		_ = holder.Process.Kill()
		_ = holder.Wait()
		t.Fatalf("rotate did not wait for the lock held by pid %d: exited (%v) at once: %s", holder.Process.Pid, err, werr.String())
	case <-time.After(time.Second):
	}
	if want := fmt.Sprintf("waiting up to 30s for the lock of %s, held by pid %d", w.dirs[1], holder.Process.Pid); !strings.Contains(werr.String(), want) {
		t.Errorf("the waiting rotate did not say at once whom it waits for (%q): %q", want, werr.String())
	}
	if after := w.snapshot(); after[w.dirs[1]] != before[w.dirs[1]] {
		t.Errorf("the keyring whose lock is held changed while it was held")
	}

	killedAt := time.Now()
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the waiting rotate failed after the holder was killed: %v\n%s", err, werr.String())
		}
		t.Logf("the waiting rotate finished %v after the holder was killed", time.Since(killedAt).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		_ = waiter.Process.Kill()
		t.Fatalf("the waiting rotate still waits 20 s after the lock holder was killed")
	}
	// A new writer gets the lock at once: well under the 30 s lock wait.
	t0 := time.Now()
	cliOK(t, w.tmp, args...)
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("a new rotate after the kill took %v: something waited for the dead holder's lock", d)
	} else {
		t.Logf("a new rotate after the kill took %v", d.Round(time.Millisecond))
	}
	if err := w.check(); err != nil {
		t.Fatal(err)
	}
}
