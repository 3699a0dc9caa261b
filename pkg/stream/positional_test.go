package stream

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// memFile is a regular file in memory: what the positional reader sees of an
// *os.File (ReadAt, Seek, Stat), without the disk, so that fuzzing stays
// fast. grow is appended to what Stat reports once the file has been read
// to its end (a file that grows while it is read).
type memFile struct {
	*bytes.Reader
	size    int64
	grow    int64
	reached bool
}

func newMemFile(b []byte) *memFile { return &memFile{Reader: bytes.NewReader(b), size: int64(len(b))} }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) >= m.size {
		m.reached = true
	}
	return m.Reader.ReadAt(p, off)
}

func (m *memFile) Stat() (fs.FileInfo, error) {
	size := m.size
	if m.reached {
		size += m.grow
	}
	return memInfo(size), nil
}

type memInfo int64

func (i memInfo) Name() string       { return "mem" }
func (i memInfo) Size() int64        { return int64(i) }
func (i memInfo) Mode() fs.FileMode  { return 0o600 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

// prefix stands for a container's header before the stream: the positional
// reader must count offsets from where src is positioned, not from 0.
var prefix = []byte("CMEKBAK\x00 a header the stream does not own")

// openAt reads ct positionally into a writer, from a memFile positioned
// after prefix.
func openAt(t testing.TB, ct []byte, opt Options) ([]byte, error) {
	var out bytes.Buffer
	_, err := copyAt(t, ct, opt, &out)
	return out.Bytes(), err
}

// classOf names the error class, for comparisons across readers.
func classOf(err error) string {
	for name, e := range map[string]error{"auth": ErrAuth, "truncated": ErrTruncated, "trailing": ErrTrailingData, "overflow": ErrCounterOverflow} {
		if errors.Is(err, e) {
			return name
		}
	}
	if err == nil {
		return "ok"
	}
	return "other: " + err.Error()
}

// samePositional: the positional read released the same plaintext as the
// sequential one and failed the same way, with the same message, whether
// the plaintext goes to a writer (in order), to io.Discard, or to a regular
// file written at offsets (which may also hold authenticated plaintext from
// after a failing chunk).
func samePositional(t testing.TB, ct []byte, v int, opt Options) {
	t.Helper()
	want, werr := open(ct, testKey, testHeader, vopt(v, Options{ChunkSize: opt.ChunkSize}))
	same := func(sink string, n int, got []byte, err error) {
		t.Helper()
		if n != len(want) || !bytes.Equal(got, want) || classOf(err) != classOf(werr) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("v%d %+v: sequential %d bytes, %v; positional to %s %d bytes (%d counted), %v", v, opt, len(want), werr, sink, len(got), n, err)
		}
	}
	var out bytes.Buffer
	n, err := copyAt(t, ct, vopt(v, opt), &out)
	same("a writer", int(n), out.Bytes(), err)
	n, err = copyAt(t, ct, vopt(v, opt), io.Discard)
	same("io.Discard", int(n), want, err)
	file := &memOut{}
	n, err = copyAt(t, ct, vopt(v, opt), file)
	got := file.b[:min(len(file.b), len(want))]
	if err == nil && len(file.b) != len(want) {
		got = file.b
	}
	same("a file", int(n), got, err)
}

// copyAt decrypts ct positionally into dst with io.Copy, from a memFile
// positioned after prefix.
func copyAt(t testing.TB, ct []byte, opt Options, dst io.Writer) (int64, error) {
	f := newMemFile(append(append([]byte(nil), prefix...), ct...))
	if _, err := f.Seek(int64(len(prefix)), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(f, testKey, testHeader, opt)
	if err != nil {
		return 0, err
	}
	if r.(*reader).ra == nil {
		t.Fatal("a regular file was read sequentially")
	}
	return io.Copy(dst, r)
}

func TestPositionalRoundTrip(t *testing.T) {
	for _, v := range versions() {
		for _, cs := range []int{1, 64, DefaultChunkSize} {
			for _, size := range []int{0, 1, cs, cs + 1, 17*cs + 3, 40 * cs} {
				if cs == 1 && size > 40 {
					continue
				}
				pt := randBytes(t, size)
				ct := seal(t, pt, vopt(v, Options{ChunkSize: cs}), 0)
				for _, p := range []int{0, 2, 5} {
					got, err := openAt(t, ct, vopt(v, Options{ChunkSize: cs, Parallel: p}))
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("v%d chunk %d size %d P=%d: %d bytes, %v", v, cs, size, p, len(got), err)
					}
				}
			}
		}
	}
}

