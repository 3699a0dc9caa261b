package backup

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cmekctl/cmekctl/pkg/stream"
)

func TestRoundTrip(t *testing.T) {
	bk, _ := loadKeys(t)
	for _, cs := range []int{goldenChunk, stream.DefaultChunkSize} {
		for _, size := range []int{0, 1, cs - 1, cs, cs + 1, 5*cs + 3} {
			pt := make([]byte, size)
			rand.Read(pt)
			for _, p := range []int{0, 2} {
				t.Run(fmt.Sprintf("chunk=%d/size=%d/P=%d", cs, size, p), func(t *testing.T) {
					hdr := testHeader()
					hdr.ID = ""
					file := sealBackup(t, hdr, bk, pt, stream.Options{ChunkSize: cs, Parallel: p})

					// Two steps: ReadHeader, then NewReader. The source is
					// read a byte at a time to show ReadHeader takes no more
					// than the header.
					src := iotest.OneByteReader(bytes.NewReader(file))
					h, err := ReadHeader(src)
					if err != nil {
						t.Fatal(err)
					}
					if len(h.ID) != 32 || h.ChunkSize != cs || h.Version != Version {
						t.Fatalf("header: ID %q, chunk size %d, version %d", h.ID, h.ChunkSize, h.Version)
					}
					r, err := NewReader(src, h, bk, stream.Options{Parallel: p, ChunkSize: 999})
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(r)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatalf("read back %d bytes, want %d", len(got), len(pt))
					}
				})
			}
		}
	}
}

func TestHeaderFieldsRoundTrip(t *testing.T) {
	bk, _ := loadKeys(t)
	in := testHeader()
	in.ID, in.Kind, in.Parent = "inc-7", KindIncremental, "backup-0001"
	in.Wraps[0].CMEKURI = "gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?AUTH=specified&CREDENTIALS=c2VjcmV0"
	file := sealBackup(t, in, bk, []byte("data"), stream.Options{})
	if bytes.Contains(file, []byte("c2VjcmV0")) {
		t.Fatal("the CMEK URI's credentials were written into the backup")
	}
	h, err := ReadHeader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Version, want.ChunkSize = Version, stream.DefaultChunkSize
	want.Wraps = redactWraps(in.Wraps)
	got := *h
	got.keyCheck, got.raw = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("header read back as\n%+v\nwant\n%+v", got, want)
	}
	if !strings.Contains(h.Wraps[0].CMEKURI, "CREDENTIALS=") || strings.Contains(h.Wraps[0].CMEKURI, "c2VjcmV0") {
		t.Fatalf("URI stored as %q", h.Wraps[0].CMEKURI)
	}
}

func TestWriterRefusesBadHeaders(t *testing.T) {
	bk, _ := loadKeys(t)
	cases := map[string]func(*Header){
		"no cluster":             func(h *Header) { h.ClusterID = "" },
		"no key id":              func(h *Header) { h.BackupKeyID = "" },
		"bad kind":               func(h *Header) { h.Kind = "differential" },
		"incremental, no parent": func(h *Header) { h.Kind = KindIncremental },
		"full with parent":       func(h *Header) { h.Parent = "x" },
		"no wraps":               func(h *Header) { h.Wraps = nil },
		"plaintext-sized wrap":   func(h *Header) { h.Wraps[0].Wrapped = make([]byte, 32) },
		"duplicate region":       func(h *Header) { h.Wraps[1].Region = h.Wraps[0].Region },
		"wrap without region":    func(h *Header) { h.Wraps[1].Region = "" },
		"wrap without uri":       func(h *Header) { h.Wraps[1].CMEKURI = "" },
	}
	for name, f := range cases {
		h := testHeader()
		f(&h)
		var buf bytes.Buffer
		if _, err := NewWriter(&buf, h, bk, stream.Options{}); err == nil {
			t.Errorf("%s: NewWriter accepted the header", name)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: %d bytes written for a refused header", name, buf.Len())
		}
	}
	if _, err := NewWriter(io.Discard, testHeader(), make([]byte, 16), stream.Options{}); err == nil {
		t.Error("NewWriter accepted a 128-bit key")
	}
	if _, err := NewWriter(io.Discard, testHeader(), bk, stream.Options{ChunkSize: stream.MaxChunkSize + 1}); err == nil {
		t.Error("NewWriter accepted an oversized chunk size")
	}
}

