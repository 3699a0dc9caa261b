package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Format versions.
const (
	// V1: 12-byte nonces made from the chunk counter and the final flag
	// (cipher.NewGCM); chunk stride C+16. Read only.
	V1 = 1
	// V2: a 96-bit nonce drawn by Go's cryptographic module for every chunk
	// and written before it (cipher.NewGCMWithRandomNonce); the counter and
	// the final flag in the additional data; chunk stride C+28. FIPS
	// 140-only mode allows it. Every new stream is V2.
	V2 = 2
)

const (
	tagSize   = 16
	nonceSize = 12
	// Overhead is the wire expansion of one version 2 chunk: its nonce and
	// its GCM tag. Chunk i of a stream starts at SaltSize + i×(C+Overhead).
	Overhead = nonceSize + tagSize
	// OverheadV1 is the wire expansion of one version 1 chunk: the GCM tag.
	OverheadV1 = tagSize
	// MaxChunks is the most chunks a version 2 stream carries: every chunk
	// is one GCM invocation with a random 96-bit nonce under the stream's
	// key, and NIST SP 800-38D bounds those to 2^32 per key. At the default
	// chunk size that is 256 TiB.
	MaxChunks = 1 << 32
)

// suite is one stream's cipher and framing: what every job needs to seal or
// open its chunks, shared read-only by the workers.
type suite struct {
	version int
	aead    cipher.AEAD
	header  []byte // the additional data of chunk 0 (after A(0) in V2)
	chunk   int    // C, the plaintext size of a full chunk
	over    int    // the wire expansion of a chunk: Overhead or OverheadV1
	// maxCounter is the last chunk number the format allows.
	maxCounter uint64
}

func kdfInfo(version int) string { return fmt.Sprintf("cmekctl stream v%d", version) }

func newSuite(version int, key, salt, header []byte, chunk int) (*suite, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("stream: key is %d bytes, want %d", len(key), KeySize)
	}
	if version == V1 && fips140.Enforced() {
		return nil, fipsV1Error()
	}
	ck, err := hkdf.Key(sha256.New, key, salt, kdfInfo(version), KeySize)
	if err != nil {
		return nil, fmt.Errorf("stream: derive chunk key: %w", err)
	}
	block, err := aes.NewCipher(ck)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	s := &suite{version: version, header: append([]byte(nil), header...), chunk: chunk}
	switch version {
	case V1:
		s.aead, err = cipher.NewGCM(block)
		s.over, s.maxCounter = OverheadV1, ^uint64(0)
	case V2:
		s.aead, err = cipher.NewGCMWithRandomNonce(block)
		s.over, s.maxCounter = Overhead, MaxChunks-1
	default:
		return nil, fmt.Errorf("stream: format version %d: %w", version, ErrVersion)
	}
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	return s, nil
}

// fipsV1Error is the one line a version 1 stream gets in FIPS 140-only mode.
func fipsV1Error() error {
	return fmt.Errorf("stream: %w (GODEBUG=fips140=only): decrypt it with a standard cmekctl build, without fips140=only, then encrypt it again; new streams are format v2, which this mode reads", ErrFIPSV1)
}

// stride is the wire size of a full chunk.
func (s *suite) stride() int { return s.chunk + s.over }

// scratch is a worker's per-job room for a chunk's nonce (V1) or
// additional data (V2), so that sealing and opening allocate nothing.
type scratch struct {
	nonce [nonceSize]byte
	ad    []byte
}

// params returns the nonce and additional data of chunk c.
func (s *suite) params(sc *scratch, c uint64, last bool) (nonce, ad []byte) {
	var flag byte
	if last {
		flag = 1
	}
	if s.version == V1 {
		// N(c, last) = the 11-byte big-endian counter || flag; the high
		// three bytes of the counter are always zero here.
		clear(sc.nonce[:3])
		binary.BigEndian.PutUint64(sc.nonce[3:11], c)
		sc.nonce[11] = flag
		if c == 0 {
			return sc.nonce[:], s.header
		}
		return sc.nonce[:], nil
	}
	// A(c, last) = the 8-byte big-endian counter || flag, then the header
	// on chunk 0. The module draws the nonce.
	sc.ad = binary.BigEndian.AppendUint64(sc.ad[:0], c)
	sc.ad = append(sc.ad, flag)
	if c == 0 {
		sc.ad = append(sc.ad, s.header...)
	}
	return nil, sc.ad
}

// seal seals plaintext chunk c into dst's storage (dst must not overlap pt)
// and returns the chunk's wire bytes.
func (s *suite) seal(sc *scratch, dst, pt []byte, c uint64, last bool) []byte {
	nonce, ad := s.params(sc, c, last)
	return s.aead.Seal(dst[:0], nonce, pt, ad)
}

// open authenticates and decrypts chunk c's wire bytes into dst's storage.
func (s *suite) open(sc *scratch, dst, ct []byte, c uint64, last bool) ([]byte, error) {
	nonce, ad := s.params(sc, c, last)
	return s.aead.Open(dst[:0], nonce, ct, ad)
}
