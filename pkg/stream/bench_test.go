package stream

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// benchSize is the stream length of the throughput benchmarks: large enough
// that per-stream costs (salt, HKDF, final chunk) do not show.
const benchSize = 64 << 20

// patternReader is a cheap endless source: it copies a fixed pattern.
type patternReader struct{ pat []byte }

func newPattern() *patternReader {
	p := make([]byte, DefaultChunkSize)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return &patternReader{pat: p}
}

func (r *patternReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r.pat)
	}
	return n, nil
}

// rawGCM is AES-256-GCM under the test key, with no stream around it.
func rawGCM(tb testing.TB) cipher.AEAD {
	tb.Helper()
	block, err := aes.NewCipher(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	return aead
}

// BenchmarkRawGCMSeal is the baseline: AES-256-GCM Seal over 64 KiB buffers,
// in place, no I/O, no framing.
func BenchmarkRawGCMSeal(b *testing.B) {
	aead := rawGCM(b)
	buf := make([]byte, DefaultChunkSize, DefaultChunkSize+Overhead)
	var n [nonceSize]byte
	b.SetBytes(DefaultChunkSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n[10] = byte(i)
		aead.Seal(buf[:0], n[:], buf[:DefaultChunkSize], nil)
	}
}

// BenchmarkRawGCMOpen is the same baseline for decryption: AES-256-GCM Open
// over 64 KiB chunks, out of place, no I/O.
func BenchmarkRawGCMOpen(b *testing.B) {
	aead := rawGCM(b)
	var n [nonceSize]byte
	ct := aead.Seal(nil, n[:], make([]byte, DefaultChunkSize), nil)
	out := make([]byte, 0, DefaultChunkSize)
	b.SetBytes(DefaultChunkSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := aead.Open(out[:0], n[:], ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncrypt(b *testing.B, parallel int) {
	src := newPattern()
	opt := Options{Parallel: parallel}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := NewWriter(io.Discard, testKey, testHeader, opt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, io.LimitReader(src, benchSize)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStreamEncrypt(b *testing.B)         { benchEncrypt(b, 1) }
func BenchmarkStreamEncryptParallel(b *testing.B) { benchEncrypt(b, 2) }
func BenchmarkStreamDecrypt(b *testing.B)         { benchDecrypt(b, 1) }
func BenchmarkStreamDecryptParallel(b *testing.B) { benchDecrypt(b, 2) }

func benchDecrypt(b *testing.B, parallel int) {
	var ct bytes.Buffer
	w, err := NewWriter(&ct, testKey, testHeader, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(w, io.LimitReader(newPattern(), benchSize)); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	opt := Options{Parallel: parallel}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := NewReader(bytes.NewReader(ct.Bytes()), testKey, testHeader, opt)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != benchSize {
			b.Fatalf("decrypt: %d bytes, %v", n, err)
		}
	}
}

// heapWatcher is a dst that samples the heap every few MiB written and keeps
// the peak HeapInuse.
type heapWatcher struct {
	w       io.Writer
	since   int
	peak    uint64
	samples int
}

func (h *heapWatcher) Write(p []byte) (int, error) {
	h.since += len(p)
	if h.since >= 32<<20 || h.samples == 0 {
		h.sample()
	}
	return h.w.Write(p)
}

func (h *heapWatcher) sample() {
	h.since = 0
	h.samples++
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h.peak = max(h.peak, m.HeapInuse)
}

// roundTripHeap encrypts size bytes and decrypts them again through a pipe,
// to io.Discard, and returns the peak heap in use seen on the way and the
// bytes allocated in total.
func roundTripHeap(tb testing.TB, size int64, parallel int) (peak, alloc uint64) {
	tb.Helper()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	opt := Options{Parallel: parallel}
	pr, pw := io.Pipe()
	go func() {
		w, err := NewWriter(pw, testKey, testHeader, opt)
		if err == nil {
			_, err = io.Copy(w, io.LimitReader(newPattern(), size))
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	r, err := NewReader(pr, testKey, testHeader, opt)
	if err != nil {
		tb.Fatal(err)
	}
	h := &heapWatcher{w: io.Discard}
	n, err := io.Copy(h, r)
	if err != nil || n != size {
		tb.Fatalf("round trip: %d bytes, %v", n, err)
	}
	h.sample()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return h.peak - min(h.peak, before.HeapInuse), after.TotalAlloc - before.TotalAlloc
}

// TestMemoryFlat: a 1 GiB stream allocates and holds no more than a 32 MiB
// stream (long enough to fill the window of jobs in flight), give or take a
// few chunks (pipe and pool bookkeeping).
func TestMemoryFlat(t *testing.T) {
	for _, p := range []int{1, 2} {
		small, smallAlloc := roundTripHeap(t, 32<<20, p)
		large, largeAlloc := roundTripHeap(t, 1<<30, p)
		t.Logf("Parallel=%d: peak heap in use above baseline: 32 MiB stream %d KiB, 1 GiB stream %d KiB; allocated %d KiB vs %d KiB",
			p, small>>10, large>>10, smallAlloc>>10, largeAlloc>>10)
		const slack = 4 << 20
		if large > small+slack {
			t.Errorf("Parallel=%d: 1 GiB stream peaked at %d KiB of heap, 32 MiB stream at %d KiB", p, large>>10, small>>10)
		}
		if largeAlloc > smallAlloc+slack {
			t.Errorf("Parallel=%d: 1 GiB stream allocated %d KiB, 32 MiB stream %d KiB: allocation grows with the stream", p, largeAlloc>>10, smallAlloc>>10)
		}
	}
}

// BenchmarkStreamMemory reports the peak heap of an encrypt+decrypt round
// trip for a 1 MiB and a 1 GiB stream (metric peak-heap-KiB).
func BenchmarkStreamMemory(b *testing.B) {
	for _, size := range []int64{1 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			var peak, alloc uint64
			for i := 0; i < b.N; i++ {
				p, a := roundTripHeap(b, size, 1)
				peak, alloc = max(peak, p), max(alloc, a)
			}
			b.SetBytes(size)
			b.ReportMetric(float64(peak)/1024, "peak-heap-KiB")
			b.ReportMetric(float64(alloc)/1024, "alloc-KiB/op")
		})
	}
}