func TestNewReaderNeedsReadHeader(t *testing.T) {
	bk, _ := loadKeys(t)
	h := testHeader()
	if _, err := NewReader(bytes.NewReader(nil), &h, bk, stream.Options{}); err == nil {
		t.Fatal("NewReader accepted a header that was not read from the file")
	}
}

func TestOpenUnwrapError(t *testing.T) {
	bk, _ := loadKeys(t)
	file := sealBackup(t, testHeader(), bk, []byte("x"), stream.Options{})
	denied := errors.New("file kms: unwrap: key is destroyed")
	h, _, err := Open(bytes.NewReader(file), func(*Header) ([]byte, error) { return nil, denied }, stream.Options{})
	if !errors.Is(err, denied) || !strings.Contains(err.Error(), "bk-0001") {
		t.Fatalf("got %v", err)
	}
	if h == nil || h.BackupKeyID != "bk-0001" {
		t.Fatal("Open did not return the header along with the unwrap error")
	}
}

// A hostile length field is bounded before any allocation; a length within
// the bound over a short input is a truncation.
func TestHostileLength(t *testing.T) {
	prefix := append([]byte(Magic), Version, 0x00, 0x10, 0x00, 0x01) // 1 MiB + 1
	if _, err := ReadHeader(bytes.NewReader(prefix)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("length 1 MiB+1: %v", err)
	}
	prefix = append([]byte(Magic), Version, 0x00, 0x10, 0x00, 0x00) // 1 MiB exactly
	if _, err := ReadHeader(io.MultiReader(bytes.NewReader(prefix), strings.NewReader("{"))); !errors.Is(err, ErrTruncatedHeader) {
		t.Fatalf("length 1 MiB over 1 byte: %v", err)
	}
	prefix = append([]byte(Magic), Version, 0, 0, 0, 0)
	if _, err := ReadHeader(bytes.NewReader(prefix)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("length 0: %v", err)
	}
}

func TestHeaderJSONStrict(t *testing.T) {
	bk, _ := loadKeys(t)
	h := testHeader()
	h.ChunkSize = 64
	h.keyCheck, _ = keyCheck(bk)
	raw, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw[prefixSize:])
	for name, b := range map[string]string{
		"trailing object": body + "{}",
		"not json":        "garbage",
		"zero chunk":      strings.Replace(body, `"chunk_size":64`, `"chunk_size":0`, 1),
		"huge chunk":      strings.Replace(body, `"chunk_size":64`, `"chunk_size":1073741824`, 1),
		"short key check": shortKeyCheck(body),
		"no created":      strings.Replace(body, `"created":"2025-01-02T03:04:05Z"`, `"created":"0001-01-01T00:00:00Z"`, 1),
	} {
		if _, err := parseHeader([]byte(b)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := parseHeader([]byte(body)); err != nil {
		t.Fatalf("the valid body failed: %v", err)
	}
}

func TestCreatedDefaultsToNow(t *testing.T) {
	bk, _ := loadKeys(t)
	h := testHeader()
	h.Created = time.Time{}
	file := sealBackup(t, h, bk, nil, stream.Options{})
	got, err := ReadHeader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(got.Created); d < 0 || d > time.Minute {
		t.Fatalf("created %v", got.Created)
	}
}

// shortKeyCheck replaces the key check's value with a 3-byte one.
func shortKeyCheck(body string) string {
	i := strings.Index(body, `"key_check":"`) + len(`"key_check":"`)
	j := i + strings.Index(body[i:], `"`)
	return body[:i] + "AAAA" + body[j:]
}
