package keyring_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// StoreKeyFileID reads the key ID of a v1 or v2 store-key file, and nothing
// from what is not one: a raw key, a link (not followed), a FIFO (no hang).
func TestStoreKeyFileID(t *testing.T) {
	dir := t.TempDir()
	id := fixed("foreign-id", 32)
	v1 := filepath.Join(dir, "v1.key")
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(v1, append(append([]byte(nil), id...), fixed("k", 32)...))
	write(filepath.Join(dir, "v2.key"), []byte(`{"keys":[{"kty":"oct","kid":"kid-1","alg":"cockroach-aes-256-ctr-v2","k":"`+b64(fixed("k", 32))+`"}]}`))
	write(filepath.Join(dir, "raw.key"), fixed("k", 32))
	if err := os.Symlink(v1, filepath.Join(dir, "link.key")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"v1.key": hex.EncodeToString(id), "v2.key": "kid-1", "raw.key": "", "link.key": "", "fifo.key": "", "none.key": ""} {
		if got := keyring.StoreKeyFileID(filepath.Join(dir, name)); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
