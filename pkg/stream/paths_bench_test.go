package stream

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPaths measures each path cmekctl streams through, for 1 ..
// GOMAXPROCS workers, each beside its floor in the same run (docs/performance.md):
//
//	verify          NewReader(file) → io.Discard (backup verify)
//	decrypt-null    NewReader(file) → /dev/null (backup decrypt FILE /dev/null)
//	encrypt-null    file → NewWriter(/dev/null)
//	floor-open      the same file read by the same number of goroutines, each
//	                pread-ing its own jobs of chunks and opening them with
//	                AES-GCM: the work without the pipeline
//	floor-seal      the same for sealing the plaintext file
//	encrypt-file, decrypt-file   file to file (a fresh output file each time)
//	floor-copy      a plain copy of the file (io.Copy: copy_file_range, as cp)
//	floor-rw        a plain copy through the program's own memory, as any
//	                program that must see the bytes makes it: the same
//	                number of goroutines, each pread-ing the next job (the
//	                pipeline's job size) and pwrite-ing it at its offset of a
//	                fresh file; no cipher. Not a target: it shows what of
//	                the time over floor-copy is the copy through user space
//	                (the kernel's copy moves page references on the read side
//	                and copies each byte once; a program copies each twice)
//
// cpu-ms/op is the CPU time the whole process spent per op (user and
// system, all threads; Linux): what a path costs, whatever the machine's
// load does to its wall time.
//
// Files are on /dev/shm when it exists (tmpfs, as in the figures).
// Run: go test ./pkg/stream -run X -bench Paths -benchtime 5x
func BenchmarkPaths(b *testing.B) {
	pt, ct, size := benchFiles(b)
	for w := 1; w <= runtime.GOMAXPROCS(0); w++ {
		for _, p := range pathCases(pt, ct, w) {
			b.Run(fmt.Sprintf("%s/workers=%d", p.name, w), func(b *testing.B) {
				b.SetBytes(size)
				var c0 time.Duration
				if processCPU != nil {
					c0 = processCPU()
				}
				for range b.N {
					p.run(b)
				}
				if processCPU != nil {
					b.ReportMetric(float64((processCPU()-c0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
				}
			})
		}
	}
}

// pathCase is one path of BenchmarkPaths, or a floor (floor names the
// floor a path is compared with).
type pathCase struct {
	name, floor string
	run         func(b *testing.B)
}

func pathCases(pt, ct string, w int) []pathCase {
	opt := Options{Parallel: w}
	toNull := func(b *testing.B, fn func(*os.File)) {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer null.Close()
		fn(null)
	}
	return []pathCase{
		{"floor-open", "", func(b *testing.B) { floorGCM(b, ct, w, true) }},
		{"verify", "floor-open", func(b *testing.B) { decryptPath(b, ct, io.Discard, opt) }},
		{"decrypt-null", "floor-open", func(b *testing.B) {
			toNull(b, func(null *os.File) { decryptPath(b, ct, null, opt) })
		}},
		{"floor-seal", "", func(b *testing.B) { floorGCM(b, pt, w, false) }},
		{"encrypt-null", "floor-seal", func(b *testing.B) {
			toNull(b, func(null *os.File) { encryptPath(b, pt, null, opt) })
		}},
		{"floor-copy", "", func(b *testing.B) {
			src, dst := openPair(b, pt)
			if _, err := io.Copy(dst, src); err != nil {
				b.Fatal(err)
			}
			closePair(b, src, dst)
		}},
		{"floor-rw", "", func(b *testing.B) {
			src, dst := openPair(b, pt)
			floorRW(b, src, dst, w)
			closePair(b, src, dst)
		}},
		{"encrypt-file", "floor-copy", func(b *testing.B) {
			src, dst := openPair(b, pt)
			encryptPath(b, pt, dst, opt)
			closePair(b, src, dst)
		}},
		{"decrypt-file", "floor-copy", func(b *testing.B) {
			src, dst := openPair(b, pt)
			decryptPath(b, ct, dst, opt)
			closePair(b, src, dst)
		}},
	}
}

const benchPathSize = 64 << 20

// processCPU is the CPU time of the whole process, where the system says.
var processCPU func() time.Duration

var benchOnce struct {
	sync.Once
	dir, pt, ct string
}

// benchFiles writes 64 MiB of plaintext and its stream once per process.
func benchFiles(b testing.TB) (pt, ct string, size int64) {
	benchOnce.Do(func() {
		base := ""
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			base = "/dev/shm"
		}
		dir, err := os.MkdirTemp(base, "cmekctl-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchOnce.dir = dir
		benchOnce.pt, benchOnce.ct = filepath.Join(dir, "pt"), filepath.Join(dir, "ct")
		f, err := os.Create(benchOnce.pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(f, io.LimitReader(newPattern(), benchPathSize)); err != nil {
			b.Fatal(err)
		}
		f.Close()
		out, err := os.Create(benchOnce.ct)
		if err != nil {
			b.Fatal(err)
		}
		encryptPath(b, benchOnce.pt, out, Options{Parallel: 2})
		out.Close()
	})
	b.Cleanup(func() {}) // the files live until the process ends (os.RemoveAll below)
	return benchOnce.pt, benchOnce.ct, benchPathSize
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchOnce.dir != "" {
		os.RemoveAll(benchOnce.dir)
	}
	os.Exit(code)
}

func encryptPath(b testing.TB, pt string, dst io.Writer, opt Options) {
	src, err := os.Open(pt)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	w, err := NewWriter(dst, testKey, testHeader, opt)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(w, src); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

func decryptPath(b *testing.B, ct string, dst io.Writer, opt Options) {
	src, err := os.Open(ct)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	r, err := NewReader(src, testKey, testHeader, opt)
	if err != nil {
		b.Fatal(err)
	}
	if n, err := io.Copy(dst, r); err != nil || n != benchPathSize {
		b.Fatalf("decrypt: %d, %v", n, err)
	}
}

// openPair opens in and a fresh output file beside it.
func openPair(b *testing.B, in string) (*os.File, *os.File) {
	src, err := os.Open(in)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := os.Create(in + ".out")
	if err != nil {
		b.Fatal(err)
	}
	return src, dst
}

func closePair(b *testing.B, src, dst *os.File) {
	src.Close()
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
	os.Remove(dst.Name())
}

// floorGCM is the floor of a path: workers goroutines, each taking the
// next job of as many chunks as the pipeline's jobs for that many workers
// carry (Options.batch: one chunk for one worker, 4 for 2 to 8, fewer past
// that), pread-ing it from path at its offset (into buffers kept from
// earlier runs, as a driven stream's are) and running
// AES-GCM over its chunks (open: the stream's chunks, authenticated as the
// stream's reader would; seal: 64 KiB plaintext chunks). No pipeline, no
// ordering, no output.
func floorGCM(b *testing.B, path string, workers int, open bool) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	salt := make([]byte, SaltSize)
	if _, err := f.ReadAt(salt, 0); err != nil {
		b.Fatal(err)
	}
	s, err := newSuite(V2, testKey, salt, testHeader, DefaultChunkSize)
	if err != nil {
		b.Fatal(err)
	}
	perJob := Options{Parallel: workers}.batch(DefaultChunkSize)
	unit, base := s.chunk, int64(0)
	if open {
		unit, base = s.stride(), SaltSize
	}
	body := fi.Size() - base
	chunks := (body + int64(unit) - 1) / int64(unit)
	jobs := (chunks + int64(perJob) - 1) / int64(perJob)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var sc scratch
			// Buffers kept from earlier runs, as driven streams keep theirs.
			buf, out := buffer(perJob*s.stride()), buffer(perJob*s.stride())
			defer keep(buf)
			defer keep(out)
			for {
				k := next.Add(1) - 1
				if k >= jobs {
					return
				}
				off := base + k*int64(perJob*unit)
				n, _ := f.ReadAt(buf[:min(int64(perJob*unit), fi.Size()-off)], off)
				for i := 0; i*unit < n; i++ {
					c := uint64(k*int64(perJob)) + uint64(i)
					chunk := buf[i*unit : min(n, (i+1)*unit)]
					last := int64(c) == chunks-1
					if open {
						if _, err := s.open(&sc, out[i*s.chunk:], chunk, c, last); err != nil {
							b.Errorf("floor: chunk %d: %v", c, err)
							return
						}
					} else {
						s.seal(&sc, out[i*s.stride():], chunk, c, last)
					}
				}
			}
		})
	}
	wg.Wait()
}

// floorRW copies src to dst with workers goroutines, each pread-ing the next
// job of the pipeline's job size for that many workers into a buffer of its
// own and pwrite-ing it at the same offset: floor-rw.
func floorRW(b *testing.B, src, dst *os.File, workers int) {
	fi, err := src.Stat()
	if err != nil {
		b.Fatal(err)
	}
	unit := int64(Options{Parallel: workers}.batch(DefaultChunkSize) * DefaultChunkSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := buffer(int(unit))
			defer keep(buf)
			for {
				off := (next.Add(1) - 1) * unit
				if off >= fi.Size() {
					return
				}
				n, err := src.ReadAt(buf[:min(unit, fi.Size()-off)], off)
				if err != nil && err != io.EOF {
					b.Error(err)
					return
				}
				if _, err := dst.WriteAt(buf[:n], off); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
