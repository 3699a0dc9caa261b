package stream

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
)

type writer struct {
	pipeline
	dst     io.Writer
	cur     *job   // the job being filled; its chunk cur.n-1 takes the next bytes
	counter uint64 // the number of cur's first chunk
	closed  bool
	// wa: dst when it is a regular file; each job's worker writes the
	// job's chunks at wbase + their offset (pwrite). wrote counts them.
	wa    io.WriterAt
	wseek io.Seeker
	wbase int64
	wrote int64
}

// NewWriter returns a WriteCloser that seals everything written to it onto
// dst as a version 2 stream, bound to header: the caller's own header bytes,
// which the stream only authenticates (in the additional data of chunk 0)
// and never writes. It writes the random salt to dst before it returns.
// Close writes the final chunk and must be called: a stream that is not
// closed reads as truncated. Close does not close dst. The writer also
// implements io.ReaderFrom, so io.Copy reads straight into its chunk buffers.
func NewWriter(dst io.Writer, key []byte, header []byte, opt Options) (io.WriteCloser, error) {
	cs, err := opt.check()
	if err != nil {
		return nil, err
	}
	if opt.Version != 0 && opt.Version != V2 {
		return nil, fmt.Errorf("stream: new streams are format v%d, not v%d", V2, opt.Version)
	}
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("stream: random salt: %w", err)
	}
	return newWriter(dst, key, header, salt, cs, opt)
}

// newWriter is NewWriter with a given salt: tests use it to compare the bytes
// that serial and parallel writers put on the wire.
func newWriter(dst io.Writer, key, header, salt []byte, cs int, opt Options) (io.WriteCloser, error) {
	v, err := opt.version()
	if err != nil {
		return nil, err
	}
	s, err := newSuite(v, key, salt, header, cs)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(salt); err != nil {
		return nil, fmt.Errorf("stream: write salt: %w", err)
	}
	w := &writer{pipeline: newPipeline(s, opt), dst: dst}
	if f, off, ok := positionalOut(dst); ok {
		w.wa, w.wseek, w.wbase = f, f, off
	}
	if w.pool != nil {
		runtime.AddCleanup(w, func(p *pool) { p.stop() }, w.pool)
	}
	w.cur = w.newJob()
	return w, nil
}

// newJob returns an empty job with one chunk open for data.
func (w *writer) newJob() *job {
	j := w.spare(func() *job {
		j := &job{
			s:   w.s,
			in:  make([]byte, w.batch*w.s.chunk),
			buf: make([]byte, w.batch*w.s.stride()),
		}
		noDump(j.in)
		return j
	})
	j.n, j.fill, j.last, j.err, j.ra, j.wa = 1, 0, false, nil, nil, nil
	return j
}

// room is where the next bytes go: the free part of cur's open chunk. When
// that chunk is full, the bytes are known to be more than the stream's final
// chunk, so room opens the next chunk, flushing cur first if it has no chunk
// left.
func (w *writer) room() ([]byte, error) {
	c := w.s.chunk
	if w.cur.fill == c {
		if w.cur.n == w.batch {
			if err := w.flush(false); err != nil {
				return nil, err
			}
		} else {
			w.cur.n++
			w.cur.fill = 0
		}
	}
	off := (w.cur.n-1)*c + w.cur.fill
	return w.cur.in[off : w.cur.n*c], nil
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		dst, err := w.room()
		if err != nil {
			return written, err
		}
		k := copy(dst, p)
		w.cur.fill += k
		p = p[k:]
		written += k
	}
	return written, nil
}

