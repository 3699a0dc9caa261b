package backup

import (
	"bytes"
	"crypto/fips140"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/stream"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from testdata/keys.json")

// goldenChunk is the chunk size of the golden files: small, so that files
// with several chunks stay small.
const goldenChunk = 64

// testKeys are fixed TEST keys from testdata/keys.json. They protect nothing.
type testKeys struct {
	Comment   string `json:"comment"`
	BackupKey string `json:"backup_key"`
	OtherKey  string `json:"other_key"`
}

func loadKeys(t testing.TB) (backupKey, otherKey []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var k testKeys
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	bk, err1 := hex.DecodeString(k.BackupKey)
	ok, err2 := hex.DecodeString(k.OtherKey)
	if err := errors.Join(err1, err2); err != nil || len(bk) != 32 || len(ok) != 32 {
		t.Fatalf("testdata/keys.json: bad test keys: %v", err)
	}
	return bk, ok
}

// pattern is the deterministic plaintext of the golden files.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func testHeader() Header {
	return Header{
		ID:          "backup-0001",
		ClusterID:   "cluster-a",
		BackupKeyID: "bk-0001",
		Kind:        KindFull,
		Created:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Wraps: []RegionWrap{
			{Region: "us-east1", CMEKURI: "file-kms:///var/lib/kms/us-east1", KeyVersion: "1", Wrapped: bytes.Repeat([]byte{0xa1}, 60)},
			{Region: "eu-west1", CMEKURI: "file-kms:///var/lib/kms/eu-west1", KeyVersion: "3", Wrapped: bytes.Repeat([]byte{0xb2}, 60)},
		},
	}
}

