package keyring_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// Benchmarks of the data plane against raw AES-256-GCM, in one run:
//
//	go test -run xxx -bench . -benchmem -count 5 ./pkg/keyring/

const benchStream = 16 << 20 // bytes per Seal/Open op

func benchSealer(b *testing.B) *keyring.Sealer {
	b.Helper()
	k := newKMS(b)
	c := newCluster(b, k, "cluster-bench", 1, 1)
	s, err := keyring.OpenSealer(context.Background(), k.env(), keyring.Store{Dir: c.dirs()[0]})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

// BenchmarkRawGCMSeal is the baseline: the same 16 MiB stream from the same
// generator, AES-256-GCM sealed in 64 KiB chunks into a reused buffer and
// written to io.Discard: everything the data plane does minus its framing,
// key derivation and pipeline.
func BenchmarkRawGCMSeal(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	chunk := make([]byte, stream.DefaultChunkSize)
	dst := make([]byte, 0, len(chunk)+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	b.SetBytes(benchStream)
	for b.Loop() {
		src := &gen{n: benchStream}
		for i := 0; ; i++ {
			n, err := io.ReadFull(src, chunk)
			if n == 0 {
				break
			}
			nonce[0], nonce[1], nonce[2] = byte(i), byte(i>>8), byte(i>>16)
			dst = aead.Seal(dst[:0], nonce, chunk[:n], nil)
			io.Discard.Write(dst)
			if err != nil {
				break
			}
		}
	}
}

// BenchmarkRawGCMOpen is the baseline for Open: the chunks of a 16 MiB
// stream opened into a reused buffer and written to io.Discard.
func BenchmarkRawGCMOpen(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	var sealed [][]byte
	chunk := make([]byte, stream.DefaultChunkSize)
	src := &gen{n: benchStream}
	for i := 0; ; i++ {
		n, _ := io.ReadFull(src, chunk)
		if n == 0 {
			break
		}
		nonce[0], nonce[1], nonce[2] = byte(i), byte(i>>8), byte(i>>16)
		sealed = append(sealed, aead.Seal(nil, nonce, chunk[:n], nil))
	}
	dst := make([]byte, 0, len(chunk))
	b.SetBytes(benchStream)
	for b.Loop() {
		for i, c := range sealed {
			nonce[0], nonce[1], nonce[2] = byte(i), byte(i>>8), byte(i>>16)
			var err error
			if dst, err = aead.Open(dst[:0], nonce, c, nil); err != nil {
				b.Fatal(err)
			}
			io.Discard.Write(dst)
		}
	}
}

// BenchmarkDataSeal: Sealer.Seal of a 16 MiB stream from a generator to
// io.Discard.
func BenchmarkDataSeal(b *testing.B) {
	s := benchSealer(b)
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			b.SetBytes(benchStream)
			for b.Loop() {
				if _, err := s.Seal(io.Discard, &gen{n: benchStream}, stream.Options{Parallel: par}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDataOpen: Sealer.Open of a sealed 16 MiB stream to io.Discard.
func BenchmarkDataOpen(b *testing.B) {
	s := benchSealer(b)
	var sealed bytes.Buffer
	if _, err := s.Seal(&sealed, &gen{n: benchStream}, stream.Options{}); err != nil {
		b.Fatal(err)
	}
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			b.SetBytes(benchStream)
			for b.Loop() {
				if _, err := s.Open(io.Discard, bytes.NewReader(sealed.Bytes()), stream.Options{Parallel: par}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// peakHeap samples HeapInuse every millisecond until stop is called, and
// returns the peak above the level at the start.
func peakHeap() (stop func() (peak uint64)) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var max atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > max.Load() {
				max.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		// A last sample: a short stream may end between two ticks.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > max.Load() {
			max.Store(ms.HeapInuse)
		}
		if max.Load() < base {
			return 0
		}
		return max.Load() - base
	}
}

// BenchmarkDataMemory: the heap used while sealing a 1 MiB and a 1 GiB
// stream to io.Discard, and while sealing one through a pipe into Open: it
// must not grow with the stream (the 1 GiB stream is never held in memory).
// peak-heap-MiB is HeapInuse above the level before one stream, sampled
// every millisecond during that one stream (measured once, before the timed
// loop, so that garbage of earlier iterations does not count); B/op from
// -benchmem must not grow with the stream either.
func BenchmarkDataMemory(b *testing.B) {
	s := benchSealer(b)
	sealOnly := func(size int64) error {
		_, err := s.Seal(io.Discard, &gen{n: size}, stream.Options{Parallel: 2})
		return err
	}
	sealOpen := func(size int64) error {
		pr, pw := io.Pipe()
		go func() {
			_, err := s.Seal(pw, &gen{n: size}, stream.Options{Parallel: 2})
			pw.CloseWithError(err)
		}()
		_, err := s.Open(io.Discard, pr, stream.Options{Parallel: 2})
		return err
	}
	for _, size := range []int64{1 << 20, 1 << 30} {
		for _, c := range []struct {
			name string
			fn   func(int64) error
		}{{"seal", sealOnly}, {"seal+open", sealOpen}} {
			b.Run(fmt.Sprintf("%s/%dMiB", c.name, size>>20), func(b *testing.B) {
				stop := peakHeap()
				if err := c.fn(size); err != nil {
					b.Fatal(err)
				}
				peak := stop()
				b.SetBytes(size)
				b.ResetTimer()
				for b.Loop() {
					if err := c.fn(size); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			})
		}
	}
}
