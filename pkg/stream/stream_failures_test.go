package stream

// Streams and uses that must fail: tampered or cut streams, misuse, bad
// options, I/O errors and counter overflow.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestFailures(t *testing.T) {
	for _, v := range versions() {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testFailures(t, v) })
	}
}

func testFailures(t *testing.T, v int) {
	const cs = 64
	chunkAt := func(i int) int { return SaltSize + i*(cs+over(v)) }
	mutate := func(ct []byte, f func([]byte) []byte) []byte {
		return f(append([]byte(nil), ct...))
	}
	ptShort := randBytes(t, 3*cs+10) // chunks 0,1,2 full; chunk 3 final, short
	ptFull := randBytes(t, 3*cs)     // chunk 2 is the final chunk and full

	cases := []struct {
		name   string
		pt     []byte
		mut    func([]byte) []byte
		key    []byte
		header []byte
		want   error
		chunk  int // the bad chunk: plaintext before it may be released, none of it
	}{
		{"flip salt", ptShort, func(b []byte) []byte { b[3] ^= 1; return b }, nil, nil, ErrAuth, 0},
		{"flip chunk 0 body", ptShort, func(b []byte) []byte { b[chunkAt(0)+5] ^= 0x80; return b }, nil, nil, ErrAuth, 0},
		{"flip chunk 1 body", ptShort, func(b []byte) []byte { b[chunkAt(1)+5] ^= 0x80; return b }, nil, nil, ErrAuth, 1},
		{"flip chunk 2 tag", ptShort, func(b []byte) []byte { b[chunkAt(3)-1] ^= 1; return b }, nil, nil, ErrAuth, 2},
		{"flip final chunk tag", ptShort, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, nil, nil, ErrAuth, 3},
		{"reorder chunks 1 and 2", ptShort, func(b []byte) []byte {
			c1 := append([]byte(nil), b[chunkAt(1):chunkAt(2)]...)
			copy(b[chunkAt(1):], b[chunkAt(2):chunkAt(3)])
			copy(b[chunkAt(2):], c1)
			return b
		}, nil, nil, ErrAuth, 1},
		{"duplicate chunk 0", ptShort, func(b []byte) []byte {
			return append(b[:chunkAt(1)], b[chunkAt(0):]...)
		}, nil, nil, ErrAuth, 1},
		{"truncate at chunk boundary 2", ptShort, func(b []byte) []byte { return b[:chunkAt(2)] }, nil, nil, ErrTruncated, 1},
		{"truncate after salt", ptShort, func(b []byte) []byte { return b[:chunkAt(0)] }, nil, nil, ErrTruncated, 0},
		{"truncate inside salt", ptShort, func(b []byte) []byte { return b[:SaltSize-1] }, nil, nil, ErrTruncated, 0},
		{"truncate inside tag", ptShort, func(b []byte) []byte { return b[:chunkAt(1)+5] }, nil, nil, ErrTruncated, 1},
		{"truncate mid chunk", ptShort, func(b []byte) []byte { return b[:chunkAt(1)+40] }, nil, nil, ErrAuth, 1},
		{"drop final chunk", ptShort, func(b []byte) []byte { return b[:chunkAt(3)] }, nil, nil, ErrTruncated, 2},
		{"drop full final chunk", ptFull, func(b []byte) []byte { return b[:chunkAt(2)] }, nil, nil, ErrTruncated, 1},
		{"append after full final chunk", ptFull, func(b []byte) []byte { return append(b, 0) }, nil, nil, ErrTrailingData, 2},
		{"append chunk after full final chunk", ptFull, func(b []byte) []byte { return append(b, b[chunkAt(1):chunkAt(2)]...) }, nil, nil, ErrTrailingData, 2},
		// After a short final chunk the boundary is unknown: the extended
		// chunk fails authentication.
		{"append after short final chunk", ptShort, func(b []byte) []byte { return append(b, 1, 2, 3) }, nil, nil, ErrAuth, 3},
		{"wrong key", ptShort, nil, otherKey, nil, ErrAuth, 0},
		{"wrong header", ptShort, nil, nil, []byte("cmekctl test header v2"), ErrAuth, 0},
		{"empty header", ptShort, nil, nil, []byte{}, ErrAuth, 0},
		{"empty stream, wrong header", []byte{}, nil, nil, []byte("x"), ErrAuth, 0},
		{"empty stream, flip tag", []byte{}, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, nil, nil, ErrAuth, 0},
	}
	for _, c := range cases {
		for _, o := range []Options{{}, {Parallel: 2}, {Parallel: 3}, {chunksPerJob: 2}, {Parallel: 2, chunksPerJob: 3}} {
			t.Run(fmt.Sprintf("%s/P=%d/perjob=%d", c.name, o.Parallel, o.chunksPerJob), func(t *testing.T) {
				opt := vopt(v, o)
				opt.ChunkSize = cs
				ct := seal(t, c.pt, opt, 0)
				if c.mut != nil {
					ct = mutate(ct, c.mut)
				}
				key, header := testKey, testHeader
				if c.key != nil {
					key = c.key
				}
				if c.header != nil {
					header = c.header
				}
				got, err := open(ct, key, header, opt)
				if !errors.Is(err, c.want) {
					t.Fatalf("error %v, want %v", err, c.want)
				}
				if !strings.Contains(c.name, "inside salt") {
					if want := fmt.Sprintf("chunk %d", c.chunk); !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not name %s", err, want)
					}
				}
				// Exactly the chunks before the bad one were released.
				if good := c.pt[:c.chunk*cs]; !bytes.Equal(got, good) {
					t.Fatalf("released %d bytes, want the %d bytes before chunk %d", len(got), len(good), c.chunk)
				}
			})
		}
	}
}

