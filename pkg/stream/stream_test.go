package stream

import (
	"bytes"
	"crypto/fips140"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var (
	testKey    = bytes.Repeat([]byte{0x42}, KeySize)
	otherKey   = bytes.Repeat([]byte{0x43}, KeySize)
	testHeader = []byte("cmekctl test header v1")
)

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// versions are the formats every behaviour test runs against: the one
// written today and the one still read. FIPS 140-only mode cannot write (or
// read) V1, so there only V2 runs (TestFIPSRefusesV1 covers V1).
func versions() []int {
	if fips140.Enforced() {
		return []int{V2}
	}
	return []int{V1, V2}
}

// vopt returns o set to write (in tests) and read format v.
func vopt(v int, o Options) Options {
	o.Version = v
	o.writeV1 = v == V1
	return o
}

// over is format v's wire expansion of a chunk.
func over(v int) int {
	if v == V1 {
		return OverheadV1
	}
	return Overhead
}

// seal encrypts pt, writing it in pieces of writeSize bytes (0: one write),
// in format V1 when opt says so (writeV1), else V2.
func seal(t testing.TB, pt []byte, opt Options, writeSize int) []byte {
	t.Helper()
	var buf bytes.Buffer
	opt.Version = 0
	w, err := NewWriter(&buf, testKey, testHeader, opt)
	if err != nil {
		t.Fatal(err)
	}
	if writeSize <= 0 {
		writeSize = len(pt) + 1
	}
	for rest := pt; len(rest) > 0; {
		k := min(writeSize, len(rest))
		n, err := w.Write(rest[:k])
		if err != nil || n != k {
			t.Fatalf("write: %d, %v", n, err)
		}
		rest = rest[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// open reads the whole stream and returns what the reader released before
// the error (nil error on a clean io.EOF).
func open(ct []byte, key, header []byte, opt Options) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(ct), key, header, opt)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	buf := make([]byte, 1000) // not a multiple of any chunk size used here
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			// The error is sticky.
			if n2, err2 := r.Read(buf); n2 != 0 || err2 == nil || err2 == io.EOF {
				return out.Bytes(), fmt.Errorf("read after error returned %d, %v", n2, err2)
			}
			return out.Bytes(), err
		}
	}
}

func wireSize(n, cs, over int) int {
	chunks := (n + cs - 1) / cs
	if chunks == 0 {
		chunks = 1
	}
	return SaltSize + n + chunks*over
}

var parallels = []int{0, 1, 2, 3, 8}

func TestRoundTrip(t *testing.T) {
	for _, cs := range []int{DefaultChunkSize, 64, 1} {
		sizes := []int{0, 1, cs - 1, cs, cs + 1, 2 * cs, 7*cs + 3, 17 * cs}
		for _, size := range sizes {
			if size < 0 || (cs == 1 && size > 40) {
				continue
			}
			pt := randBytes(t, size)
			for _, wp := range parallels {
				for _, v := range versions() {
					for _, rp := range []int{0, 2} {
						name := fmt.Sprintf("v%d/chunk=%d/size=%d/writeP=%d/readP=%d", v, cs, size, wp, rp)
						t.Run(name, func(t *testing.T) {
							ct := seal(t, pt, vopt(v, Options{ChunkSize: cs, Parallel: wp}), 0)
							if got, want := len(ct), wireSize(size, cs, over(v)); got != want {
								t.Fatalf("wire size %d, want %d", got, want)
							}
							got, err := open(ct, testKey, testHeader, vopt(v, Options{ChunkSize: cs, Parallel: rp}))
							if err != nil {
								t.Fatal(err)
							}
							if !bytes.Equal(got, pt) {
								t.Fatalf("round trip: got %d bytes, want %d", len(got), len(pt))
							}
						})
					}
				}
			}
		}
	}
}

