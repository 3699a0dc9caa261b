package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/stream"
)

// v1DataFile builds a data file of version 1 as cmekctl wrote it before
// stream format v2, by hand from docs/backup-format.md section 1.3 (not with
// pkg/stream, which no longer writes v1): magic, version 1, header, then
// the v1 stream (HKDF info "cmekctl stream v1", nonce = 11-byte counter ||
// final flag, the header bytes as chunk 0's additional data).
func v1DataFile(t *testing.T, key []byte, h DataHeader, pt []byte, cs int) []byte {
	hb, _ := json.Marshal(h)
	head := append([]byte("CMEKDATA"), dataVersionV1)
	head = binary.BigEndian.AppendUint32(head, uint32(len(hb)))
	head = append(head, hb...)
	out := append([]byte(nil), head...)
	salt := bytes.Repeat([]byte{0x5a}, stream.SaltSize)
	out = append(out, salt...)
	fips140.WithoutEnforcement(func() {
		k, err := hkdf.Key(sha256.New, key, salt, "cmekctl stream v1", 32)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := aes.NewCipher(k)
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i == 0 || i*cs < len(pt); i++ {
			chunk := pt[i*cs : min(len(pt), (i+1)*cs)]
			nonce := make([]byte, 12)
			binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
			var ad []byte
			if (i+1)*cs >= len(pt) {
				nonce[11] = 1
			}
			if i == 0 {
				ad = head
			}
			out = gcm.Seal(out, nonce, chunk, ad)
		}
	})
	return out
}

// Data files written before format v2 (version byte 1) still open, with
// the data key that sealed them; in FIPS 140-only mode they are refused in
// one line that says what to do.
func TestDataFileV1Opens(t *testing.T) {
	key := bytes.Repeat([]byte{0x07}, 32)
	h := DataHeader{ClusterID: "c1", Region: "r1", Node: "n1", DataKeyID: "dk-1"}
	s := &Sealer{kr: &Keyring{ClusterID: "c1", Region: "r1", Node: "n1"}, keys: map[string][]byte{"dk-1": key}}
	pt := make([]byte, 3*64+10)
	for i := range pt {
		pt[i] = byte(i)
	}
	file := v1DataFile(t, key, h, pt, 64)
	var out bytes.Buffer
	_, err := s.Open(&out, bytes.NewReader(file), stream.Options{ChunkSize: 64, Parallel: 2})
	if fips140.Enforced() {
		if !errors.Is(err, stream.ErrFIPSV1) || out.Len() != 0 || strings.Contains(err.Error(), "\n") {
			t.Fatalf("v1 data file in FIPS 140-only mode: %d bytes, %v", out.Len(), err)
		}
		return
	}
	if err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("v1 data file: %d bytes, %v", out.Len(), err)
	}
	// Tampered, it fails as any stream does.
	file[len(file)-1] ^= 1
	out.Reset()
	if _, err := s.Open(&out, bytes.NewReader(file), stream.Options{ChunkSize: 64}); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("tampered v1 data file: %v", err)
	}
}
