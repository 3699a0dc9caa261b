package keywrap_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/cmekctl/cmekctl/internal/fipstest"
	"github.com/cmekctl/cmekctl/pkg/keywrap"
)

func testKey() []byte {
	k := make([]byte, keywrap.KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// A value sealed the way cmekctl sealed before keywrap (cipher.NewGCM with a
// caller-drawn nonce, prefixed): it must open in every mode.
const (
	oldLayoutHex = "636d656b63746c2d74657374563ee3a17a2ab177926a50726607ac6c5b0f703d803b3e330c78f18f11809873435f6245c8dd88aa564cefe7a9a04e90"
	oldPlain     = "test-only key material, 32 bytes"
	oldAD        = "purpose=data-key"
)

func TestOpenOldLayout(t *testing.T) {
	sealed, _ := hex.DecodeString(oldLayoutHex)
	pt, err := keywrap.Open(testKey(), sealed, []byte(oldAD))
	if err != nil {
		t.Fatalf("open a value sealed before keywrap (fips140=only: %v): %v", fipstest.Enforced(), err)
	}
	if string(pt) != oldPlain {
		t.Fatalf("opened %q, want %q", pt, oldPlain)
	}
}

func TestSealOpen(t *testing.T) {
	key, pt, ad := testKey(), []byte("a data key, 32 bytes long, test"), []byte("binding")
	prefix := []byte("v1")
	a, err := keywrap.Seal(prefix, key, pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(a, prefix) || len(a) != len(prefix)+len(pt)+keywrap.Overhead {
		t.Fatalf("Seal returned %d bytes (prefix kept: %v), want %d", len(a), bytes.HasPrefix(a, prefix), len(prefix)+len(pt)+keywrap.Overhead)
	}
	b, _ := keywrap.Seal(nil, key, pt, ad)
	if bytes.Equal(a[2:2+keywrap.NonceSize], b[:keywrap.NonceSize]) {
		t.Fatal("two seals drew the same nonce")
	}
	got, err := keywrap.Open(key, a[2:], ad)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v; want %q", got, err, pt)
	}
	other := testKey()
	other[0] ^= 1
	flipped := bytes.Clone(b)
	flipped[len(flipped)-1] ^= 1
	for name, f := range map[string]func() ([]byte, error){
		"wrong ad":   func() ([]byte, error) { return keywrap.Open(key, b, []byte("other")) },
		"wrong key":  func() ([]byte, error) { return keywrap.Open(other, b, ad) },
		"flipped":    func() ([]byte, error) { return keywrap.Open(key, flipped, ad) },
		"truncated":  func() ([]byte, error) { return keywrap.Open(key, b[:keywrap.Overhead-1], ad) },
		"empty":      func() ([]byte, error) { return keywrap.Open(key, nil, ad) },
		"nonce only": func() ([]byte, error) { return keywrap.Open(key, b[:keywrap.NonceSize], ad) },
	} {
		if _, err := f(); !errors.Is(err, keywrap.ErrAuth) {
			t.Errorf("%s: err = %v, want ErrAuth", name, err)
		}
	}
}

func TestBadKeySize(t *testing.T) {
	if _, err := keywrap.Seal(nil, make([]byte, 16), nil, nil); err == nil {
		t.Fatal("Seal took a 16-byte key; keywrap is AES-256 only")
	}
	if _, err := keywrap.Open(make([]byte, 31), make([]byte, 40), nil); err == nil || errors.Is(err, keywrap.ErrAuth) {
		t.Fatalf("Open with a 31-byte key: %v, want a key-size error", err)
	}
}

func TestDerive(t *testing.T) {
	a, err := keywrap.Derive(testKey(), nil, "cmekctl audit mac", 32)
	if err != nil || len(a) != 32 {
		t.Fatalf("Derive: %d bytes, %v", len(a), err)
	}
	b, _ := keywrap.Derive(testKey(), nil, "cmekctl other", 32)
	if bytes.Equal(a, b) {
		t.Fatal("two infos derived the same key")
	}
	// RFC 5869 test case 1 (HKDF-SHA-256), as a known answer.
	ikm, _ := hex.DecodeString("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b")
	salt, _ := hex.DecodeString("000102030405060708090a0b0c")
	info, _ := hex.DecodeString("f0f1f2f3f4f5f6f7f8f9")
	okm, err := keywrap.Derive(ikm, salt, string(info), 42)
	want := "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
	if err != nil || hex.EncodeToString(okm) != want {
		t.Fatalf("RFC 5869 case 1: %x, %v", okm, err)
	}
}

// TestFIPSOnly runs the tests above again with Go's FIPS 140-3 module
// enforcing its approved algorithms.
func TestFIPSOnly(t *testing.T) {
	fipstest.RunOnly(t, "^(TestOpenOldLayout|TestSealOpen|TestBadKeySize|TestDerive)$")
}