// Without Close, the stream has no final chunk.
func TestNotClosed(t *testing.T) {
	const cs = 64
	for _, size := range []int{0, 10, cs, 3*cs + 1} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, testKey, testHeader, Options{ChunkSize: cs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(randBytes(t, size)); err != nil {
			t.Fatal(err)
		}
		_, err = open(buf.Bytes(), testKey, testHeader, Options{ChunkSize: cs})
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("size %d: unclosed stream: %v, want ErrTruncated", size, err)
		}
	}
}

// A reader with another chunk size fails authentication rather than
// returning wrong plaintext.
func TestWrongChunkSize(t *testing.T) {
	pt := randBytes(t, 1000)
	ct := seal(t, pt, Options{ChunkSize: 64}, 0)
	got, err := open(ct, testKey, testHeader, Options{ChunkSize: 128})
	if !errors.Is(err, ErrAuth) || len(got) != 0 {
		t.Fatalf("got %d bytes, %v; want nothing and ErrAuth", len(got), err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{ChunkSize: -1}, {ChunkSize: MaxChunkSize + 1}, {Parallel: MaxParallel + 1}} {
		if _, err := NewWriter(io.Discard, testKey, nil, o); err == nil {
			t.Errorf("NewWriter accepted %+v", o)
		}
		if _, err := NewReader(bytes.NewReader(make([]byte, 100)), testKey, nil, o); err == nil {
			t.Errorf("NewReader accepted %+v", o)
		}
	}
	for _, k := range [][]byte{nil, make([]byte, 16), make([]byte, 33)} {
		if _, err := NewWriter(io.Discard, k, nil, Options{}); err == nil {
			t.Errorf("NewWriter accepted a %d-byte key", len(k))
		}
		if _, err := NewReader(bytes.NewReader(make([]byte, 100)), k, nil, Options{}); err == nil {
			t.Errorf("NewReader accepted a %d-byte key", len(k))
		}
	}
}

func TestWriteAfterClose(t *testing.T) {
	w, err := NewWriter(io.Discard, testKey, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriterDstError(t *testing.T) {
	for _, p := range []int{0, 2} {
		// The salt and one chunk get through, then dst fails.
		w, err := NewWriter(&failWriter{n: 2}, testKey, nil, Options{ChunkSize: 64, Parallel: p})
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(make([]byte, 64*20))
		cerr := w.Close()
		if werr == nil && cerr == nil {
			t.Fatalf("P=%d: dst error not reported", p)
		}
		for _, err := range []error{werr, cerr} {
			if err != nil && !strings.Contains(err.Error(), "disk full") {
				t.Fatalf("P=%d: error %q does not carry the cause", p, err)
			}
		}
	}
}

func TestCounterOverflow(t *testing.T) {
	for _, v := range versions() {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testCounterOverflow(t, v) })
	}
}

func testCounterOverflow(t *testing.T, v int) {
	const cs = 16
	opt := vopt(v, Options{ChunkSize: cs})
	opt.Version = 0
	w, err := NewWriter(io.Discard, testKey, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	last := w.(*writer).s.maxCounter
	if v == V2 && last != 1<<32-1 {
		t.Fatalf("v2 allows chunk numbers up to %d, want 2^32-1 (2^32 GCM invocations with random nonces)", last)
	}
	w.(*writer).counter = last - 1
	_, err = w.Write(make([]byte, 3*cs))
	if !errors.Is(err, ErrCounterOverflow) {
		t.Fatalf("writer: %v, want ErrCounterOverflow", err)
	}
	// The last chunk number can still carry a final chunk.
	w, _ = NewWriter(io.Discard, testKey, nil, opt)
	w.(*writer).counter = last - 1
	if _, err := w.Write(make([]byte, 2*cs)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	ct := seal(t, make([]byte, 3*cs), opt, 0)
	r, err := NewReader(bytes.NewReader(ct), testKey, nil, vopt(v, Options{ChunkSize: cs}))
	if err != nil {
		t.Fatal(err)
	}
	r.(*reader).counter = last
	if _, err := io.ReadAll(r); !errors.Is(err, ErrCounterOverflow) {
		t.Fatalf("reader: %v, want ErrCounterOverflow", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReaderSrcError(t *testing.T) {
	ct := seal(t, randBytes(t, 1000), Options{ChunkSize: 64}, 0)
	boom := errors.New("connection reset")
	for _, p := range []int{0, 2} {
		src := io.MultiReader(bytes.NewReader(ct[:300]), errReader{boom})
		r, err := NewReader(src, testKey, testHeader, Options{ChunkSize: 64, Parallel: p})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(r); !errors.Is(err, boom) {
			t.Fatalf("P=%d: %v, want the source's error", p, err)
		}
	}
}
