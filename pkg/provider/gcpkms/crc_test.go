package gcpkms_test

import (
	"bytes"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
)

// TestCRC32C covers the integrity checks both ways. Google's guidance
// (docs/providers/gcp.md): discard a response whose checksum does not
// match, or that did not verify ours, and retry a limited number of times.
// So a mismatch is TRANSIENT, retried within the policy, never proof.
func TestCRC32C(t *testing.T) {
	pt := bytes.Repeat([]byte{7}, 32)
	aad := []byte("cmekctl-aad-v1?cluster=c1")
	attempts := fastRetry.Attempts

	cases := []struct {
		name   string
		method string // the RPC the fault hits
		fault  func(h faults, n int)
		code   string
		msg    string
	}{
		{"Encrypt/ciphertext_crc32c corrupted", "Encrypt", faults.responseCRC, gcpkms.CodeChecksum, "ciphertext_crc32c does not match"},
		{"Encrypt/request checksums not verified", "Encrypt", faults.dropRequestCRC, gcpkms.CodeChecksum, "did not verify plaintext_crc32c"},
		{"Encrypt/request corrupted in transit", "Encrypt", faults.request, "INVALID_ARGUMENT", "checksum in field plaintext_crc32c"},
		// Google's guidance: the response's name must be a version of the
		// key asked; an emulator naming the key itself slipped through.
		{"Encrypt/response names the key, not a version", "Encrypt", faults.keyName, gcpkms.CodeChecksum, "not a version of"},
		{"Decrypt/plaintext_crc32c corrupted", "Decrypt", faults.responseCRC, gcpkms.CodeChecksum, "plaintext_crc32c does not match"},
		{"Decrypt/request corrupted in transit", "Decrypt", faults.request, "INVALID_ARGUMENT", "checksum in field ciphertext_crc32c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, k := newKey(t)
			w, err := k.Wrap(ctxT(t), pt, aad)
			if err != nil {
				t.Fatal(err)
			}
			h := faults{srv}
			call := func() ([]byte, error) {
				if c.method == "Encrypt" {
					w2, err := k.Wrap(ctxT(t), pt, aad)
					if err != nil {
						return nil, err
					}
					return k.Unwrap(ctxT(t), w2, aad)
				}
				return k.Unwrap(ctxT(t), w, aad)
			}

			// One corrupted exchange: discarded, retried, and the retry
			// returns the right bytes.
			before := srv.Calls(c.method)
			c.fault(h, 1)
			got, err := call()
			if err != nil {
				t.Fatalf("one fault then retry: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("wrong plaintext after a retried checksum failure")
			}
			if n := srv.Calls(c.method) - before; n != 2 {
				t.Fatalf("%d %s calls, want 2 (the corrupted one and its retry)", n, c.method)
			}

			// A persistent mismatch: bounded attempts, then TRANSIENT.
			before = srv.Calls(c.method)
			c.fault(h, -1)
			_, err = call()
			expectErr(t, err, provider.Transient, c.code, c.msg)
			if n := srv.Calls(c.method) - before; n != attempts {
				t.Fatalf("%d %s calls, want %d", n, c.method, attempts)
			}
		})
	}
}

type faults struct {
	s interface {
		CorruptResponseCRC(int)
		DropRequestCRC(int)
		CorruptRequest(int)
		NameKeyInEncrypt(int)
	}
}

func (f faults) responseCRC(n int)    { f.s.CorruptResponseCRC(n) }
func (f faults) dropRequestCRC(n int) { f.s.DropRequestCRC(n) }
func (f faults) request(n int)        { f.s.CorruptRequest(n) }
func (f faults) keyName(n int)        { f.s.NameKeyInEncrypt(n) }