func sealBackup(t testing.TB, hdr Header, key, pt []byte, opt stream.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, hdr, key, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// streamStart is the offset of the stream (its salt) in a backup file.
func streamStart(t testing.TB, file []byte) int {
	t.Helper()
	if len(file) < prefixSize {
		t.Fatal("file shorter than the prefix")
	}
	return prefixSize + int(binary.BigEndian.Uint32(file[len(Magic)+1:]))
}

func chunkAt(t testing.TB, file []byte, i int) int {
	return streamStart(t, file) + stream.SaltSize + i*(goldenChunk+stream.Overhead)
}

type golden struct {
	name     string
	pt       int   // plaintext length
	want     error // nil: opens and reads back the plaintext
	released int   // plaintext bytes released before the error
	where    string
	make     func(t testing.TB, bk, ok []byte) []byte
}

func okFile(n int) func(t testing.TB, bk, ok []byte) []byte {
	return func(t testing.TB, bk, _ []byte) []byte {
		return sealBackup(t, testHeader(), bk, pattern(n), stream.Options{ChunkSize: goldenChunk})
	}
}

// mutated builds a valid file of n plaintext bytes and applies f to it.
func mutated(n int, f func(t testing.TB, b []byte) []byte) func(t testing.TB, bk, ok []byte) []byte {
	return func(t testing.TB, bk, ok []byte) []byte {
		return f(t, okFile(n)(t, bk, ok))
	}
}

// Plaintext sizes: 200 = chunks 0..2 full and a short final chunk 3;
// 192 = three full chunks, the final one full.
var goldens = []golden{
	{name: "ok.cmek", pt: 200, make: okFile(200)},
	{name: "ok-empty.cmek", pt: 0, make: okFile(0)},
	{name: "ok-full-final-chunk.cmek", pt: 192, make: okFile(192)},
	{name: "ok-incremental.cmek", pt: 100, make: func(t testing.TB, bk, _ []byte) []byte {
		h := testHeader()
		h.ID, h.Kind, h.Parent = "backup-0002", KindIncremental, "backup-0001"
		return sealBackup(t, h, bk, pattern(100), stream.Options{ChunkSize: goldenChunk})
	}},
	{name: "pre-cmek.dump", want: ErrNotBackup, make: func(testing.TB, []byte, []byte) []byte {
		return []byte("PGDMP\x01\x0e\x00\x04\x08\x01\x01\x00\x00\x00\x00\x00 an unencrypted dump from before CMEK\n")
	}},
	{name: "bad-magic.cmek", pt: 200, want: ErrNotBackup, make: mutated(200, func(_ testing.TB, b []byte) []byte {
		b[0] ^= 0x01
		return b
	})},
	{name: "empty.cmek", want: ErrNotBackup, make: func(testing.TB, []byte, []byte) []byte { return []byte{} }},
	{name: "unknown-version.cmek", pt: 200, want: ErrUnknownVersion, where: "version 3", make: mutated(200, func(_ testing.TB, b []byte) []byte {
		b[len(Magic)] = 3
		return b
	})},
	{name: "truncated-prefix.cmek", pt: 200, want: ErrTruncatedHeader, make: mutated(200, func(_ testing.TB, b []byte) []byte {
		return b[:len(Magic)+2]
	})},
	{name: "truncated-header.cmek", pt: 200, want: ErrTruncatedHeader, make: mutated(200, func(t testing.TB, b []byte) []byte {
		return b[:streamStart(t, b)-10]
	})},
	{name: "header-too-large.cmek", pt: 200, want: ErrBadHeader, where: "header length", make: mutated(200, func(_ testing.TB, b []byte) []byte {
		binary.BigEndian.PutUint32(b[len(Magic)+1:], 0xfffffff0)
		return b
	})},
	{name: "header-unknown-field.cmek", pt: 200, want: ErrBadHeader, where: "unknown field", make: func(t testing.TB, bk, _ []byte) []byte {
		// A well-formed file, sealed over a header with a field this version does not know.
		h := testHeader()
		h.ChunkSize = goldenChunk
		kc, _ := keyCheck(bk)
		h.keyCheck = kc
		raw, err := h.encode()
		if err != nil {
			t.Fatal(err)
		}
		body := append([]byte(`{"compression":"zstd",`), raw[prefixSize+1:]...)
		raw = append(raw[:prefixSize:prefixSize], body...)
		binary.BigEndian.PutUint32(raw[len(Magic)+1:], uint32(len(body)))
		var buf bytes.Buffer
		buf.Write(raw)
		w, err := stream.NewWriter(&buf, bk, raw, stream.Options{ChunkSize: goldenChunk})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pattern(200))
		w.Close()
		return buf.Bytes()
	}},
	{name: "flipped-header.cmek", pt: 200, want: stream.ErrAuth, where: "chunk 0", make: mutated(200, func(t testing.TB, b []byte) []byte {
		// "cluster-a" becomes "cluster-c": still a valid header, but not the one sealed.
		i := bytes.Index(b, []byte(`"cluster-a"`))
		if i < 0 || i > streamStart(t, b) {
			t.Fatal("cluster ID not found in the header")
		}
		b[i+len(`"cluster-`)] ^= 0x02
		return b
	})},
	{name: "flipped-chunk.cmek", pt: 200, want: stream.ErrAuth, released: 64, where: "chunk 1", make: mutated(200, func(t testing.TB, b []byte) []byte {
		b[chunkAt(t, b, 1)+10] ^= 0x80
		return b
	})},
	{name: "flipped-tag.cmek", pt: 200, want: stream.ErrAuth, released: 128, where: "chunk 2", make: mutated(200, func(t testing.TB, b []byte) []byte {
		b[chunkAt(t, b, 3)-1] ^= 0x01
		return b
	})},
	{name: "flipped-salt.cmek", pt: 200, want: stream.ErrAuth, where: "chunk 0", make: mutated(200, func(t testing.TB, b []byte) []byte {
		b[streamStart(t, b)] ^= 0x01
		return b
	})},
	{name: "reordered-chunks.cmek", pt: 200, want: stream.ErrAuth, released: 64, where: "chunk 1", make: mutated(200, func(t testing.TB, b []byte) []byte {
		c1 := append([]byte(nil), b[chunkAt(t, b, 1):chunkAt(t, b, 2)]...)
		copy(b[chunkAt(t, b, 1):], b[chunkAt(t, b, 2):chunkAt(t, b, 3)])
		copy(b[chunkAt(t, b, 2):], c1)
		return b
	})},
	{name: "truncated-chunk-boundary.cmek", pt: 200, want: stream.ErrTruncated, released: 64, where: "chunk 1", make: mutated(200, func(t testing.TB, b []byte) []byte {
		return b[:chunkAt(t, b, 2)]
	})},
	{name: "truncated-after-header.cmek", pt: 200, want: stream.ErrTruncated, make: mutated(200, func(t testing.TB, b []byte) []byte {
		return b[:streamStart(t, b)]
	})},
	{name: "missing-final-chunk.cmek", pt: 200, want: stream.ErrTruncated, released: 128, where: "chunk 2", make: mutated(200, func(t testing.TB, b []byte) []byte {
		return b[:chunkAt(t, b, 3)]
	})},
	{name: "trailing-data.cmek", pt: 192, want: stream.ErrTrailingData, released: 128, where: "chunk 2", make: mutated(192, func(_ testing.TB, b []byte) []byte {
		return append(b, "appended"...)
	})},
	{name: "wrong-key.cmek", pt: 200, want: ErrWrongKey, where: "bk-0001", make: func(t testing.TB, _, ok []byte) []byte {
		// Sealed with another key under the same key ID: opened with the
		// backup key, it fails the key check.
		return sealBackup(t, testHeader(), ok, pattern(200), stream.Options{ChunkSize: goldenChunk})
	}},
}

// goldenDirs: testdata holds the golden files of the format written today
// (version 2), made by -update; testdata/v1 those of version 1, frozen (no
// writer makes them any more): they show that version 1 backups still read,
// with the same outcome for each class, and, in FIPS 140-only mode, that
// they are refused in one line.
var goldenDirs = []struct {
	dir     string
	version int
}{{"testdata", Version}, {filepath.Join("testdata", "v1"), VersionV1}}

