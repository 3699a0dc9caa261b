package stream

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers and tests for driven streams (drive.go), beside samePositional's
// checks.

// memOut is a regular file in memory to write to: WriteAt, Seek, Stat.
type memOut struct {
	mu  sync.Mutex
	b   []byte
	off int64
}

func (m *memOut) Write(p []byte) (int, error) {
	n, err := m.WriteAt(p, m.off)
	m.off += int64(n)
	return n, err
}

func (m *memOut) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memOut) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += m.off
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	m.off = off
	return off, nil
}

func (m *memOut) Stat() (fs.FileInfo, error) { return memInfo(len(m.b)), nil }

// shrunk is a file that reads as cut bytes long while Stat still gives its
// size: it shrank after the stream took its size.
type shrunk struct {
	*memFile
	cut int64
}

func (s shrunk) Read([]byte) (int, error) { return 0, errors.New("read sequentially") }

func (s shrunk) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= s.cut {
		return s.memFile.ReadAt(p, off)
	}
	n, _ := s.memFile.ReadAt(p[:max(0, s.cut-off)], off)
	return n, io.EOF
}

// Encrypting a regular file gives a stream that opens to the file, through
// every way its output leaves (in order to a writer, at offsets to a file;
// one worker or several), and an input that shrinks meanwhile fails with
// the same message every way.
func TestPositionalEncryptSinks(t *testing.T) {
	const cs = 64
	for _, size := range []int{0, 1, cs, cs + 1, 9*cs + 3, 24 * cs} {
		pt := randBytes(t, size)
		for _, o := range []Options{{}, {chunksPerJob: 2}, {Parallel: 2}, {Parallel: 3, chunksPerJob: 2}, {Parallel: 5}} {
			o.ChunkSize = cs
			var msg string
			for _, sink := range []string{"writer", "file"} {
				encrypt := func(src io.Reader) ([]byte, error) {
					var buf bytes.Buffer
					out := &memOut{}
					var dst io.Writer = &buf
					if sink == "file" {
						dst = out
					}
					w, err := NewWriter(dst, testKey, testHeader, o)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := w.(io.ReaderFrom).ReadFrom(src); err != nil {
						return nil, err
					}
					if err := w.Close(); err != nil {
						return nil, err
					}
					if sink == "file" {
						return out.b, nil
					}
					return buf.Bytes(), nil
				}
				ct, err := encrypt(newMemFile(pt))
				if err != nil {
					t.Fatal(err)
				}
				if got, err := open(ct, testKey, testHeader, Options{ChunkSize: cs}); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("size %d %+v to a %s: %d bytes, %v", size, o, sink, len(got), err)
				}
				if size < 2*cs {
					continue
				}
				_, err = encrypt(shrunk{newMemFile(pt), int64(size/2 + 1)})
				if err == nil || !strings.Contains(err.Error(), "shrank") || (msg != "" && err.Error() != msg) {
					t.Fatalf("size %d %+v to a %s: %v, want the input shrank (%s)", size, o, sink, err, msg)
				}
				msg = err.Error()
			}
		}
	}
}

// gid is the calling goroutine's number (from its stack header).
func gid() string {
	var b [64]byte
	f := strings.Fields(string(b[:runtime.Stack(b[:], false)]))
	return f[1]
}

// spy counts, per goroutine, the bytes read or written at offsets.
type spy struct {
	mu  sync.Mutex
	per map[string]int
}

func (s *spy) add(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.per == nil {
		s.per = map[string]int{}
	}
	s.per[gid()] += n
	time.Sleep(100 * time.Microsecond) // jobs overlap, as on a real file
}

type spyIn struct {
	*memFile
	spy
}

func (s *spyIn) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.memFile.ReadAt(p, off)
	s.add(n)
	return n, err
}

func (s *spyIn) Read([]byte) (int, error) { return 0, errors.New("read sequentially") }

type spyOut struct {
	memOut
	spy
}

func (s *spyOut) WriteAt(p []byte, off int64) (int, error) {
	n, err := s.memOut.WriteAt(p, off)
	s.add(n)
	return n, err
}

// No stage of a driven stream moves every byte on one goroutine (issue 21):
// from a regular file to a regular file with several workers, the caller's
// goroutine reads and writes nothing but the salt and the final chunk, and
// the chunks are read by more than one goroutine. (The writes to one file
// go out in order, by whichever worker finds the next job ready: the kernel
// takes them one at a time anyway.)
func TestDrivenSpreadsIO(t *testing.T) {
	const cs = 64
	pt := randBytes(t, 200*16*cs+5)
	opt := Options{ChunkSize: cs, Parallel: 4}
	check := func(what string, s *spy, total int) {
		t.Helper()
		s.mu.Lock()
		defer s.mu.Unlock()
		if mine := s.per[gid()]; mine > cs+Overhead+SaltSize {
			t.Errorf("%s: the caller's goroutine moved %d of %d bytes", what, mine, total)
		}
		if len(s.per) < 2 {
			t.Errorf("%s: one goroutine moved all %d bytes: %v", what, total, s.per)
		}
	}

	in := &spyIn{memFile: newMemFile(pt)}
	out := &spyOut{}
	w, err := NewWriter(out, testKey, testHeader, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.(io.ReaderFrom).ReadFrom(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check("encrypt: reads", &in.spy, len(pt))
	ct := out.b
	if got, err := open(ct, testKey, testHeader, Options{ChunkSize: cs}); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("the stream does not open to the file: %d bytes, %v", len(got), err)
	}

	cin := &spyIn{memFile: newMemFile(ct)}
	pout := &spyOut{}
	r, err := NewReader(cin, testKey, testHeader, opt)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(pout, r); err != nil || n != int64(len(pt)) || !bytes.Equal(pout.b, pt) {
		t.Fatalf("decrypt: %d, %v", n, err)
	}
	check("decrypt: reads", &cin.spy, len(ct))
	pout.spy.mu.Lock()
	mine := pout.per[gid()]
	pout.spy.mu.Unlock()
	if mine != 0 {
		t.Errorf("decrypt: the caller's goroutine wrote %d bytes", mine)
	}
}
