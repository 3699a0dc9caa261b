package commands

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

// faultKey wraps a real key; while a class is armed, every KMS call fails
// with a provider error of that class, as a KMS that is unreachable
// (TRANSIENT), refuses the key (REVOKED), lost it (DESTROYED) or cannot do
// what is asked (MISUSE) would answer. It hides the key under it (no
// Inner), so that the verbs see it as the provider.
type faultKey struct {
	k     provider.Key
	armed func() provider.Class
}

var (
	_ provider.Key   = (*faultKey)(nil)
	_ provider.Admin = (*faultKey)(nil)
)

func (f *faultKey) fail(op string) error {
	c := f.armed()
	if c == "" {
		return nil
	}
	return provider.Errorf("fault-kms", op, c, "INJECTED_"+string(c), "injected %s error", c)
}

func (f *faultKey) URI() string { return f.k.URI() }
func (f *faultKey) Wrap(ctx context.Context, pt, aad []byte) (provider.Wrapped, error) {
	if err := f.fail("wrap"); err != nil {
		return provider.Wrapped{}, err
	}
	return f.k.Wrap(ctx, pt, aad)
}
func (f *faultKey) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) ([]byte, error) {
	if err := f.fail("unwrap"); err != nil {
		return nil, err
	}
	return f.k.Unwrap(ctx, w, aad)
}
func (f *faultKey) Describe(ctx context.Context) (provider.KeyState, error) {
	if err := f.fail("describe"); err != nil {
		return provider.KeyState{}, err
	}
	return f.k.Describe(ctx)
}
func (f *faultKey) admin(op string, fn func(provider.Admin) (provider.KeyState, error)) (provider.KeyState, error) {
	if err := f.fail(op); err != nil {
		return provider.KeyState{}, err
	}
	a, _ := provider.AsAdmin(f.k)
	return fn(a)
}
func (f *faultKey) Create(ctx context.Context) (provider.KeyState, error) {
	return f.admin("create", func(a provider.Admin) (provider.KeyState, error) { return a.Create(ctx) })
}
func (f *faultKey) Rotate(ctx context.Context) (provider.KeyState, error) {
	return f.admin("rotate", func(a provider.Admin) (provider.KeyState, error) { return a.Rotate(ctx) })
}
func (f *faultKey) Disable(ctx context.Context) (provider.KeyState, error) {
	return f.admin("disable", func(a provider.Admin) (provider.KeyState, error) { return a.Disable(ctx) })
}
func (f *faultKey) Enable(ctx context.Context) (provider.KeyState, error) {
	return f.admin("enable", func(a provider.Admin) (provider.KeyState, error) { return a.Enable(ctx) })
}
func (f *faultKey) ScheduleDeletion(ctx context.Context, days int) (provider.KeyState, error) {
	return f.admin("schedule deletion", func(a provider.Admin) (provider.KeyState, error) { return a.ScheduleDeletion(ctx, days) })
}
func (f *faultKey) CancelDeletion(ctx context.Context) (provider.KeyState, error) {
	return f.admin("cancel deletion", func(a provider.Admin) (provider.KeyState, error) { return a.CancelDeletion(ctx) })
}
func (f *faultKey) Destroy(ctx context.Context) (provider.KeyState, error) {
	return f.admin("destroy", func(a provider.Admin) (provider.KeyState, error) { return a.Destroy(ctx) })
}

