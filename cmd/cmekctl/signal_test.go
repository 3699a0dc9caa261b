package main

// Real signals sent to a streaming cmekctl (issue 18, must-fix 1): SIGINT,
// SIGTERM or SIGHUP while backup encrypt, data encrypt or backup decrypt
// waits for more input stops it at once: the final chunk is never written,
// OUT is left as it was (no temporary file either), and it exits 128 + the
// signal number with "nothing was changed".

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type signalWorld struct {
	tmp, dir, plain, backup string
}

func newSignalWorld(t *testing.T) *signalWorld {
	tmp := t.TempDir()
	w := &signalWorld{tmp: tmp, dir: filepath.Join(tmp, "n1")}
	if err := os.Mkdir(filepath.Join(tmp, "kms"), 0o700); err != nil {
		t.Fatal(err)
	}
	uri := "file-kms://" + filepath.Join(tmp, "kms", "k1")
	cliOK(t, tmp, "kms", "create", uri)
	cliOK(t, tmp, "enable", "--cluster-id", "c1", "--region", "r1", "--cmek", uri, "--keyring", w.dir, "--node", "n1")
	w.plain = filepath.Join(tmp, "plain.bin")
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(w.plain, data, 0o600); err != nil {
		t.Fatal(err)
	}
	w.backup = filepath.Join(tmp, "full.cmek")
	cliOK(t, tmp, "backup", "encrypt", "--keyring", w.dir, w.plain, w.backup)
	return w
}