// goldenWant is what opening g in format version v should give: g.want,
// except in FIPS 140-only mode, where a version 1 file that gets as far as
// its stream is refused.
func goldenWant(g golden, v int) (released int, want error) {
	if v == VersionV1 && fips140.Enforced() {
		switch {
		case g.want == nil, errors.Is(g.want, stream.ErrAuth), errors.Is(g.want, stream.ErrTruncated), errors.Is(g.want, stream.ErrTrailingData):
			return 0, stream.ErrFIPSV1
		}
	}
	return g.released, g.want
}

func TestGolden(t *testing.T) {
	bk, ok := loadKeys(t)
	if *update {
		for _, g := range goldens {
			if err := os.WriteFile(filepath.Join("testdata", g.name), g.make(t, bk, ok), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range goldenDirs {
		for _, g := range goldens {
			if d.version == VersionV1 && g.name == "unknown-version.cmek" {
				continue
			}
			testGolden(t, bk, d.dir, d.version, g)
		}
	}
}

func testGolden(t *testing.T, bk []byte, dir string, version int, g golden) {
	released, want := goldenWant(g, version)
	for _, p := range []int{0, 2} {
		t.Run(fmt.Sprintf("%s/%s/P=%d", dir, g.name, p), func(t *testing.T) {
			file, err := os.ReadFile(filepath.Join(dir, g.name))
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/backup -run TestGolden -update)", err)
			}
			unwraps := 0
			h, r, err := Open(bytes.NewReader(file), func(h *Header) ([]byte, error) {
				unwraps++
				if h.BackupKeyID != "bk-0001" {
					return nil, fmt.Errorf("unknown backup key %q", h.BackupKeyID)
				}
				return bk, nil
			}, stream.Options{Parallel: p})
			var out bytes.Buffer
			if err == nil {
				if unwraps != 1 {
					t.Errorf("%d unwraps, want 1", unwraps)
				}
				_, err = io.Copy(&out, r)
			}
			if want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), pattern(g.pt)) {
					t.Fatalf("read back %d bytes, want the %d bytes sealed", out.Len(), g.pt)
				}
				if h.ClusterID != "cluster-a" || h.BackupKeyID != "bk-0001" || h.ChunkSize != goldenChunk || len(h.Wraps) != 2 || h.Version != version {
					t.Fatalf("header read back as %+v", h)
				}
				return
			}
			if !errors.Is(err, want) {
				t.Fatalf("error %v, want %v", err, want)
			}
			if want == g.want && !strings.Contains(err.Error(), g.where) || !strings.HasPrefix(err.Error(), "backup: ") {
				t.Errorf("error %q should start with \"backup: \" and name %q", err, g.where)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
			if got := out.Bytes(); !bytes.Equal(got, pattern(g.pt)[:released]) {
				t.Fatalf("released %d bytes before the error, want the %d bytes of the chunks before the bad one", len(got), released)
			}
		})
	}
}

// The message a pre-CMEK backup gets is the one operators will search for.
func TestPreCMEKMessage(t *testing.T) {
	_, err := ReadHeader(strings.NewReader("-- PostgreSQL database dump\n"))
	if err == nil || err.Error() != "backup: not a cmekctl backup (taken before CMEK was enabled?)" {
		t.Fatalf("got %v", err)
	}
}

func goldenFiles(f *testing.F) [][]byte {
	var out [][]byte
	for _, d := range goldenDirs {
		for _, g := range goldens {
			b, err := os.ReadFile(filepath.Join(d.dir, g.name))
			if errors.Is(err, os.ErrNotExist) && d.version == VersionV1 {
				continue
			}
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

func classified(err error) bool {
	for _, e := range []error{ErrNotBackup, ErrUnknownVersion, ErrTruncatedHeader, ErrBadHeader, ErrWrongKey,
		stream.ErrAuth, stream.ErrTruncated, stream.ErrTrailingData, stream.ErrFIPSV1} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzReadHeader(f *testing.F) {
	for _, b := range goldenFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		src := bytes.NewReader(b)
		h, err := ReadHeader(src)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if err := h.validate(); err != nil {
			t.Fatalf("ReadHeader returned an invalid header: %v", err)
		}
		// It consumed exactly the header, nothing of the stream.
		if consumed := len(b) - src.Len(); consumed != len(h.raw) || consumed > prefixSize+MaxHeaderSize {
			t.Fatalf("consumed %d bytes for a %d-byte header", consumed, len(h.raw))
		}
	})
}

func FuzzOpen(f *testing.F) {
	bk, _ := loadKeys(f)
	for _, b := range goldenFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, r, err := Open(bytes.NewReader(b), func(*Header) ([]byte, error) { return bk, nil }, stream.Options{})
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		out, err := io.ReadAll(r)
		if err != nil && !classified(err) {
			t.Fatalf("unclassified error %v", err)
		}
		if len(out) > len(b) {
			t.Fatalf("released %d bytes from a %d-byte file", len(out), len(b))
		}
	})
}
