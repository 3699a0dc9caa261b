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
