// Package keywrap seals keys and other short secrets with AES-256-GCM under
// nonces that Go's FIPS 140-3 cryptographic module generates itself
// (cipher.NewGCMWithRandomNonce), the construction the module approves, so
// every caller works unchanged under GODEBUG=fips140=only. It is the one place
// cmekctl's key wraps (keyring data keys, the embedded file KMS) get their AEAD;
// new wraps (audit, escrow) should call it too rather than cipher.NewGCM,
// which fips140=only refuses.
//
// A sealed value is nonce (12 bytes) || ciphertext || tag (16 bytes): the same
// layout cmekctl wrote before it used the module's nonces (it drew the 96-bit
// nonce from crypto/rand and prefixed it), so values sealed by earlier
// versions open here in every mode, fips140=only included. Opening with any
// nonce is approved; only choosing the nonce outside the module is not.
package keywrap

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

const (
	// KeySize is the AES-256 key size.
	KeySize = 32
	// NonceSize is the size of the nonce that prefixes a sealed value.
	NonceSize = 12
	// TagSize is the size of the GCM tag that ends a sealed value.
	TagSize = 16
	// Overhead is what Seal adds to the plaintext.
	Overhead = NonceSize + TagSize
)

// ErrAuth is returned when a sealed value does not open: wrong key, wrong
// additional data, truncated or corrupt.
var ErrAuth = errors.New("does not authenticate")

func aead(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("keywrap: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keywrap: %w", err)
	}
	a, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("keywrap: %w", err)
	}
	return a, nil
}

// Seal appends nonce || AES-256-GCM(key, plaintext, ad) || tag to dst and
// returns the result. The module draws the nonce. The only error is a key
// that is not 32 bytes.
func Seal(dst, key, plaintext, ad []byte) ([]byte, error) {
	a, err := aead(key)
	if err != nil {
		return nil, err
	}
	return a.Seal(dst, nil, plaintext, ad), nil
}

// Open opens a value made by Seal (or by cmekctl before it: same layout).
// Every failure to authenticate is ErrAuth.
func Open(key, sealed, ad []byte) ([]byte, error) {
	a, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < Overhead {
		return nil, ErrAuth
	}
	pt, err := a.Open(nil, nil, sealed, ad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// Derive returns n bytes of HKDF-SHA-256(secret, salt, info): the approved
// way to derive a subkey (for a MAC key, say) from a key. secret must be at
// least 14 bytes (112 bits), the least fips140=only accepts for HMAC.
func Derive(secret, salt []byte, info string, n int) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, salt, info, n)
	if err != nil {
		return nil, fmt.Errorf("keywrap: derive %q: %w", info, err)
	}
	return k, nil
}
