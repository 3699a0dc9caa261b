//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair (/dev/ptmx and its /dev/pts/N).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestKMSProgressOnTerminal: a KMS call that hangs (a loopback KMS that
// accepts and never answers) says what it waits for on stderr when stderr is
// a real terminal, and nothing when stderr is a pipe.
func TestKMSProgressOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: not in -short")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	uri := "vault-transit://" + ln.Addr().String() + "/transit/keys/k1"
	want := regexp.MustCompile(`(wrapping store key of r1|describing the CMEK key) via vault-transit( \.\.\.| \(attempt 1/\d+\))\r?\n`)

	run := func(t *testing.T, terminal bool) string {
		tmp := t.TempDir()
		c := cliCmd(t, tmp, "enable", "--cluster-id", "c1", "--region", "r1", "--cmek", uri, "--keyring", filepath.Join(tmp, "n1"), "--node", "n1")
		c.Env = append(c.Env, "VAULT_TOKEN=not-a-secret")
		var out bytes.Buffer
		var outMu sync.Mutex
		read := func(r *os.File) {
			buf := make([]byte, 4096)
			for {
				n, err := r.Read(buf)
				outMu.Lock()
				out.Write(buf[:n])
				outMu.Unlock()
				if err != nil {
					return
				}
			}
		}
		if terminal {
			m, s := openPTY(t)
			defer m.Close()
			c.Stderr = s
			go read(m)
			defer s.Close()
		} else {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			c.Stderr = w
			go read(r)
			defer w.Close()
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// The line comes 1 s into the call: a terminal waits for it (under
		// load, longer); a pipe waits past it.
		wait := 2 * time.Second
		if terminal {
			wait = 15 * time.Second
		}
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			outMu.Lock()
			done := want.Match(out.Bytes())
			outMu.Unlock()
			if done {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = c.Process.Signal(syscall.SIGINT)
		_ = c.Wait()
		time.Sleep(100 * time.Millisecond)
		outMu.Lock()
		defer outMu.Unlock()
		return out.String()
	}
	if got := run(t, true); !want.MatchString(got) {
		t.Errorf("stderr a terminal: no progress line in %q", got)
	}
	if got := run(t, false); want.MatchString(got) {
		t.Errorf("stderr a pipe: progress written: %q", got)
	}
}

// TestTableOnTerminal: with stdout a terminal, status's tables fit its
// width: cut to fit on 120 columns, as records (too many columns) on 70;
// times with their zone; piped, TSV.
func TestTableOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: not in -short")
	}
	tmp := t.TempDir()
	kr := rssKeyring(t, tmp)
	for _, cols := range []int{120, 70} {
		out := statusOnTerminal(t, tmp, kr, cols)
		if !regexp.MustCompile(`(?m)(│ REGION +│|^REGION +r1)`).MatchString(out) || !regexp.MustCompile(` \d{4}-\d\d-\d\d \d\d:\d\d UTC`).MatchString(out) {
			t.Fatalf("%d columns: not a table or records with zoned times: %q", cols, out)
		}
		for _, l := range regexp.MustCompile(`\r?\n`).Split(out, -1) {
			if n := len([]rune(l)); n > cols {
				t.Errorf("line of %d columns on a %d-column terminal: %q", n, cols, l)
			}
		}
	}
	code, piped, _ := cliRun(t, tmp, "status", "--no-kms", "--keyring", kr)
	if code != 0 || !regexp.MustCompile(`(?m)^region\tnode\t`).MatchString(piped) {
		t.Fatalf("piped: exit %d: %q", code, piped)
	}
}

func statusOnTerminal(t *testing.T, tmp, kr string, cols int) string {
	t.Helper()
	m, s := openPTY(t)
	defer m.Close()
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: 24}); err != nil {
		t.Fatal(err)
	}
	c := cliCmd(t, tmp, "status", "--no-kms", "--keyring", kr)
	c.Env = append(c.Env, "TZ=UTC")
	c.Stdout = s
	var errOut bytes.Buffer
	c.Stderr = &errOut
	done := make(chan []byte)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				done <- b.Bytes()
				return
			}
		}
	}()
	if err := c.Run(); err != nil {
		t.Fatalf("status: %v: %s", err, errOut.String())
	}
	s.Close()
	var got []byte
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no output from the terminal")
	}
	return string(got)
}
