package filekms

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// snapshot copies every file of dir except the key's secret file: what
// earlier saves leave on the disk, or a backup of "the rest" of the
// directory, holds.
func snapshot(t *testing.T, k *Key) []byte {
	t.Helper()
	var img bytes.Buffer
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(k.dir, e.Name())
		if e.IsDir() || p == k.secretPath() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		img.Write(b)
	}
	return img.Bytes()
}

// TestRemanenceCopiesAreUseless: rotate, disable, enable and destroy a key,
// keeping a copy of the key's files (its secret aside) after every step, as
// the disk keeps the blocks of earlier saves and a backup keeps the files.
// No copy holds any version's material, raw or base64; and the state file
// of before the destroy, put back, does not open. Today's file-kms kept the
// material in plain in every state file it wrote, and so failed this.
func TestRemanenceCopiesAreUseless(t *testing.T) {
	k := newKey(t, Options{})
	ctx := context.Background()
	var image bytes.Buffer
	step := func(f func(context.Context) (provider.KeyState, error)) {
		if _, err := f(ctx); err != nil {
			t.Fatal(err)
		}
		image.Write(snapshot(t, k))
	}
	step(k.Create)
	step(k.Rotate)
	step(k.Disable)
	step(k.Enable)
	materials := versionMaterials(t, k)
	w, err := k.Wrap(ctx, make([]byte, 32), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(k.path())
	if err != nil {
		t.Fatal(err)
	}
	step(k.Destroy)
	if _, err := os.Lstat(k.secretPath()); !os.IsNotExist(err) {
		t.Fatalf("the secret file survives the destroy: %v", err)
	}
	img := image.Bytes()
	for i, m := range materials {
		if bytes.Contains(img, m) || bytes.Contains(img, []byte(base64.StdEncoding.EncodeToString(m))) {
			t.Fatalf("version %d's material is in a copy of the key's files", i+1)
		}
	}
	// The state file of before the destroy, restored: it does not open.
	if err := os.WriteFile(k.path(), before, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, w, []byte("aad")); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("unwrap with the restored state file: %v, want it refused for want of the secret", err)
	}
}

// TestFormat1KeyIsRecoverable: a key written by the file-kms that kept
// material in plain (format 1) reads, is rewritten sealed, and is reported
// recoverable even once destroyed: copies of its old files hold it.
func TestFormat1KeyIsRecoverable(t *testing.T) {
	k := newKey(t, Options{})
	ctx := context.Background()
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := stateFile{Format: format, Version: 1, Name: k.name, State: string(provider.StateEnabled), Primary: 1, Created: created,
		Versions: []versionFile{{ID: 1, State: string(provider.StateEnabled), Created: created, Material: bytes.Repeat([]byte{7}, keyBytes)}}}
	b, _ := json.Marshal(old)
	if err := os.WriteFile(k.path(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	pin, err := k.Pin(ctx, provider.Wrapped{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Wrap(ctx, make([]byte, 32), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Rotate(ctx); err != nil { // a save: rewritten as format 2
		t.Fatal(err)
	}
	data, _ := os.ReadFile(k.path())
	if strings.Contains(string(data), `"material"`) || !strings.Contains(string(data), `"version": 2`) {
		t.Fatalf("not rewritten sealed:\n%s", data)
	}
	if _, err := k.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	pr, err := k.Prove(ctx, pin)
	if err != nil || pr.Destroyed || !pr.State.Recoverable || !strings.Contains(pr.State.RecoverableReason, "format 1") {
		t.Fatalf("prove: %+v %v", pr, err)
	}
}