// Small writes, and reads through readers that return little at a time.
func TestRoundTripPieces(t *testing.T) {
	const cs = 100
	pt := randBytes(t, 10*cs+37)
	for _, p := range []int{0, 2} {
		for _, ws := range []int{1, 7, cs, cs + 1, 3 * cs} {
			ct := seal(t, pt, Options{ChunkSize: cs, Parallel: p}, ws)
			for name, wrap := range map[string]func(io.Reader) io.Reader{
				"onebyte": iotest.OneByteReader,
				"half":    iotest.HalfReader,
				"dataerr": iotest.DataErrReader,
			} {
				r, err := NewReader(wrap(bytes.NewReader(ct)), testKey, testHeader, Options{ChunkSize: cs, Parallel: p})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(iotest.OneByteReader(r))
				if err != nil {
					t.Fatalf("P=%d write=%d %s: %v", p, ws, name, err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("P=%d write=%d %s: round trip mismatch", p, ws, name)
				}
			}
		}
	}
}

// The wire format does not depend on Parallel. Version 2's nonces are random,
// so the bytes are compared in version 1 (same framing and jobs), and
// version 2 streams from every Parallel read back (TestRoundTrip).
func TestParallelSameBytes(t *testing.T) {
	if fips140.Enforced() {
		t.Skip("FIPS 140-only mode writes no V1 stream")
	}
	const cs = 128
	salt := randBytes(t, SaltSize)
	for _, size := range []int{0, 1, cs, 5*cs + 1, 64 * cs} {
		pt := randBytes(t, size)
		var want []byte
		for i := range 2 * len(parallels) {
			// Each Parallel with its own jobs, and with jobs of 3 chunks.
			p, per := parallels[i/2], 3*(i%2)
			var buf bytes.Buffer
			w, err := newWriter(&buf, testKey, testHeader, salt, cs, Options{ChunkSize: cs, Parallel: p, chunksPerJob: per, writeV1: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(pt); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = buf.Bytes()
				continue
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("size %d: Parallel=%d, %d chunks per job, wrote different bytes from serial", size, p, per)
			}
		}
	}
}

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

// FuzzReader fuzzes the version 2 reader (the format written today);
// FuzzReaderV1 the version 1 reader. Seeds: streams of every shape, cut,
// extended, and the test vectors (testdata/vectors.json).
func FuzzReader(f *testing.F)   { fuzzReader(f, V2) }
func FuzzReaderV1(f *testing.F) { fuzzReader(f, V1) }

func fuzzReader(f *testing.F, v int) {
	if v == V1 && fips140.Enforced() {
		f.Skip("FIPS 140-only mode reads no V1 stream")
	}
	const cs = 32
	for _, n := range []int{0, 1, cs - 1, cs, cs + 1, 3 * cs, 4*cs + 5} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		ct := seal(f, pt, vopt(v, Options{ChunkSize: cs}), 0)
		f.Add(ct)
		f.Add(ct[:len(ct)-1])
		f.Add(append(append([]byte(nil), ct...), 0))
		if len(ct) > SaltSize+cs+over(v) {
			f.Add(ct[:SaltSize+cs+over(v)])
		}
	}
	// The fuzzed reads are serial, so that coverage does not depend on
	// which goroutine opened a job (flapping coverage stalls the fuzzer in
	// minimization): one chunk per job, and jobs of 3 chunks, which take the
	// batching paths of parallel mode in a deterministic order.
	// TestParallelMatchesSerial checks parallel mode against serial mode.
	f.Fuzz(func(t *testing.T, ct []byte) {
		serial, serr := open(ct, testKey, testHeader, vopt(v, Options{ChunkSize: cs}))
		batched, berr := open(ct, testKey, testHeader, vopt(v, Options{ChunkSize: cs, chunksPerJob: 3}))
		if !sameResult(serial, serr, batched, berr) {
			t.Fatalf("one chunk per job: %d bytes, %v; 3 per job: %d bytes, %v", len(serial), serr, len(batched), berr)
		}
		if serr != nil {
			if !errors.Is(serr, ErrAuth) && !errors.Is(serr, ErrTruncated) && !errors.Is(serr, ErrTrailingData) {
				t.Fatalf("unclassified error %v", serr)
			}
			if len(serial)%cs != 0 {
				t.Fatalf("released %d bytes: a partial chunk before an error", len(serial))
			}
			return
		}
		if got, want := len(ct), wireSize(len(serial), cs, over(v)); got != want {
			t.Fatalf("accepted %d bytes of stream for %d bytes of plaintext, want %d", got, len(serial), want)
		}
	})
}

// sameResult: two reads of one stream released the same bytes and ended the
// same way.
func sameResult(a []byte, aerr error, b []byte, berr error) bool {
	if !bytes.Equal(a, b) || (aerr == nil) != (berr == nil) {
		return false
	}
	return aerr == nil || aerr.Error() == berr.Error()
}

// TestParallelMatchesSerial: on streams damaged at random (truncated, bytes
// flipped, bytes appended), parallel reads release exactly what a serial read
// releases and fail with the same error. It is FuzzReader's check for
// parallel mode, with a seeded source instead of the fuzzer (whose coverage
// guidance the scheduling of goroutines would make flap).
func TestParallelMatchesSerial(t *testing.T) {
	const cs = 32
	seed := time.Now().UnixNano()
	rng := mrand.New(mrand.NewPCG(uint64(seed), 1))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		vs := versions()
		v := vs[i%len(vs)]
		size := rng.IntN(40 * cs)
		ct := seal(t, randBytes(t, size), vopt(v, Options{ChunkSize: cs}), 0)
		ct = ct[:len(ct)-rng.IntN(min(len(ct), 2*cs+over(v))+1)*rng.IntN(2)]
		for k := rng.IntN(3); k > 0 && len(ct) > 0; k-- {
			ct[rng.IntN(len(ct))] ^= byte(1 + rng.IntN(255))
		}
		if rng.IntN(4) == 0 {
			ct = append(ct, randBytes(t, rng.IntN(3*cs))...)
		}
		serial, serr := open(ct, testKey, testHeader, vopt(v, Options{ChunkSize: cs}))
		for _, p := range []int{2, 3, 8} {
			for _, per := range []int{0, 1, 2, 5} {
				opt := vopt(v, Options{ChunkSize: cs, Parallel: p, chunksPerJob: per})
				got, err := open(ct, testKey, testHeader, opt)
				if !sameResult(serial, serr, got, err) {
					t.Fatalf("seed %d, case %d, P=%d, %d chunks per job: serial %d bytes, %v; parallel %d bytes, %v",
						seed, i, p, per, len(serial), serr, len(got), err)
				}
			}
		}
	}
}

// Workers stop when a stream ends, fails, or is abandoned half-way.
func TestNoGoroutineLeak(t *testing.T) {
	const cs = 64
	ct := seal(t, randBytes(t, 100*cs), Options{ChunkSize: cs}, 0)
	before := runtime.NumGoroutine()
	for range 10 {
		// Finished.
		if _, err := open(ct, testKey, testHeader, Options{ChunkSize: cs, Parallel: 3}); err != nil {
			t.Fatal(err)
		}
		// Failed.
		bad := append([]byte(nil), ct...)
		bad[len(bad)/2] ^= 1
		if _, err := open(bad, testKey, testHeader, Options{ChunkSize: cs, Parallel: 3}); !errors.Is(err, ErrAuth) {
			t.Fatal(err)
		}
		// Abandoned: a reader read once, a writer never closed.
		r, err := NewReader(bytes.NewReader(ct), testKey, testHeader, Options{ChunkSize: cs, Parallel: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(io.Discard, testKey, testHeader, Options{ChunkSize: cs, Parallel: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, 10*cs)); err != nil {
			t.Fatal(err)
		}
	}
	var now int
	for range 100 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
	}
	t.Fatalf("%d goroutines before, %d after", before, now)
}
