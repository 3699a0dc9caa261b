package stream

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// A vector is a decryption test vector: a stream, the key, header, chunk
// size and version to open it with, and what opening it gives. Version 2
// nonces are random, so encryption is not deterministic: the vectors are
// for decryption (and for checking an independent implementation's output
// by decrypting it).
type vector struct {
	Name      string `json:"name"`
	Version   int    `json:"version"`
	Key       string `json:"key"`        // hex, 32 bytes
	Header    string `json:"header"`     // hex: the caller's header bytes (AD of chunk 0)
	ChunkSize int    `json:"chunk_size"` // C
	Stream    string `json:"stream"`     // hex: salt || chunks
	Plaintext string `json:"plaintext"`  // hex: everything released (before the error, if any)
	Error     string `json:"error"`      // "", "auth", "truncated" or "trailing"
	Chunk     int    `json:"chunk"`      // the chunk the error names
}

type vectorFile struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

var errClasses = map[string]error{"auth": ErrAuth, "truncated": ErrTruncated, "trailing": ErrTrailingData}

const vectorChunk = 32

func makeVectors(t *testing.T) vectorFile {
	key := bytes.Repeat([]byte{0x42}, KeySize)
	header := []byte("CMEKBAK\x00 test vector header")
	pt := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return b
	}
	salt := make([]byte, SaltSize)
	for i := range salt {
		salt[i] = byte(0xa0 + i)
	}
	sealV := func(v, n int) []byte {
		var buf bytes.Buffer
		w, err := newWriter(&buf, key, header, salt, vectorChunk, Options{ChunkSize: vectorChunk, writeV1: v == V1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt(n))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	at := func(v, i int) int { return SaltSize + i*(vectorChunk+over(v)) }
	var out vectorFile
	out.Comment = "cmekctl stream decryption vectors (docs/backup-format.md). TEST key: protects nothing. Regenerate: go test ./pkg/stream -run TestVectors -update"
	add := func(name string, v int, stream []byte, released int, class string, chunk int) {
		out.Vectors = append(out.Vectors, vector{Name: name, Version: v, Key: hex.EncodeToString(key),
			Header: hex.EncodeToString(header), ChunkSize: vectorChunk, Stream: hex.EncodeToString(stream),
			Plaintext: hex.EncodeToString(pt(released)), Error: class, Chunk: chunk})
	}
	for _, v := range []int{V2, V1} {
		p := fmt.Sprintf("v%d-", v)
		add(p+"empty", v, sealV(v, 0), 0, "", 0)
		add(p+"one-short-chunk", v, sealV(v, 5), 5, "", 0)
		add(p+"short-final-chunk", v, sealV(v, 100), 100, "", 0)
		add(p+"full-final-chunk", v, sealV(v, 96), 96, "", 0)
		if v == V1 {
			continue
		}
		s := sealV(v, 100)
		sw := append([]byte(nil), s...)
		copy(sw[at(v, 1):], s[at(v, 2):at(v, 3)])
		copy(sw[at(v, 2):], s[at(v, 1):at(v, 2)])
		add(p+"chunks-1-2-swapped", v, sw, 32, "auth", 1)
		add(p+"cut-at-chunk-2", v, s[:at(v, 2)], 32, "truncated", 1)
		add(p+"final-chunk-dropped", v, s[:at(v, 3)], 64, "truncated", 2)
		fl := append([]byte(nil), s...)
		fl[at(v, 1)+3] ^= 0x01 // in chunk 1's nonce
		add(p+"chunk-1-nonce-flipped", v, fl, 32, "auth", 1)
		f := sealV(v, 96)
		add(p+"data-after-full-final-chunk", v, append(append([]byte(nil), f...), 0), 64, "trailing", 2)
	}
	return out
}

func loadVectors(t testing.TB) []vector {
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatalf("%v (go test ./pkg/stream -run TestVectors -update)", err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Vectors
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectors opens every vector with the package's reader, serial and
// parallel. In FIPS 140-only mode the version 1 vectors must be refused with
// ErrFIPSV1, in one line, before any output.
func TestVectors(t *testing.T) {
	if *update {
		if fips140.Enforced() {
			t.Fatal("regenerate the vectors without fips140=only: version 1 cannot be written in that mode")
		}
		b, err := json.MarshalIndent(makeVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "vectors.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vs := loadVectors(t)
	if len(vs) < 10 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, vec := range vs {
		for _, p := range []int{0, 3} {
			t.Run(fmt.Sprintf("%s/P=%d", vec.Name, p), func(t *testing.T) {
				opt := Options{ChunkSize: vec.ChunkSize, Parallel: p, Version: vec.Version, chunksPerJob: 2}
				got, err := open(unhex(t, vec.Stream), unhex(t, vec.Key), unhex(t, vec.Header), opt)
				if vec.Version == V1 && fips140.Enforced() {
					if !errors.Is(err, ErrFIPSV1) || len(got) != 0 || strings.Contains(err.Error(), "\n") ||
						!strings.Contains(err.Error(), "standard cmekctl build") {
						t.Fatalf("v1 in FIPS 140-only mode: %d bytes, %v; want one line wrapping ErrFIPSV1 that says what to do", len(got), err)
					}
					return
				}
				if !bytes.Equal(got, unhex(t, vec.Plaintext)) {
					t.Fatalf("released %d bytes, want %d", len(got), len(vec.Plaintext)/2)
				}
				if vec.Error == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				if !errors.Is(err, errClasses[vec.Error]) || !strings.Contains(err.Error(), fmt.Sprintf("chunk %d", vec.Chunk)) {
					t.Fatalf("error %v, want %s at chunk %d", err, vec.Error, vec.Chunk)
				}
			})
		}
	}
}

// TestVectorsByHand opens the valid version 2 vectors as the format document
// describes them, with the standard library alone and none of the package's
// code: chunk i at 16 + i×(C+28), K = HKDF-SHA256(key, salt, "cmekctl
// stream v2"), AD = counter (8 bytes, big-endian) || final flag || (header,
// on chunk 0 only), the nonce before each chunk (cipher.NewGCMWithRandomNonce).
func TestVectorsByHand(t *testing.T) {
	n := 0
	for _, vec := range loadVectors(t) {
		if vec.Version != V2 || vec.Error != "" {
			continue
		}
		n++
		s, key, header := unhex(t, vec.Stream), unhex(t, vec.Key), unhex(t, vec.Header)
		k, err := hkdf.Key(sha256.New, key, s[:16], "cmekctl stream v2", 32)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := aes.NewCipher(k)
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			t.Fatal(err)
		}
		stride := vec.ChunkSize + 28
		body := s[16:]
		chunks := max(1, (len(body)+stride-1)/stride)
		var got []byte
		for i := range chunks {
			ct := body[i*stride : min(len(body), (i+1)*stride)]
			ad := binary.BigEndian.AppendUint64(nil, uint64(i))
			if i == chunks-1 {
				ad = append(ad, 1)
			} else {
				ad = append(ad, 0)
			}
			if i == 0 {
				ad = append(ad, header...)
			}
			p, err := aead.Open(nil, nil, ct, ad)
			if err != nil {
				t.Fatalf("%s: chunk %d: %v", vec.Name, i, err)
			}
			got = append(got, p...)
		}
		if !bytes.Equal(got, unhex(t, vec.Plaintext)) {
			t.Fatalf("%s: plaintext differs", vec.Name)
		}
	}
	if n < 4 {
		t.Fatalf("%d valid v2 vectors", n)
	}
}

// TestFIPSOnlyMode runs this package's tests again in a child process under
// GODEBUG=fips140=only, so that every `go test` checks that version 2 works
// in that mode, version 1 is refused in one line, and nothing panics. (CI
// also runs the whole suite on a GOFIPS140=v1.0.0 build in that mode.)
func TestFIPSOnlyMode(t *testing.T) {
	if fips140.Enforced() {
		t.Skip("already in FIPS 140-only mode")
	}
	if testing.Short() {
		t.Skip("runs the package's tests again")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestVectors|TestRoundTrip|TestFailures|TestCounterOverflow|TestParallelMatchesSerial|TestV1RefusedBeforeReading)$", "-test.short")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=only")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("under GODEBUG=fips140=only: %v\n%s", err, out)
	}
}

// In FIPS 140-only mode a version 1 stream is refused before any byte of it
// is read (elsewhere the check passes vacuously).
func TestV1RefusedBeforeReading(t *testing.T) {
	src := bytes.NewReader(make([]byte, 100))
	_, err := NewReader(src, testKey, nil, Options{Version: V1})
	if !fips140.Enforced() {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if !errors.Is(err, ErrFIPSV1) || src.Len() != 100 {
		t.Fatalf("err %v, %d bytes read; want ErrFIPSV1 and nothing read", err, 100-src.Len())
	}
}
