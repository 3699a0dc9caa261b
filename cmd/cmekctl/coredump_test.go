package main

// Core dumps while a process holds keys (issue 9, "Memory"): observed from
// outside, in /proc/PID/limits, while a real cmekctl process is in the
// middle of a stream it decrypts with a key it has unwrapped.

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// coreLimitZeroMidStream runs cmekctl ARGS with input on stdin, writes the
// first half, and reports whether the process's core-file limit went to 0
// (within 3 s) while it waited for the rest.
func coreLimitZeroMidStream(t *testing.T, tmp string, input []byte, args ...string) bool {
	t.Helper()
	inheritableCoreLimit(t)
	c := cliCmd(t, tmp, args...)
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	c.Stdout, c.Stderr = io.Discard, &errOut
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = stdin.Write(input[:len(input)/2]) }()
	zero := false
	limits := filepath.Join("/proc", itoa(c.Process.Pid), "limits")
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !zero; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(limits)
		if err != nil {
			break
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(strings.TrimPrefix(l, "Max core file size")); strings.HasPrefix(l, "Max core file size") && len(f) >= 2 && f[0] == "0" && f[1] == "0" {
				zero = true
			}
		}
	}
	_, _ = stdin.Write(input[len(input)/2:])
	stdin.Close()
	if err := c.Wait(); err != nil {
		t.Fatalf("cmekctl %s: %v: %s", args[0], err, errOut.String())
	}
	return zero
}

// inheritableCoreLimit makes sure a child starts with a hard core-file
// limit above 0, so that the child's own setting can be seen: an in-process
// unwrap earlier in this test binary (keyring.OpenSealer) set this
// process's limits to 0 0, which a child would inherit. Raising a hard
// limit needs CAP_SYS_RESOURCE; without it the test cannot observe and says
// so.
func inheritableCoreLimit(t *testing.T) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &r); err != nil {
		t.Fatal(err)
	}
	if r.Max != 0 {
		return
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: unix.RLIM_INFINITY}); err != nil {
		t.Skipf("this process's hard core-file limit is 0 and cannot be raised (%v): a child's cannot be seen to change", err)
	}
}

func itoa(n int) string { return fmtInt(n) }

func fmtInt(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestCoreDumpsOffWhileDecrypting: `cmekctl data decrypt` sets its
// core-file limit to 0 before it holds the data key, and keeps it so while
// it streams.
func TestCoreDumpsOffWhileDecrypting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	w := newKillWorld(t)
	plain := make([]byte, 4<<20)
	_, _ = rand.Read(plain)
	in := filepath.Join(w.tmp, "plain.bin")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(w.tmp, "sealed.bin")
	cliOK(t, w.tmp, "data", "encrypt", "--keyring", w.dirs[0], in, sealed)
	data, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !coreLimitZeroMidStream(t, w.tmp, data, "data", "decrypt", "--keyring", w.dirs[0]) {
		t.Errorf("cmekctl data decrypt held the data key with core dumps allowed (RLIMIT_CORE not 0 in /proc/PID/limits)")
	}
}
