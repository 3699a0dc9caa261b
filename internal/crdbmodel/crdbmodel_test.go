package crdbmodel

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The model itself refuses what CockroachDB refuses: each rule of the
// package comment has a case that would pass if the model were lax.
func TestRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	id := func(c byte) []byte { b := make([]byte, 32); b[0] = c; return b }
	mat := func(c byte, n int) []byte { b := make([]byte, n); b[1] = c; return b }
	a1 := write("a1", append(id('a'), mat('a', 32)...))
	b1 := write("b1", append(id('b'), mat('b', 16)...))
	c1 := write("c1", append(id('c'), mat('c', 32)...))
	aID := loadOrDie(t, a1).ID
	a2 := write("a2", []byte(`{"keys":[{"kty":"oct","kid":"`+aID+`","alg":"cockroach-aes-256-ctr-v2","k":"`+base64.RawURLEncoding.EncodeToString(mat('a', 32))+`"}]}`))
	bad := write("bad", []byte("short"))
	spec := func(path, key, old string) string { return "path=" + path + ",key=" + key + ",old-key=" + old }

	n := NewNode(V24_1, "/d1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fails := func(err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error with %q", err, want)
		}
	}
	must(n.Start([]string{spec("/d1", a1, "plain")}))
	fails(n.Start([]string{spec("/d1", b1, "plain")}), "was not found")
	fails(n.Start([]string{spec("/d1", a2, "plain")}), "unknown EncryptionType")
	fails(n.Start([]string{spec("/d1", bad, a1)}), "bytes")
	must(n.Start([]string{spec("/d1", b1, a1)}))
	fails(n.Start([]string{spec("/d1", a1, b1)}), "cannot be reactivated")
	must(n.Start([]string{spec("/d1", c1, b1) + ",rotation-period=72h"}))
	fails(n.Start([]string{spec("~/d1", c1, b1)}), "~")
	fails(n.Start([]string{spec("/d1", c1, b1) + ",rotation-period=soon"}), "rotation-period")
	fails(n.Start([]string{"path=/d1,key=" + c1}), "required")
	fails(n.Start([]string{spec("/d1", c1, b1), spec("/d1", c1, b1)}), "more than one")
	fails(n.Start(nil), "no key was given")
	if _, err := LoadKeyFile(a2, V23_2); err == nil {
		t.Fatal("a v2 file loads on 23.2")
	}
	// '*' is the first store only: the second starts unencrypted.
	m := NewNode(V24_1, "/d1", "/d2")
	must(m.Start([]string{spec("*", a1, "plain")}))
	if !m.Store("/d2").Active.Plain() || m.Store("/d1").Active.ID != aID {
		t.Fatal("'*' did not apply to the first store only")
	}
	if got := m.ActiveKeyID("/d1"); got != "AES256_CTR:"+aID {
		t.Fatalf("ActiveKeyID %q", got)
	}
}

func loadOrDie(t *testing.T, p string) Key {
	k, err := LoadKeyFile(p, V24_1)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
