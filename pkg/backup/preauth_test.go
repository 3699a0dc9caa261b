package backup

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/stream"
)

// preAuthCap is what a reader may allocate, in all, before chunk 0
// authenticates the header: the jobs in flight are bounded in bytes
// (pkg/stream maxInflight), and at the largest chunk size a header may name
// (stream.MaxChunkSize) the window is two jobs of one chunk each, an input
// and an output buffer apiece (16 MiB); 4 MiB more for the rest (header,
// cipher, workers).
const preAuthCap = 4*stream.MaxChunkSize + 4<<20

// TestHostileChunkSizePreAuthMemory: a forged backup header naming the
// largest chunk size, read with --parallel 64, must not make the reader
// allocate more than preAuthCap before chunk 0 fails to authenticate,
// whether it reads a pipe (sequential) or a file (positional), and however
// much data follows. Before the in-flight bound, the window was two jobs
// per worker of up to 16 chunks each: about 600 MB here.
func TestHostileChunkSizePreAuthMemory(t *testing.T) {
	bk, _ := loadKeys(t)
	const honest = 1 << 20 // seven digits, as stream.MaxChunkSize: the header keeps its length
	file := sealBackup(t, testHeader(), bk, bytes.Repeat([]byte{7}, 3*honest), stream.Options{ChunkSize: honest})
	forged := bytes.Replace(file, []byte(`"chunk_size":1048576`), []byte(`"chunk_size":4194304`), 1)
	if bytes.Equal(forged, file) {
		t.Fatal("no chunk_size field to forge")
	}
	// A gigabyte of data after the header: zeros from a pipe-like reader,
	// or a sparse file (nothing on disk).
	const tail = 1 << 30
	path := filepath.Join(t.TempDir(), "forged.backup")
	if err := os.WriteFile(path, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(len(forged))+tail); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) io.Reader
	}{
		{"sequential", func(*testing.T) io.Reader {
			return io.MultiReader(bytes.NewReader(forged), io.LimitReader(zeros{}, tail))
		}},
		{"positional", func(t *testing.T) io.Reader {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.open(t)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			h, err := ReadHeader(src)
			if err != nil {
				t.Fatal(err)
			}
			if h.ChunkSize != stream.MaxChunkSize {
				t.Fatalf("forged chunk size read as %d", h.ChunkSize)
			}
			r, err := NewReader(src, h, bk, stream.Options{Parallel: stream.MaxParallel})
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, r)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, stream.ErrAuth) || n != 0 {
				t.Fatalf("forged header: %d bytes, %v; want none and stream.ErrAuth", n, err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %.1f MiB before chunk 0 failed (cap %d MiB)", float64(alloc)/(1<<20), preAuthCap>>20)
			if alloc > preAuthCap {
				t.Fatalf("allocated %d bytes before chunk 0 authenticated, over the cap of %d", alloc, preAuthCap)
			}
		})
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