// ReadFrom reads src to EOF straight into the chunk buffers. When src is a
// regular file and nothing has been written yet, the workers read their own
// jobs' plaintext from it at their offsets (readFromFile).
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	if f, off, size, ok := positionalIn(src); ok && w.counter == 0 && w.cur.n == 1 && w.cur.fill == 0 {
		return w.readFromFile(f, off, size)
	}
	c := w.s.chunk
	var total int64
	for {
		var n int
		var err error
		if w.cur.fill < c {
			off := (w.cur.n-1)*c + w.cur.fill
			n, err = src.Read(w.cur.in[off : w.cur.n*c])
			w.cur.fill += n
		} else {
			// The open chunk is full: it is the final one unless src has
			// more, so read into a spare chunk and move on only if it gets
			// data.
			n, err = w.readAhead(src)
		}
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// readAhead reads into the chunk after cur's full open chunk, and opens that
// chunk (flushing cur first if it was cur's last) only if the read got data.
func (w *writer) readAhead(src io.Reader) (int, error) {
	c := w.s.chunk
	if w.cur.n < w.batch {
		off := w.cur.n * c
		n, err := src.Read(w.cur.in[off : off+c])
		if n > 0 {
			w.cur.n++
			w.cur.fill = n
		}
		return n, err
	}
	next := w.newJob()
	n, err := src.Read(next.in[:c])
	if n == 0 {
		w.free = append(w.free, next)
		return 0, err
	}
	if ferr := w.flushTo(false, next); ferr != nil {
		return n, ferr
	}
	w.cur.fill = n
	return n, err
}

func (w *writer) check() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("stream: write after close")
	}
	return nil
}

// flush starts sealing cur, with a new empty job as the next cur.
func (w *writer) flush(last bool) error {
	var next *job
	if !last {
		next = w.newJob()
	}
	return w.flushTo(last, next)
}

// flushTo starts sealing cur, makes next the current job, and writes out
// sealed jobs while the window is full.
func (w *writer) flushTo(last bool, next *job) error {
	j := w.cur
	// The job's chunks are numbered counter..counter+n-1; all of them but a
	// final one need a successor number.
	span := uint64(j.n)
	if last {
		span--
	}
	if w.s.maxCounter-w.counter < span {
		w.err = overflowError(w.s)
		if next != nil {
			w.free = append(w.free, next)
		}
		return w.err
	}
	j.first, j.last = w.counter, last
	if w.wa != nil {
		j.wa, j.woff = w.wa, w.wbase+int64(j.first)*int64(w.s.stride())
	}
	w.counter += span
	w.cur = next
	w.queue = append(w.queue, j)
	w.pool.run(j)
	for len(w.queue) >= w.window {
		if err := w.drainOne(); err != nil {
			return err
		}
	}
	return nil
}

// overflowError: the stream would need a chunk number past the format's last.
func overflowError(s *suite) error {
	if s.version == V1 {
		return fmt.Errorf("stream: chunk %d: %w", s.maxCounter, ErrCounterOverflow)
	}
	return fmt.Errorf("stream: more than %d chunks, the limit of random nonces under one key (split the data into several streams, or use a larger chunk size): %w", uint64(MaxChunks), ErrCounterOverflow)
}

func (w *writer) drainOne() error {
	j := popFront(&w.queue)
	w.pool.wait(j)
	if j.err != nil {
		// A positional job's read or write failed.
		w.err = j.err
		return w.err
	}
	if j.wa == nil {
		if _, err := w.dst.Write(j.sealed()); err != nil {
			w.err = fmt.Errorf("stream: write chunks %d-%d: %w", j.first, j.first+uint64(j.n-1), err)
			return w.err
		}
	}
	w.wrote += int64(len(j.sealed()))
	w.free = append(w.free, j)
	return nil
}

// Close seals and writes the final chunk, after every chunk still in flight.
// It is safe to call more than once.
func (w *writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	defer w.pool.stopNil()
	if w.err != nil {
		w.drop()
		return w.err
	}
	if err := w.flush(true); err != nil {
		w.drop()
		return err
	}
	for len(w.queue) > 0 {
		if err := w.drainOne(); err != nil {
			w.drop()
			return err
		}
	}
	if w.wa != nil {
		// Leave dst's offset after the stream, as sequential writes would.
		if _, err := w.wseek.Seek(w.wbase+w.wrote, io.SeekStart); err != nil {
			w.err = fmt.Errorf("stream: %w", err)
			return w.err
		}
	}
	return nil
}
