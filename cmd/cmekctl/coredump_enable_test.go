package main

// Core dumps are off for every verb from its first instruction (issue 15):
// `cmekctl enable` made a store key with core dumps allowed, so a crash
// while it waited for the KMS dumped the new key.

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCoreDumpsOffForEnable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	inheritableCoreLimit(t)
	// A KMS on loopback that accepts and never answers: enable holds its
	// new store key while it waits for the wrap.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	tmp := t.TempDir()
	c := cliCmd(t, tmp, "enable", "--cluster-id", "c1", "--region", "r1", "--node", "n1",
		"--cmek", "vault-transit://"+ln.Addr().String()+"/transit/keys/k?tls=false", "--keyring", filepath.Join(tmp, "kr"))
	c.Env = append(c.Env, "VAULT_TOKEN=test-token")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("cmekctl enable never called the KMS")
	}
	b, err := os.ReadFile(filepath.Join("/proc", itoa(c.Process.Pid), "limits"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "Max core file size") {
			continue
		}
		if f := strings.Fields(strings.TrimPrefix(l, "Max core file size")); len(f) < 2 || f[0] != "0" || f[1] != "0" {
			t.Errorf("cmekctl enable waited on the KMS with core dumps allowed: %q", l)
		}
		return
	}
	t.Fatal("no core-file limit in /proc/PID/limits")
}