// TestPositionalMatchesSequential: for truncations at every length,
// extensions, chunk swaps and bit flips of small streams, the positional
// reader gives what the sequential reader gives.
func TestPositionalMatchesSequential(t *testing.T) {
	const cs = 32
	for _, v := range versions() {
		stride := cs + over(v)
		for _, size := range []int{0, 5, cs, 3 * cs, 3*cs + 7} {
			ct := seal(t, randBytes(t, size), vopt(v, Options{ChunkSize: cs}), 0)
			opts := []Options{{ChunkSize: cs}, {ChunkSize: cs, chunksPerJob: 2}, {ChunkSize: cs, Parallel: 3, chunksPerJob: 2}}
			for _, o := range opts {
				for cut := 0; cut <= len(ct); cut++ {
					samePositional(t, ct[:cut], v, o)
				}
				for _, extra := range [][]byte{{0}, make([]byte, over(v)), ct[SaltSize : SaltSize+min(stride, len(ct)-SaltSize)]} {
					samePositional(t, append(append([]byte(nil), ct...), extra...), v, o)
				}
				chunks := (len(ct) - SaltSize + stride - 1) / stride
				for a := range chunks {
					for b := a + 1; b < chunks; b++ {
						sw := append([]byte(nil), ct...)
						ca := append([]byte(nil), sw[SaltSize+a*stride:SaltSize+(a+1)*stride]...)
						cb := append([]byte(nil), sw[SaltSize+b*stride:min(len(sw), SaltSize+(b+1)*stride)]...)
						sw = append(append(append(append(sw[:SaltSize+a*stride:SaltSize+a*stride], cb...), sw[SaltSize+(a+1)*stride:SaltSize+b*stride]...), ca...), sw[min(len(sw), SaltSize+(b+1)*stride):]...)
						samePositional(t, sw, v, o)
					}
				}
				for i := 0; i < len(ct); i += 3 {
					fl := append([]byte(nil), ct...)
					fl[i] ^= 0x10
					samePositional(t, fl, v, o)
				}
			}
		}
	}
}

// FuzzPositional fuzzes the positional reader against the sequential one,
// through every sink (samePositional).
func FuzzPositional(f *testing.F) {
	const cs = 32
	for _, n := range []int{0, 1, cs, 3 * cs, 4*cs + 5} {
		ct := seal(f, bytes.Repeat([]byte{byte(n)}, n), Options{ChunkSize: cs}, 0)
		f.Add(ct, uint8(0))
		f.Add(ct[:len(ct)-1], uint8(1))
		f.Add(append(append([]byte(nil), ct...), 0), uint8(2))
	}
	f.Fuzz(func(t *testing.T, ct []byte, per uint8) {
		// per's low bits: chunks per job; the next: workers (0..3), so that
		// every driven mode is fuzzed.
		samePositional(t, ct, V2, Options{ChunkSize: cs, chunksPerJob: int(per%4) + 1, Parallel: int(per>>2) % 4})
	})
}

// TestPositionalRandom: as TestParallelMatchesSerial, with parallel
// positional reads.
func TestPositionalRandom(t *testing.T) {
	const cs = 32
	seed := time.Now().UnixNano()
	rng := mrand.New(mrand.NewPCG(uint64(seed), 2))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	for i := range 500 {
		vs := versions()
		v := vs[i%len(vs)]
		ct := seal(t, randBytes(t, rng.IntN(40*cs)), vopt(v, Options{ChunkSize: cs}), 0)
		ct = ct[:len(ct)-rng.IntN(min(len(ct), 2*cs+over(v))+1)*rng.IntN(2)]
		for k := rng.IntN(3); k > 0 && len(ct) > 0; k-- {
			ct[rng.IntN(len(ct))] ^= byte(1 + rng.IntN(255))
		}
		if rng.IntN(4) == 0 {
			ct = append(ct, randBytes(t, rng.IntN(3*cs))...)
		}
		for _, p := range []int{2, 8} {
			samePositional(t, ct, v, Options{ChunkSize: cs, Parallel: p, chunksPerJob: rng.IntN(4)})
		}
	}
}

