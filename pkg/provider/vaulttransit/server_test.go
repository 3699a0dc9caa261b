package vaulttransit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/internal/fipstest"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// The tests run Vault's own transit backend (github.com/hashicorp/vault
// v1.14.8, MPL-2.0) in the test/vaultserver binary, on 127.0.0.1, and drive
// it through the official api client. The binary is $CMEKCTL_VAULTSERVER
// (CI builds it), or is built here from test/vaultserver. If neither works
// the tests fail: a missing server is never a skip.

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// origHome is HOME before any test changes it (cleanVaultEnv does), so that
// go build finds the usual build and module caches.
var origHome = os.Getenv("HOME")

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

const howToBuild = "build it with: (cd test/vaultserver && go build -o /tmp/vaultserver .) && export CMEKCTL_VAULTSERVER=/tmp/vaultserver"

func serverBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CMEKCTL_VAULTSERVER"); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			t.Fatalf("CMEKCTL_VAULTSERVER=%s is not a vaultserver binary (%v); %s", p, err, howToBuild)
		}
		return p
	}
	buildOnce.Do(func() {
		src, err := filepath.Abs(filepath.Join("..", "..", "..", "test", "vaultserver"))
		if err != nil {
			buildErr = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go is not on PATH: %v", err)
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "cmekctl-vaultserver-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "vaultserver")
		cmd := exec.Command(goBin, "build", "-o", buildBin, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "HOME="+origHome)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build in %s: %v\n%s", src, err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatalf("no Vault transit test server: CMEKCTL_VAULTSERVER is unset and building it failed: %v\n%s", buildErr, howToBuild)
	}
	return buildBin
}

// vaultServer is a running test/vaultserver.
type vaultServer struct {
	Addr  string // http://127.0.0.1:PORT
	Token string
	t     *testing.T
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startServer starts a vaultserver for the test; extra are more flags.
func startServer(t *testing.T, extra ...string) *vaultServer {
	t.Helper()
	bin := serverBinary(t)
	token := "hvs." + randHex(t, 12)
	args := append([]string{"-addr", "127.0.0.1:0", "-print-addr", "-exit-on-eof", "-token-stdin"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = fipstest.ServerEnv(os.Environ()) // Vault's own crypto: not in cmekctl's FIPS mode
	stdin, err := cmd.StdinPipe()              // the token goes here, off argv and the environment
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v; %s", bin, err, howToBuild)
	}
	if _, err := io.WriteString(stdin, token+"\n"); err != nil {
		t.Fatalf("pass the token to vaultserver: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case addr, ok := <-line:
		if !ok || !strings.HasPrefix(addr, "http://127.0.0.1:") {
			t.Fatalf("vaultserver printed %q, not its address; stderr: %s", addr, stderr.String())
		}
		return &vaultServer{Addr: addr, Token: token, t: t}
	case <-time.After(30 * time.Second):
		t.Fatalf("vaultserver did not print its address in 30s; stderr: %s", stderr.String())
	}
	return nil
}

// Client returns an api client for the server, with the client's own
// retries off so that provider.Retry is the only retrier.
func (s *vaultServer) Client(t *testing.T) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 5 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(s.Token)
	c.ClearNamespace()
	return c
}

// admin calls a fault hook of the server.
func (s *vaultServer) admin(t *testing.T, method, path string, body any) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.Addr+"/_admin/"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("admin %s %s: %s %s", method, path, resp.Status, out)
	}
	return out
}

// Fault makes the next count requests (0: all, until cleared) whose path
// under the mount starts with path answer status with Vault's message.
func (s *vaultServer) Fault(t *testing.T, path string, status, count int, message string) {
	s.admin(t, "POST", "fault", map[string]any{"path": path, "status": status, "count": count, "message": message})
	t.Cleanup(func() { s.admin(t, "DELETE", "fault", nil) })
}

// Hang makes requests under path wait until the client gives up.
func (s *vaultServer) Hang(t *testing.T, path string) {
	s.admin(t, "POST", "fault", map[string]any{"path": path, "hang": true})
	t.Cleanup(func() { s.admin(t, "DELETE", "fault", nil) })
}

// Deny makes requests under path answer 403 permission denied, as a Vault
// policy with a deny on transit/<path> would.
func (s *vaultServer) Deny(t *testing.T, path string) {
	s.admin(t, "POST", "deny", map[string]any{"path": path})
	t.Cleanup(func() { s.admin(t, "DELETE", "deny", nil) })
}

// Counts returns the requests the server saw, per "METHOD path".
func (s *vaultServer) Counts(t *testing.T) map[string]int {
	var m map[string]int
	if err := json.Unmarshal(s.admin(t, "GET", "counts", nil), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (s *vaultServer) ResetCounts(t *testing.T) { s.admin(t, "DELETE", "counts", nil) }

// fastRetry keeps TRANSIENT rows quick: 3 attempts, millisecond backoff.
var fastRetry = provider.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond, Budget: 10 * time.Second}

// newKey creates a fresh aes256-gcm96 key on s.
func newKey(t *testing.T, s *vaultServer) *vaulttransit.Key {
	t.Helper()
	k := vaulttransit.New(s.Client(t), "transit", "k-"+randHex(t, 6)).WithRetry(fastRetry)
	if _, err := k.Create(ctxT(t)); err != nil {
		t.Fatalf("create %s: %v", k.URI(), err)
	}
	return k
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// closedAddr returns a 127.0.0.1 address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// logical writes to Vault directly, for test setup the provider has no verb for.
func logical(t *testing.T, c *api.Client, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := c.Logical().WriteWithContext(ctxT(t), path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}
