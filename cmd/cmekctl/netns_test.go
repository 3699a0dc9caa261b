//go:build linux

package main

// Hosts in network namespaces of their own: the operator and each node run
// cmekctl inside their own Linux network namespace (ip netns), which has
// only a loopback interface. The store (gofakes3, in this test process on
// the machine's 127.0.0.1) is reachable from a namespace only through a
// relay whose listening socket this test opens inside that namespace, on
// the namespace's own 127.0.0.1:PORT: every host uses the same store URI and
// the same file KMS, and nothing else. A host that tries the store's real
// address (the machine's loopback) reaches nothing.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

// netnsHost is one host: a network namespace and its own home, cache and
// --out under dir.
type netnsHost struct {
	ns, dir string
}

// newNetns creates network namespace name with its loopback up, removed
// when the test ends. Without root (CAP_SYS_ADMIN) the test is skipped with
// the reason; any other failure fails it.
func newNetns(t *testing.T, ip, name string) {
	t.Helper()
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		if os.Geteuid() != 0 || strings.Contains(string(out), "Operation not permitted") {
			t.Skipf("ip netns add needs CAP_SYS_ADMIN (euid %d): %s", os.Geteuid(), out)
		}
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "del", name).Run() })
	if out, err := exec.Command(ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
}

// listenInNetns opens a TCP listener on 127.0.0.1:port inside network
// namespace name: the socket is made on a thread moved into the namespace
// (setns), which ends with its goroutine; accepting and relaying run on the
// process's other threads, in the machine's namespace.
func listenInNetns(name string, port int) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		f, err := os.Open("/run/netns/" + name)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", name, err)}
			return
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// relay forwards every connection ln accepts to target (in the machine's
// namespace) until ln is closed.
func relay(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer up.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.(*net.TCPConn).CloseWrite() }()
			wg.Wait()
		}()
	}
}

func TestNetnsHosts(t *testing.T) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("ip (iproute2) not found: the hosts run in network namespaces made by ip netns: %v", err)
	}
	tmp := t.TempDir()
	srv := storetest.StartS3(t, "keyrings")
	target := strings.TrimPrefix(srv.URL, "http://")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec runs PATH/cmekctl: the test binary, which runs
	// cmekctl when called by that name.
	bin := filepath.Join(tmp, "bin", "cmekctl")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]*netnsHost{}
	port := 0
	for _, h := range []string{"op", "h1", "h2"} {
		name := fmt.Sprintf("cmekctl-%d-%s", os.Getpid(), h)
		newNetns(t, ip, name)
		ln, err := listenInNetns(name, port)
		if err != nil {
			t.Fatalf("listen in %s: %v", name, err)
		}
		t.Cleanup(func() { ln.Close() })
		port = ln.Addr().(*net.TCPAddr).Port // the same port in every namespace
		go relay(ln, target)
		hosts[h] = &netnsHost{ns: name, dir: filepath.Join(tmp, h)}
	}
	uri := srv.URI(fmt.Sprintf("http://127.0.0.1:%d", port), "prod")
	kms := "file-kms://" + filepath.Join(tmp, "kms", "k1")
	run := func(h string, want int, args ...string) string {
		t.Helper()
		host := hosts[h]
		c := exec.Command(ip, append([]string{"netns", "exec", host.ns, bin}, args...)...)
		c.Env = append(cliEnv(host.dir), "AWS_ACCESS_KEY_ID=AKIDTESTSTORE", "AWS_SECRET_ACCESS_KEY=test-secret-not-real",
			"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
			"AWS_CONFIG_FILE="+filepath.Join(tmp, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(tmp, "none"))
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: cmekctl %v: %v", h, args, err)
		}
		if code != want {
			t.Fatalf("%s: cmekctl %s: exit %d, want %d:\n%s", h, strings.Join(args, " "), code, want, out.String())
		}
		return out.String()
	}
	node := func(n string) []string {
		return []string{"--store", uri, "--cluster-id", "c1", "--region", "r1", "--node", n}
	}
	unlock := func(h, n string, want int) string {
		d := hosts[h].dir
		return run(h, want, append(append([]string{"unlock"}, node(n)...), "--keyring", filepath.Join(d, "cache"),
			"--out", filepath.Join(d, "out"), "--allow-disk", "--store-path", "/mnt/d1")...)
	}
	cache := func(h string) []string { return []string{"--keyring", filepath.Join(hosts[h].dir, "cache")} }

	run("op", 0, "kms", "create", kms)
	run("op", 0, "enable", "--store", uri, "--cluster-id", "c1", "--region", "r1", "--cmek", kms, "--node", "n1", "--node", "n2")
	unlock("h1", "n1", 0)
	run("h1", 0, append(append([]string{"node", "started"}, node("n1")...), cache("h1")...)...)
	unlock("h2", "n2", 0)
	for _, h := range []string{"h1", "h2"} {
		if _, err := os.Stat(filepath.Join(hosts[h].dir, "out", "active.key")); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
	}
	// The machine's loopback, where the store really listens, is out of
	// a host's reach: the store is unavailable there (exit 70).
	direct := srv.URI(srv.URL, "prod")
	if out := run("h1", 70, "status", "--store", direct, "--cluster-id", "c1"); !strings.Contains(out, "unavailable") {
		t.Fatalf("the store's real address from h1's namespace: %s", out)
	}

	// A rotation by the operator; host 1 picks it up at its restart, host 2
	// misses its restart and status says so.
	run("op", 0, "rotate", "store-key", "--store", uri, "--cluster-id", "c1")
	if out := unlock("h1", "n1", 0); !strings.Contains(out, "old-key=") {
		t.Fatalf("h1's restart after the rotation: %s", out)
	}
	run("h1", 0, append(append([]string{"node", "started"}, node("n1")...), cache("h1")...)...)
	if out := run("op", 0, "status", "--store", uri, "--cluster-id", "c1", "-o", "json"); strings.Count(out, "restart to pick it up") != 1 {
		t.Fatalf("status after h1's restart, want one node to restart: %s", out)
	}

	// Revocation: nobody has acknowledged (exit 10); host 1's agent purges
	// and acknowledges; host 2's next start is refused (exit 8) and purges;
	// then every node has acknowledged.
	run("op", 10, "revoke", "--store", uri, "--cluster-id", "c1", "--yes")
	if out := run("h1", 0, append(append([]string{"node", "agent"}, node("n1")...), append(cache("h1"), "--once", "-o", "json")...)...); !strings.Contains(out, `"acknowledged": true`) {
		t.Fatalf("h1's agent: %s", out)
	}
	unlock("h2", "n2", 8)
	for _, h := range []string{"h1", "h2"} {
		if _, err := os.Stat(filepath.Join(hosts[h].dir, "out", "active.key")); !os.IsNotExist(err) {
			t.Fatalf("%s: the key file is still there after the revocation: %v", h, err)
		}
	}
	if out := run("op", 0, "revoke", "--store", uri, "--cluster-id", "c1", "--yes", "--wait-acks", "5s"); strings.Count(out, "purge acknowledged") != 2 {
		t.Fatalf("revoke after both purged: %s", out)
	}
}
