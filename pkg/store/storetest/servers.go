// Package storetest is test support for package store: the store servers the
// tests run on 127.0.0.1 (S3 on gofakes3 and versitygw, GCS on
// fake-gcs-server, etcd as the real server) and the one contract suite every
// backend passes. Only tests import it.
package storetest

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cmekctl/cmekctl/internal/fipstest"
)

// S3Server is gofakes3 on 127.0.0.1 with one bucket.
type S3Server struct {
	URL    string // http://127.0.0.1:PORT
	Bucket string
}

// StartS3 starts gofakes3 in process and creates bucket. A client needs
// SetAWSTestEnv (or the same variables in a subprocess's environment).
func StartS3(t testing.TB, bucket string) *S3Server {
	t.Helper()
	backend := s3mem.New()
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	// The emulator's own hashing (MD5 ETags) is the store's, outside
	// cmekctl's FIPS mode; the client stays enforced (internal/fipstest).
	srv := httptest.NewServer(fipstest.Handler(faker.Server()))
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatalf("gofakes3: create bucket: %v", err)
	}
	return &S3Server{URL: srv.URL, Bucket: bucket}
}

// Made-up credentials for the local S3 servers; no real account.
const (
	testAccessKey = "AKIDTESTSTORE"
	testSecretKey = "test-secret-not-real"
)

// SetAWSTestEnv sets test-only AWS credentials (no real account) and
// isolates the test from the user's AWS configuration.
func SetAWSTestEnv(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// URI is the store URI of prefix in the server's bucket, through endpoint
// (the server's URL, or a proxy's in front of it).
func (s *S3Server) URI(endpoint, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?AUTH=implicit&AWS_REGION=us-east-1&AWS_ENDPOINT=%s", s.Bucket, prefix, endpoint)
}

// GCSServer is fake-gcs-server on 127.0.0.1 with one bucket.
type GCSServer struct {
	URL    string // http://127.0.0.1:PORT
	Bucket string
	Server *fakestorage.Server
}

// StartGCS starts fake-gcs-server in process over plain HTTP on loopback.
func StartGCS(t testing.TB, bucket string) *GCSServer {
	t.Helper()
	// Served through httptest so that the emulator's own hashing (MD5 of
	// objects) runs outside cmekctl's FIPS mode (internal/fipstest).
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", NoListener: true, Writer: nil})
	if err != nil {
		t.Fatalf("fake-gcs-server: %v", err)
	}
	hs := httptest.NewServer(fipstest.Handler(srv.HTTPHandler()))
	t.Cleanup(func() { hs.Close(); srv.Stop() })
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return &GCSServer{URL: hs.URL, Bucket: bucket, Server: srv}
}

// SetEmulator points the GCS client at host (the server's, or a proxy's)
// through STORAGE_EMULATOR_HOST, as a user of the emulator does.
func SetEmulator(t testing.TB, url string) {
	t.Helper()
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(url, "http://"))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
}

// EtcdBinary is the etcd server: $CMEKCTL_ETCD, else etcd on $PATH (Debian's
// etcd-server package, which .ci/run installs). Absent, the test fails: a
// missing server is never a silent skip.
func EtcdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CMEKCTL_ETCD"); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd server not found: install Debian's etcd-server (apt-get install etcd-server; .ci/run does) or set CMEKCTL_ETCD")
	}
	return p
}

// StartEtcd runs a one-member etcd on 127.0.0.1 until the test ends and
// returns its client endpoint, HOST:PORT.
func StartEtcd(t testing.TB) string {
	t.Helper()
	bin := EtcdBinary(t)
	client, peer := freePort(t), freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"--name", "s1",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client,
		"--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer,
		"--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "s1=http://"+peer,
		"--logger", "zap", "--log-outputs", "stderr",
	)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = fipstest.ServerEnv(os.Environ()) // the store's own crypto: not in cmekctl's FIPS mode
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "/health")
		cancel()
		if err == nil {
			return client
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("etcd did not start on %s: %v\n%s", client, err, tail(log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// VersityBinary is versitygw (github.com/versity/versitygw v1.8.0 or later,
// a real S3 gateway with SigV4): $CMEKCTL_VERSITYGW, else versitygw on
// $PATH (.ci/run builds it). Absent, the test fails.
func VersityBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CMEKCTL_VERSITYGW"); p != "" {
		return p
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		t.Fatalf("versitygw not found: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 (.ci/run does) or set CMEKCTL_VERSITYGW")
	}
	return p
}

// StartVersity runs versitygw's posix backend on 127.0.0.1 with bucket
// created, until the test ends, with the credentials of SetAWSTestEnv.
func StartVersity(t testing.TB, bucket string) *S3Server {
	t.Helper()
	bin := VersityBinary(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--access", testAccessKey, "--secret", testSecretKey, "--port", addr, "posix", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = fipstest.ServerEnv(os.Environ()) // the store's own crypto (MD5 ETags): not in cmekctl's FIPS mode
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return &S3Server{URL: "http://" + addr, Bucket: bucket}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw did not start on %s: %v\n%s", addr, err, tail(log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