// TestExitCodesKeepTheClass walks every provider error class through every
// verb that can meet it: the same class exits with the same code whatever
// the verb (a KMS call that reads or uses the key: TRANSIENT 23, REVOKED
// 20, DESTROYED 21, MISUSE 22; an administrative call the KMS cannot carry
// out is a usage error, 2, in kms VERB and in revoke --kms-action alike).
func TestExitCodesKeepTheClass(t *testing.T) {
	var mu sync.Mutex
	var armed provider.Class
	reg := registry.Default()
	open := reg["file-kms"]
	reg["file-kms"] = func(u *url.URL) (provider.Key, error) {
		k, err := open(u)
		if err != nil {
			return nil, err
		}
		return &faultKey{k: k, armed: func() provider.Class { mu.Lock(); defer mu.Unlock(); return armed }}, nil
	}
	state := t.TempDir()
	run := func(args ...string) (int, string) {
		ios, _, _, errOut := iostreams.Test()
		f := &Factory{IO: ios, Registry: func() provider.Registry { return reg }, Now: time.Now, Getenv: func(k string) string {
			if k == "XDG_STATE_HOME" {
				return state
			}
			return ""
		}}
		return Main(f, args), errOut.String()
	}
	must := func(args ...string) {
		t.Helper()
		if code, errOut := run(args...); code != 0 {
			t.Fatalf("cmekctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	dir := t.TempDir()
	kmsDir := filepath.Join(dir, "kms")
	if err := os.Mkdir(kmsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	uri := "file-kms://" + filepath.Join(kmsDir, "cmek")
	uri2 := "file-kms://" + filepath.Join(kmsDir, "cmek2")
	n1, n2, n3 := filepath.Join(dir, "n1", "cmek"), filepath.Join(dir, "n2", "cmek"), filepath.Join(dir, "n3", "cmek")
	must("kms", "create", uri)
	must("kms", "create", uri2)
	must("enable", "--cluster-id", "c1", "--region", "r1", "--cmek", uri, "--keyring", n1, "--node", "n1", "--keyring", n2, "--node", "n2")
	must("backup-keys", "create", "--keyring", n1)
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	use := map[provider.Class]int{provider.Transient: ExitKMSUnavailable, provider.Revoked: ExitKeyRevoked,
		provider.Destroyed: ExitKeyDestroyed, provider.Misuse: ExitMisuse}
	admin := map[provider.Class]int{provider.Transient: ExitKMSUnavailable, provider.Revoked: ExitKeyRevoked,
		provider.Destroyed: ExitKeyDestroyed, provider.Misuse: ExitUsage}
	verbs := []struct {
		args []string
		want map[provider.Class]int
	}{
		{[]string{"kms", "describe", uri}, use},
		{[]string{"kms", "rotate", uri}, admin},
		{[]string{"kms", "disable", uri}, admin},
		{[]string{"kms", "schedule-deletion", uri}, admin},
		{[]string{"revoke", "--keyring", n1, "--kms-action", "disable", "--yes"}, admin},
		{[]string{"revoke", "--keyring", n1, "--kms-action", "schedule-deletion", "--yes"}, admin},
		{[]string{"enable", "--cluster-id", "c1", "--region", "r2", "--cmek", uri, "--keyring", n3, "--node", "n3"}, use},
		{[]string{"rotate", "cmek", "--keyring", n1, "--keyring", n2}, use},
		{[]string{"rotate", "cmek", "--keyring", n1, "--keyring", n2, "--cmek", uri2}, use},
		{[]string{"rotate", "store-key", "--keyring", n1, "--keyring", n2}, use},
		{[]string{"unlock", "--keyring", n1, "--out", filepath.Join(dir, "out"), "--allow-disk", "--store-path", "*"}, use},
		{[]string{"node", "add", "--region", "r1", "--node", "n3", "--keyring", n3, "--from", n1}, use},
		{[]string{"backup-keys", "create", "--keyring", n1}, use},
		// A verdict verb: a key that does not unwrap is not restorable (50),
		// whatever the reason, but a KMS that did not answer gives no
		// verdict: 23, as everywhere.
		{[]string{"backup-keys", "verify", "--keyring", n1}, map[provider.Class]int{provider.Transient: ExitKMSUnavailable,
			provider.Revoked: ExitNotRestorable, provider.Destroyed: ExitNotRestorable, provider.Misuse: ExitNotRestorable}},
		{[]string{"data", "encrypt", "--keyring", n1, in, filepath.Join(dir, "out.enc")}, use},
		{[]string{"backup", "encrypt", "--keyring", n1, in, filepath.Join(dir, "out.bak")}, use},
	}
	for _, v := range verbs {
		for _, c := range []provider.Class{provider.Transient, provider.Revoked, provider.Destroyed, provider.Misuse} {
			mu.Lock()
			armed = c
			mu.Unlock()
			code, errOut := run(v.args...)
			mu.Lock()
			armed = ""
			mu.Unlock()
			if code != v.want[c] {
				t.Errorf("cmekctl %s with a %s KMS error: exit %d, want %d\n%s", strings.Join(v.args[:2], " "), c, code, v.want[c], errOut)
			}
			if c == provider.Misuse && v.want[c] == ExitUsage && strings.Contains(errOut, "did not authenticate") {
				t.Errorf("cmekctl %s: an operation the KMS cannot do is hinted as a key that did not authenticate:\n%s", strings.Join(v.args[:2], " "), errOut)
			}
		}
	}
}