// interruptStream starts cmekctl ARGS with stdin a pipe, feeds it the first
// feed bytes of src and keeps the pipe open (the producer is still
// "running"), waits until the output's temporary file exists (or, for
// stdout, until output comes), sends sig, and returns the exit code, stdout
// and stderr.
func interruptStream(t *testing.T, tmp, src string, feed int, out string, sig syscall.Signal, args ...string) (int, []byte, string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	c := cliCmd(t, tmp, args...)
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	go func() { _, _ = stdin.Write(data[:feed]) }()
	started := func() bool {
		if out == "" {
			return stdout.Len() > 0
		}
		m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*"))
		return len(m) > 0
	}
	deadline := time.Now().Add(20 * time.Second)
	for !started() {
		if time.Now().After(deadline) {
			_ = c.Process.Kill()
			_ = c.Wait()
			t.Fatalf("cmekctl %s never started streaming: %s", strings.Join(args, " "), stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let it read what was fed, and block for more
	if err := c.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	select {
	case err = <-exited:
	case <-time.After(10 * time.Second):
		_ = c.Process.Kill()
		<-exited
		t.Fatalf("cmekctl %s still runs 10 s after %v, waiting for input: %s", strings.Join(args, " "), sig, stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.Bytes(), stderr.String()
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("cmekctl %s was killed by %v: it did not handle it", strings.Join(args, " "), ws.Signal())
		}
		return ee.ExitCode(), stdout.Bytes(), stderr.String()
	}
	t.Fatal(err)
	return 0, nil, ""
}

func TestSignalStopsStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: not in -short")
	}
	w := newSignalWorld(t)
	sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}
	cases := []struct {
		name string
		src  string
		args []string
	}{
		{"backup encrypt", w.plain, []string{"backup", "encrypt", "--keyring", w.dir, "-"}},
		{"data encrypt", w.plain, []string{"data", "encrypt", "--keyring", w.dir, "-"}},
		{"backup decrypt", w.backup, []string{"backup", "decrypt", "--keyring", w.dir, "-"}},
		{"data decrypt", w.plain, nil}, // filled below
	}
	sealed := filepath.Join(w.tmp, "data.sealed")
	cliOK(t, w.tmp, "data", "encrypt", "--keyring", w.dir, w.plain, sealed)
	cases[3] = struct {
		name string
		src  string
		args []string
	}{"data decrypt", sealed, []string{"data", "decrypt", "--keyring", w.dir, "-"}}
	for i, tc := range cases {
		sig := sigs[i%len(sigs)]
		t.Run(fmt.Sprintf("%s/%v/file", tc.name, sig), func(t *testing.T) {
			out := filepath.Join(w.tmp, fmt.Sprintf("out-%d", i))
			if err := os.WriteFile(out, []byte("the previous file\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := interruptStream(t, w.tmp, tc.src, 300_000, out, sig, append(tc.args, out)...)
			if want := 128 + int(sig); code != want {
				t.Errorf("exit %d, want %d: %s", code, want, stderr)
			}
			want := "nothing was changed"
			if tc.name == "backup encrypt" {
				// A full backup's new key is recorded before the stream.
				want = "no backup was written"
			}
			if !strings.Contains(stderr, "interrupted by "+signalName(sig)) || !strings.Contains(stderr, want) {
				t.Errorf("stderr does not say it was interrupted and nothing changed: %s", stderr)
			}
			if b, _ := os.ReadFile(out); string(b) != "the previous file\n" {
				t.Errorf("the previous OUT file changed: %d bytes", len(b))
			}
			if m, _ := filepath.Glob(filepath.Join(w.tmp, ".out-*")); len(m) > 0 {
				t.Errorf("temporary files left: %v", m)
			}
		})
	}
	// To stdout: what came out before the signal has no final chunk, so it
	// does not decrypt as a whole backup.
	for _, sig := range sigs {
		t.Run("backup encrypt/"+sig.String()+"/stdout", func(t *testing.T) {
			code, got, stderr := interruptStream(t, w.tmp, w.plain, 300_000, "", sig, "backup", "encrypt", "--keyring", w.dir, "--parallel", "1")
			if want := 128 + int(sig); code != want {
				t.Errorf("exit %d, want %d: %s", code, want, stderr)
			}
			part := filepath.Join(w.tmp, "part-"+sig.String())
			if err := os.WriteFile(part, got, 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr = cliRun(t, w.tmp, "backup", "decrypt", "--keyring", w.dir, part, filepath.Join(w.tmp, "part.out"))
			if code == 0 {
				t.Errorf("the %d bytes written before %v decrypt as a whole backup: the final chunk was written", len(got), sig)
			} else if !strings.Contains(stderr, "truncated") {
				t.Errorf("decrypting the interrupted output: exit %d, want a truncation: %s", code, stderr)
			}
		})
	}
}

func signalName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "SIGHUP"}[s]
}

// syncBuffer is a bytes.Buffer safe for the process's copier goroutine and
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

var _ io.Writer = (*syncBuffer)(nil)

// TestSignalDuringKMSCall: Ctrl-C while enable waits for a KMS that does not
// answer is an interrupt (130, "nothing was changed"), not "the KMS did not
// answer" (23).
func TestSignalDuringKMSCall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: not in -short")
	}
	tmp := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	uri := "vault-transit://" + ln.Addr().String() + "/transit/keys/k1"
	dir := filepath.Join(tmp, "n1")
	c := cliCmd(t, tmp, "enable", "--cluster-id", "c1", "--region", "r1", "--cmek", uri, "--keyring", dir, "--node", "n1")
	c.Env = append(c.Env, "VAULT_TOKEN=not-a-secret")
	var stderr syncBuffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(20 * time.Second):
		_ = c.Process.Kill()
		_ = c.Wait()
		t.Fatalf("enable never called the KMS: %s", stderr.String())
	}
	if err := c.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = c.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("enable interrupted during its KMS call: %v, want exit 130: %s", err, stderr.String())
	}
	if s := stderr.String(); !strings.Contains(s, "interrupted by SIGINT") || !strings.Contains(s, "nothing was changed") || strings.Contains(s, "did not answer") {
		t.Errorf("stderr: %s", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "keyring.json")); err == nil {
		t.Errorf("an interrupted enable wrote a keyring")
	}
}