// A file that grows while it is read has data after its final chunk.
func TestPositionalFileGrows(t *testing.T) {
	ct := seal(t, randBytes(t, 1000), Options{ChunkSize: 64}, 0)
	f := newMemFile(ct)
	f.grow = 10
	r, err := NewReader(f, testKey, testHeader, Options{ChunkSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrTrailingData) || !strings.Contains(err.Error(), "grew") {
		t.Fatalf("%v, want ErrTrailingData: the file grew", err)
	}
}

// A real regular file is read positionally from where it is positioned,
// and left there; a pipe (a FIFO's *os.File) is read sequentially.
func TestPositionalOSFile(t *testing.T) {
	pt := randBytes(t, 300*1024)
	ct := seal(t, pt, Options{}, 0)
	path := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(path, append(append([]byte(nil), prefix...), ct...), 0o600); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fh.Seek(int64(len(prefix)), io.SeekStart)
	r, err := NewReader(fh, testKey, testHeader, Options{Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r.(*reader).ra == nil {
		t.Fatal("regular file read sequentially")
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	if off, _ := fh.Seek(0, io.SeekCurrent); off != int64(len(prefix)) {
		t.Fatalf("file offset moved to %d", off)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { pw.Write(ct); pw.Close() }()
	r, err = NewReader(pr, testKey, testHeader, Options{Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r.(*reader).ra != nil {
		t.Fatal("a pipe was read positionally")
	}
	got, err = io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("pipe: %d bytes, %v", len(got), err)
	}
	pr.Close()
}

// tempFile is a real file holding b, positioned at its end.
func tempFile(t *testing.T, name string, b []byte) *os.File {
	t.Helper()
	fh, err := os.OpenFile(filepath.Join(t.TempDir(), name), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	if _, err := fh.Write(b); err != nil {
		t.Fatal(err)
	}
	return fh
}

// File to file, both ways: the workers pread their input and pwrite their
// output; the bytes are a stream the sequential reader opens, and the
// plaintext comes back byte for byte; each file's offset ends where
// sequential I/O would leave it.
func TestPositionalFileToFile(t *testing.T) {
	for _, cs := range []int{64, DefaultChunkSize} {
		for _, size := range []int{0, 1, cs, cs + 1, 17*cs + 3, 40 * cs} {
			for _, p := range []int{0, 2, 5} {
				pt := randBytes(t, size)
				src := tempFile(t, "in", append(append([]byte(nil), prefix...), pt...))
				src.Seek(int64(len(prefix)), io.SeekStart)
				dst := tempFile(t, "out", prefix)
				opt := Options{ChunkSize: cs, Parallel: p}
				w, err := NewWriter(dst, testKey, testHeader, opt)
				if err != nil {
					t.Fatal(err)
				}
				if w.(*writer).wa == nil {
					t.Fatal("a regular output file written sequentially")
				}
				if n, err := w.(io.ReaderFrom).ReadFrom(noRead{src}); err != nil || n != int64(size) {
					t.Fatalf("copy: %d, %v", n, err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				end, _ := dst.Seek(0, io.SeekCurrent)
				wire, _ := os.ReadFile(dst.Name())
				if end != int64(len(wire)) || !bytes.HasPrefix(wire, prefix) {
					t.Fatalf("output offset %d of %d bytes", end, len(wire))
				}
				ct := wire[len(prefix):]
				if got, err := open(ct, testKey, testHeader, Options{ChunkSize: cs}); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("chunk %d size %d P=%d: sequential read of the positional output: %d bytes, %v", cs, size, p, len(got), err)
				}
				if off, _ := src.Seek(0, io.SeekCurrent); off != int64(len(prefix)+size) {
					t.Fatalf("input offset %d", off)
				}

				in := tempFile(t, "ct", ct)
				in.Seek(0, io.SeekStart)
				out := tempFile(t, "pt", prefix)
				r, err := NewReader(in, testKey, testHeader, opt)
				if err != nil {
					t.Fatal(err)
				}
				if n, err := io.Copy(out, r); err != nil || n != int64(size) {
					t.Fatalf("decrypt: %d, %v", n, err)
				}
				if r.(*reader).wa == nil {
					t.Fatal("a regular output file written sequentially")
				}
				back, _ := os.ReadFile(out.Name())
				end, _ = out.Seek(0, io.SeekCurrent)
				if !bytes.Equal(back, append(append([]byte(nil), prefix...), pt...)) || end != int64(len(back)) {
					t.Fatalf("decrypted file differs (%d bytes, offset %d)", len(back), end)
				}
			}
		}
	}
}

// noRead is a file that can only be read at offsets: the writer must not
// read a regular file sequentially.
type noRead struct{ *os.File }

func (noRead) Read([]byte) (int, error) { return 0, errors.New("read sequentially") }

// A tampered stream decrypted to a file fails as it does to a pipe.
func TestPositionalOutputFails(t *testing.T) {
	ct := seal(t, randBytes(t, 10*64), Options{ChunkSize: 64}, 0)
	ct[SaltSize+5*(64+Overhead)+3] ^= 1
	r, err := NewReader(bytes.NewReader(ct), testKey, testHeader, Options{ChunkSize: 64, Parallel: 3, chunksPerJob: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := tempFile(t, "pt", nil)
	if _, err := io.Copy(out, r); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "chunk 5") {
		t.Fatalf("%v, want ErrAuth at chunk 5", err)
	}
}

// An input file that grows while it is encrypted is refused: the stream
// would not be the file.
func TestPositionalInputGrows(t *testing.T) {
	src := newMemFile(randBytes(t, 1000))
	src.grow = 5
	w, err := NewWriter(io.Discard, testKey, testHeader, Options{ChunkSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.(io.ReaderFrom).ReadFrom(src); err == nil || !strings.Contains(err.Error(), "changed size") {
		t.Fatalf("%v, want: changed size", err)
	}
}
