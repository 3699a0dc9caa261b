package filekms

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/providertest"
	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// eioFS fails every read with EIO: a disk that does not answer.
type eioFS struct{ safefile.OS }

func (eioFS) ReadFile(string) ([]byte, error) {
	return nil, &os.PathError{Op: "read", Err: syscall.EIO}
}

func newKey(t *testing.T, opt Options) *Key {
	t.Helper()
	u, _ := url.Parse("file-kms://" + filepath.Join(t.TempDir(), "kms", "k1"))
	k, err := OpenWith(u, opt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// versionMaterials is a copy of the key material of each of k's versions,
// each checked to be a key's length.
func versionMaterials(t *testing.T, k *Key) [][]byte {
	t.Helper()
	st, err := k.load("test")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, v := range st.Versions {
		if len(v.Material) != keyBytes {
			t.Fatalf("version %d: %d bytes of material", v.ID, len(v.Material))
		}
		out = append(out, bytes.Clone(v.Material))
	}
	return out
}

func TestSuite(t *testing.T) {
	var clock = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	admin := func(f func(*Key) error) providertest.Mutator {
		return func(t *testing.T, k provider.Key) provider.Key {
			if err := f(k.(*Key)); err != nil {
				t.Fatal(err)
			}
			return k
		}
	}
	ctx := context.Background()
	providertest.Run(t, providertest.Harness{
		NewKey: func(t *testing.T) provider.Key {
			k := newKey(t, Options{Now: now})
			if _, err := k.Create(ctx); err != nil {
				t.Fatal(err)
			}
			return k
		},
		Disable:          admin(func(k *Key) error { _, err := k.Disable(ctx); return err }),
		ScheduleDeletion: admin(func(k *Key) error { _, err := k.ScheduleDeletion(ctx, 7); return err }),
		Destroy:          admin(func(k *Key) error { _, err := k.Destroy(ctx); return err }),
		Rotate:           admin(func(k *Key) error { _, err := k.Rotate(ctx); return err }),
		DenyAccess: admin(func(k *Key) error {
			return os.Chmod(k.path(), 0o644) // refused, as ssh refuses such keys
		}),
		Down: func(t *testing.T, k provider.Key) provider.Key {
			kk := *k.(*Key)
			kk.opt.FS = eioFS{}
			return &kk
		},
		Covered: map[string]string{"Throttle": "not applicable: the embedded KMS has no network or quota (Down covers an I/O error → TRANSIENT)"},
	})
}

func TestDeletionWindowDestroysMaterial(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := newKey(t, Options{Now: func() time.Time { return clock }})
	ctx := context.Background()
	if _, err := k.Create(ctx); err != nil {
		t.Fatal(err)
	}
	aad := []byte("aad")
	w, err := k.Wrap(ctx, make([]byte, 32), aad)
	if err != nil {
		t.Fatal(err)
	}
	st, err := k.ScheduleDeletion(ctx, 7)
	if err != nil || st.State != provider.StatePendingDeletion {
		t.Fatalf("schedule: %v %v", st.State, err)
	}
	if _, err := k.CancelDeletion(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Enable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, w, aad); err != nil {
		t.Fatalf("unwrap after cancel: %v", err)
	}
	if _, err := k.ScheduleDeletion(ctx, 7); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(7*24*time.Hour + time.Second)
	_, err = k.Unwrap(ctx, w, aad)
	if provider.Classify(err) != provider.Destroyed {
		t.Fatalf("after the window: %v, want DESTROYED", err)
	}
	data, err := os.ReadFile(k.path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"material"`) {
		t.Fatal("destroyed key file still holds material")
	}
	st, _ = k.Describe(ctx)
	if st.State != provider.StateDestroyed {
		t.Fatalf("describe: %s", st.State)
	}
}

func TestBadURIsAndFiles(t *testing.T) {
	for _, raw := range []string{"file-kms://host/x", "file-kms:///rel/../x", "file-kms:///a/b/", "file-kms:///a/b?X=1", "file-kms:///a/.hidden"} {
		u, _ := url.Parse(raw)
		if _, err := OpenWith(u, Options{}); err == nil {
			t.Errorf("%s: no error", raw)
		}
	}
	k := newKey(t, Options{})
	ctx := context.Background()
	if _, err := k.Create(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Create(ctx); err == nil {
		t.Fatal("second create succeeded")
	}
	if err := os.WriteFile(k.path(), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := k.Wrap(ctx, []byte("x"), nil)
	var pe *provider.Error
	if !errors.As(err, &pe) || pe.Code != "Corrupt" {
		t.Fatalf("corrupt file: %v", err)
	}
}
