// Package vaulttest is test support for code that uses Vault transit keys:
// it starts test/vaultserver, which runs Vault's own transit secrets engine
// (github.com/hashicorp/vault v1.14.8, MPL-2.0) behind Vault's HTTP API on
// 127.0.0.1, and drives its fault hooks (see test/vaultserver/README.md).
//
// The server binary is $CMEKCTL_VAULTSERVER, or is built from
// test/vaultserver (a separate module) once per test binary. A server that
// cannot be built or started fails the test; it never skips.
package vaulttest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/internal/fipstest"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// HowToBuild is the hint printed when there is no server binary.
const HowToBuild = "build it with: (cd test/vaultserver && go build -o /tmp/vaultserver .) && export CMEKCTL_VAULTSERVER=/tmp/vaultserver"

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Binary returns the vaultserver binary: $CMEKCTL_VAULTSERVER, or one built
// from the repository's test/vaultserver into the user's cache directory
// (rebuilt once per test binary; go's build cache makes that quick).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CMEKCTL_VAULTSERVER"); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			t.Fatalf("vaulttest: CMEKCTL_VAULTSERVER=%s is not a vaultserver binary (%v); %s", p, err, HowToBuild)
		}
		return p
	}
	buildOnce.Do(func() {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			buildErr = fmt.Errorf("cannot locate the vaulttest source")
			return
		}
		src := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "test", "vaultserver")
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		dir = filepath.Join(dir, "cmekctl-vaulttest")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			buildErr = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go is not on PATH: %v", err)
			return
		}
		buildBin = filepath.Join(dir, "vaultserver")
		cmd := exec.Command(goBin, "build", "-o", buildBin, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build in %s: %v\n%s", src, err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatalf("vaulttest: no Vault transit test server: CMEKCTL_VAULTSERVER is unset and building it failed: %v\n%s", buildErr, HowToBuild)
	}
	return buildBin
}

// Server is a running test/vaultserver.
type Server struct {
	Addr  string // http://127.0.0.1:PORT
	Token string // the one token it accepts

	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	once  sync.Once
}

// RandHex returns n random bytes in hex, for key names and tokens.
func RandHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Start starts a server until the test ends; extra are more flags. The
// token goes to the server on stdin, off argv and the environment.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{Token: "hvs." + RandHex(12), t: t, done: make(chan struct{})}
	args := append([]string{"-addr", "127.0.0.1:0", "-print-addr", "-exit-on-eof", "-token-stdin"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = fipstest.ServerEnv(os.Environ()) // Vault's own crypto: not in cmekctl's FIPS mode
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = stdin
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("vaulttest: start %s: %v; %s", bin, err, HowToBuild)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	if _, err := io.WriteString(stdin, s.Token+"\n"); err != nil {
		t.Fatalf("vaulttest: pass the token to vaultserver: %v", err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case addr, ok := <-line:
		if !ok || !strings.HasPrefix(addr, "http://127.0.0.1:") {
			t.Fatalf("vaulttest: vaultserver printed %q, not its address; stderr: %s", addr, stderr.String())
		}
		s.Addr = addr
	case <-time.After(30 * time.Second):
		t.Fatalf("vaulttest: vaultserver did not print its address in 30s; stderr: %s", stderr.String())
	}
	return s
}

// Stop stops the server (it exits when its stdin closes): its port refuses
// connections from then on. It is idempotent.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.stdin.Close()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// Host is the server's 127.0.0.1:PORT.
func (s *Server) Host() string { return strings.TrimPrefix(s.Addr, "http://") }

// URI is the vault-transit URI of key name on the transit mount.
func (s *Server) URI(name string) string {
	return "vault-transit://" + s.Host() + "/transit/keys/" + name + "?tls=false"
}

// Client returns an api client for the server with the server's token and
// the client's own retries off (provider.Retry is the only retrier).
func (s *Server) Client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vaulttest: client: %w", err)
	}
	c.SetToken(s.Token)
	c.ClearNamespace()
	return c, nil
}

// Opener returns an opener of vault-transit URIs on this server that
// reaches each key with the server's token, as vaulttransit.Open does with
// VAULT_TOKEN, without touching the environment, and retries TRANSIENT
// errors with provider.DefaultRetry, as Open does. URIs of other hosts are
// refused.
func (s *Server) Opener() provider.Opener { return s.OpenerWithRetry(provider.DefaultRetry) }

// OpenerWithRetry is Opener with another retry policy (tests of retries
// running out keep the attempts and shorten the backoff).
func (s *Server) OpenerWithRetry(p provider.RetryPolicy) provider.Opener {
	return func(u *url.URL) (provider.Key, error) {
		if u.Host != s.Host() {
			return nil, fmt.Errorf("vaulttest: %s is not a key of the server at %s", u.Redacted(), s.Host())
		}
		path := strings.Split(strings.Trim(u.Path, "/"), "/")
		n := len(path)
		if n < 3 || path[n-2] != "keys" || u.Query().Get("tls") != "false" {
			return nil, fmt.Errorf("vaulttest: %s is not vault-transit://HOST/<mount>/keys/<name>?tls=false", u.Redacted())
		}
		c, err := s.Client()
		if err != nil {
			return nil, err
		}
		return vaulttransit.New(c, strings.Join(path[:n-2], "/"), path[n-1]).WithRetry(p), nil
	}
}

func (s *Server) admin(method, path string, body any) ([]byte, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.Addr+"/_admin/"+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("vaulttest: admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("vaulttest: admin %s %s: %s %s", method, path, resp.Status, out)
	}
	return out, nil
}

// Fault makes the next count requests (0: every one until ClearFaults)
// whose path under the mount starts with path answer status with Vault's
// error message.
func (s *Server) Fault(path string, status, count int, message string) error {
	_, err := s.admin("POST", "fault", map[string]any{"path": path, "status": status, "count": count, "message": message})
	return err
}

// ClearFaults clears every fault.
func (s *Server) ClearFaults() error {
	_, err := s.admin("DELETE", "fault", nil)
	return err
}

// Deny makes requests under path answer 403 permission denied, as a Vault
// policy denying transit/<path> would.
func (s *Server) Deny(path string) error {
	_, err := s.admin("POST", "deny", map[string]any{"path": path})
	return err
}

// ClearDenies clears every deny.
func (s *Server) ClearDenies() error {
	_, err := s.admin("DELETE", "deny", nil)
	return err
}

// Counts returns the requests the server saw, per "METHOD path".
func (s *Server) Counts() (map[string]int, error) {
	b, err := s.admin("GET", "counts", nil)
	if err != nil {
		return nil, err
	}
	var m map[string]int
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("vaulttest: counts: %w", err)
	}
	return m, nil
}

// ResetCounts zeroes the request counts.
func (s *Server) ResetCounts() error {
	_, err := s.admin("DELETE", "counts", nil)
	return err
}
