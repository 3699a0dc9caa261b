package stream

// Fuzz targets for the reader.

import (
	"bytes"
	"crypto/fips140"
	"errors"
	"testing"
)

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
