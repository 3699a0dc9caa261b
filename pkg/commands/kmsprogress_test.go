package commands

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

// flakyKey is a loopback KMS that answers slowly and throttles the first two
// attempts of each unwrap (retried by provider.Retry, as the Vault and GCP
// adapters are; the AWS adapter's retryer reports attempts the same way).
type flakyKey struct {
	provider.Key
	delay time.Duration
}

func (k *flakyKey) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) (pt []byte, err error) {
	n := 0
	_, err = provider.Retry(ctx, provider.RetryPolicy{Attempts: 5, Base: time.Millisecond}, func(ctx context.Context) error {
		if n++; n < 3 {
			return provider.Errorf("flaky-kms", "unwrap", provider.Transient, "ThrottlingException", "slow down")
		}
		pt, err = k.Key.Unwrap(ctx, w, aad)
		return err
	})
	return pt, err
}

func (k *flakyKey) Describe(ctx context.Context) (provider.KeyState, error) {
	time.Sleep(k.delay)
	return k.Key.Describe(ctx)
}

// TestKMSProgress: a retried or slow KMS call says what it is doing on a
// terminal's stderr, and nothing is written when stderr is piped or with
// -o json.
func TestKMSProgress(t *testing.T) {
	defer func(d time.Duration) { kmsSlow = d }(kmsSlow)
	kmsSlow = 20 * time.Millisecond
	reg := registry.Default()
	open := reg["file-kms"]
	armed := false // the KMS is flaky once the cluster is set up
	reg["file-kms"] = func(u *url.URL) (provider.Key, error) {
		k, err := open(u)
		if err != nil || !armed {
			return k, err
		}
		return &flakyKey{Key: k, delay: 200 * time.Millisecond}, nil
	}
	state := t.TempDir()
	run := func(tty bool, args ...string) string {
		t.Helper()
		ios, _, _, errOut := iostreams.Test()
		ios.SetTTY(false, false, tty)
		f := &Factory{IO: ios, Registry: func() provider.Registry { return reg }, Now: time.Now, Getenv: func(k string) string {
			if k == "XDG_STATE_HOME" {
				return state
			}
			return ""
		}}
		if code := Main(f, args); code != 0 {
			t.Fatalf("cmekctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return errOut.String()
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "kms"), 0o700); err != nil {
		t.Fatal(err)
	}
	uri := "file-kms://" + filepath.Join(dir, "kms", "cmek")
	kr := filepath.Join(dir, "n1")
	run(false, "kms", "create", uri)
	run(false, "enable", "--cluster-id", "c1", "--region", "us-east1", "--cmek", uri, "--keyring", kr, "--node", "n1")
	armed = true

	got := run(true, "rotate", "data-key", "--keyring", kr)
	for _, want := range []string{
		"unwrapping store key of us-east1 via file-kms (attempt 2/5)\n",
		"unwrapping store key of us-east1 via file-kms (attempt 3/5)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal: no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "attempt 1/") || strings.Contains(got, "attempt 4/") {
		t.Errorf("terminal: a line for an attempt that was not a retry:\n%s", got)
	}
	if got := run(true, "kms", "describe", uri); !strings.Contains(got, "describing the CMEK key via file-kms ...\n") {
		t.Errorf("slow describe: no progress line in:\n%s", got)
	}
	if got := run(false, "rotate", "data-key", "--keyring", kr); strings.Contains(got, "unwrapping") {
		t.Errorf("piped stderr: progress written:\n%s", got)
	}
	if got := run(true, "rotate", "data-key", "--keyring", kr, "-o", "json"); strings.Contains(got, "unwrapping") {
		t.Errorf("-o json: progress written:\n%s", got)
	}
	if got := run(false, "kms", "describe", uri); strings.Contains(got, "describing") {
		t.Errorf("piped stderr: progress written:\n%s", got)
	}
}
