package stream

import (
	"crypto/fips140"
	"fmt"
	"io"
	"runtime"
)

type reader struct {
	pipeline
	src     io.Reader
	cur     *job   // the job whose plaintext is being returned
	unread  []byte // rest of cur.out
	counter uint64 // next chunk number to read from src
	sawLast bool   // nothing more to read from src
	// A job's chunks are read together with the first byte after them, to
	// tell the final chunk from the others; that byte is carried into the
	// next job.
	carry    byte
	hasCarry bool

	// Positional mode (a regular file): jobs read their own chunks with
	// ReadAt, at fixed offsets from base (the offset of chunk 0), on the
	// workers. end is the file's size when the stream was opened; restat
	// takes it again at the end, so that a file that grew meanwhile fails.
	ra     io.ReaderAt
	base   int64
	end    int64
	restat func() (int64, error)
	// wa: WriteTo's destination, a regular file, written at wbase plus each
	// job's plaintext offset by the job's worker.
	wa    io.WriterAt
	wbase int64
	wseek io.Seeker
}

// NewReader opens a stream written by NewWriter with the same key, header and
// chunk size; Options.Version says which format it is in (V2 unless the
// caller's container says V1). It reads the salt before it returns. Each
// chunk is authenticated before any of its plaintext is returned; a chunk
// that fails returns an error wrapping ErrAuth, ErrTruncated,
// ErrTrailingData or ErrCounterOverflow and the chunk number, never io.EOF,
// and no byte of that chunk. Plaintext of earlier chunks has been returned by
// then: a consumer that must not act on a partial stream should write to a
// temporary file and keep it only on io.EOF. The reader also implements
// io.WriterTo, so io.Copy writes straight from its chunk buffers.
//
// When src is a regular file (an *os.File), the reader is positional: its
// workers read their own chunks at the offsets the format fixes (chunk i at
// SaltSize + i×(C+Overhead) from src's current offset), straight into their
// job buffers, and the file's size decides how many chunks there are and
// which is the final one; every check and error is the sequential reader's.
// src's offset is then left where it was. Pipes, FIFOs, terminals and other
// readers are read sequentially.
//
// In FIPS 140-only mode a V1 stream is refused before anything is read, with
// an error wrapping ErrFIPSV1.
func NewReader(src io.Reader, key []byte, header []byte, opt Options) (io.Reader, error) {
	cs, err := opt.check()
	if err != nil {
		return nil, err
	}
	v, err := opt.version()
	if err != nil {
		return nil, err
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("stream: key is %d bytes, want %d", len(key), KeySize)
	}
	if v == V1 && fips140.Enforced() {
		// Refused before reading: a FIPS-only run consumes no input it
		// cannot open.
		return nil, fipsV1Error()
	}
	r := &reader{src: src}
	if f, off, size, ok := positionalIn(src); ok {
		r.ra, r.base, r.end = f, off, size
		r.restat = func() (int64, error) { return fileSize(f) }
	}
	salt := make([]byte, SaltSize)
	if err := r.readSalt(salt); err != nil {
		return nil, err
	}
	s, err := newSuite(v, key, salt, header, cs)
	if err != nil {
		return nil, err
	}
	r.pipeline = newPipeline(s, opt)
	if r.pool != nil {
		runtime.AddCleanup(r, func(p *pool) { p.stop() }, r.pool)
	}
	return r, nil
}

// readSalt reads the salt: from src, or at base in positional mode.
func (r *reader) readSalt(salt []byte) error {
	var err error
	if r.ra != nil {
		var n int
		n, err = r.ra.ReadAt(salt, r.base)
		if n == len(salt) {
			err = nil
		} else if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.base += int64(n)
	} else {
		_, err = io.ReadFull(r.src, salt)
	}
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("stream: salt: %w", ErrTruncated)
	case err != nil:
		return fmt.Errorf("stream: read salt: %w", err)
	}
	return nil
}

func (r *reader) newJob() *job {
	j := r.spare(func() *job {
		j := &job{
			s:    r.s,
			open: true,
			buf:  make([]byte, r.batch*r.s.stride()+1),
			out:  make([]byte, 0, r.batch*r.s.chunk),
		}
		noDump(j.out)
		return j
	})
	j.n, j.last, j.tail, j.err, j.ra, j.wa = 0, false, nil, nil, nil, nil
	return j
}

// place makes j positional on the output side when WriteTo writes a file.
func (r *reader) place(j *job) {
	if r.wa != nil {
		j.wa, j.woff = r.wa, r.wbase+int64(j.first)*int64(r.s.chunk)
	}
}

// readJob reads the next run of chunks from src into a job and decides from
// the framing which of them, if any, is the final one. A framing error after
// some whole chunks goes into the job's tail, behind those chunks.
func (r *reader) readJob() (*job, error) {
	stride := r.s.stride()
	j := r.newJob()
	want := r.batch*stride + 1
	buf := j.buf[:want]
	start := 0
	if r.hasCarry {
		buf[0] = r.carry
		start, r.hasCarry = 1, false
	}
	n, err := io.ReadFull(r.src, buf[start:])
	n += start
	full, rest := n/stride, n%stride
	switch {
	case n == want:
		// A byte follows these chunks: none of them is the final one.
		r.carry, r.hasCarry = buf[want-1], true
		j.n = r.batch
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		r.free = append(r.free, j)
		return nil, fmt.Errorf("stream: read chunk %d: %w", r.counter, err)
	case n == 0:
		r.free = append(r.free, j)
		return nil, fmt.Errorf("stream: chunk %d: no final chunk: %w", r.counter, ErrTruncated)
	case rest == 0:
		// Full chunks up to the end: the last of them is the final one.
		j.n, j.last = full, true
	case rest < r.s.over:
		j.n = full
		j.tail = fmt.Errorf("stream: chunk %d: %d bytes, shorter than a chunk's nonce and tag: %w", r.counter+uint64(full), rest, ErrTruncated)
	default:
		// A short chunk at the end: the final one.
		j.n, j.last = full+1, true
	}
	j.buf = buf[:min(n, j.n*stride)]
	// The job's chunks but a final one need a successor number.
	span := uint64(j.n)
	if j.last {
		span--
	}
	if r.s.maxCounter-r.counter < span {
		r.free = append(r.free, j)
		return nil, overflowError(r.s)
	}
	j.first = r.counter
	r.place(j)
	r.counter += span
	r.sawLast = j.last || j.tail != nil
	return j, nil
}

// planJob is readJob for a positional reader: it decides the next job's
// chunks from the file's size, exactly as readJob decides them from what
// the read returned, and leaves the reading to the job (job.readAt), on its
// worker.
func (r *reader) planJob() (*job, error) {
	j := r.newJob()
	if err := r.planAt(j, r.counter, r.batch); err != nil {
		r.free = append(r.free, j)
		return nil, err
	}
	r.place(j)
	r.counter += j.span()
	r.sawLast = j.last || j.tail != nil
	return j, nil
}

// planAt makes j the positional job of up to batch chunks from chunk first
// on: which chunks, which of them is the final one, and where they lie. It
// depends on nothing but the file's size, so that driven workers plan their
// own jobs (drive.go).
func (r *reader) planAt(j *job, first uint64, batch int) error {
	stride := int64(r.s.stride())
	start := r.base + int64(first)*stride
	remain := r.end - start
	full, rest := remain/stride, remain%stride
	j.n, j.last, j.tail, j.err = 0, false, nil, nil
	switch b := int64(batch) * stride; {
	case remain > b:
		// More follows these chunks: none of them is the final one.
		j.n, remain = batch, b
	case remain <= 0:
		return fmt.Errorf("stream: chunk %d: no final chunk: %w", first, ErrTruncated)
	case rest == 0:
		j.n, j.last = int(full), true
	case rest < int64(r.s.over):
		j.n = int(full)
		j.tail = fmt.Errorf("stream: chunk %d: %d bytes, shorter than a chunk's nonce and tag: %w", first+uint64(full), rest, ErrTruncated)
		remain = full * stride
	default:
		j.n, j.last = int(full)+1, true
	}
	if r.s.maxCounter-first < j.span() {
		return overflowError(r.s)
	}
	j.ra, j.off, j.want = r.ra, start, int(remain)
	j.buf = j.buf[:cap(j.buf)]
	j.out = j.out[:0]
	j.first = first
	return nil
}

// fill reads (or, positional, plans) and starts jobs until the window is
// full or the final chunk has been read. A read error is queued behind the
// jobs before it.
func (r *reader) fill() {
	for !r.sawLast && len(r.queue) < r.window {
		read := r.readJob
		if r.ra != nil {
			read = r.planJob
		}
		j, err := read()
		if err != nil {
			r.queue = append(r.queue, &job{err: err})
			r.sawLast = true
			return
		}
		r.queue = append(r.queue, j)
		r.pool.run(j)
	}
}

// next makes the next job current. It returns the current job's error once
// its good plaintext has been returned, and io.EOF after the final chunk.
func (r *reader) next() error {
	if r.err != nil {
		return r.err
	}
	if j := r.cur; j != nil {
		r.cur = nil
		if j.err != nil {
			r.err = j.err
			r.drop()
			return r.err
		}
		r.free = append(r.free, j)
	}
	r.fill()
	if len(r.queue) == 0 {
		r.pool.stopNil()
		r.err = r.atEnd()
		return r.err
	}
	j := popFront(&r.queue)
	r.pool.wait(j)
	r.cur, r.unread = j, j.out
	return nil
}

// atEnd is io.EOF after the final chunk, or, when the file's size changed
// meanwhile, the error a sequential read would have found: data appended
// while the stream was read is data after the final chunk.
func (r *reader) atEnd() error {
	if r.restat == nil {
		return io.EOF
	}
	switch size, err := r.restat(); {
	case err != nil:
		return fmt.Errorf("stream: stat after the final chunk: %w", err)
	case size > r.end:
		return fmt.Errorf("stream: the file grew from %d to %d bytes while it was read: %w", r.end, size, ErrTrailingData)
	case size < r.end:
		return fmt.Errorf("stream: the file shrank from %d to %d bytes while it was read: %w", r.end, size, ErrTruncated)
	}
	return io.EOF
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.unread) == 0 {
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.unread)
	r.unread = r.unread[n:]
	return n, nil
}

// WriteTo writes the rest of the plaintext to dst, job by job. When dst is
// a regular file and nothing has been read yet, each job's worker writes the
// job's plaintext at its offset in dst itself (pwrite), and dst's offset is
// left after the plaintext. Then, if the stream fails, dst may also hold
// plaintext of chunks after the failing one (authenticated, but released
// out of order): a consumer that writes to a file keeps it only when WriteTo
// returns no error.
func (r *reader) WriteTo(dst io.Writer) (int64, error) {
	if r.ra != nil && r.cur == nil && len(r.queue) == 0 && r.err == nil && r.counter == 0 {
		if n, ok, err := r.drive(dst); ok {
			return n, err
		}
	}
	if r.cur == nil && len(r.queue) == 0 && r.err == nil {
		if f, off, ok := positionalOut(dst); ok {
			r.wa, r.wbase, r.wseek = f, off, f
		}
	}
	var total int64
	for {
		if len(r.unread) > 0 && r.wa != nil {
			total += int64(len(r.unread)) // written by the job's worker
			r.unread = nil
		}
		if len(r.unread) > 0 {
			n, err := dst.Write(r.unread)
			total += int64(n)
			r.unread = r.unread[n:]
			if err != nil {
				return total, err
			}
			if len(r.unread) > 0 {
				return total, io.ErrShortWrite
			}
		}
		if err := r.next(); err != nil {
			if err == io.EOF {
				if r.wa != nil {
					if _, err := r.wseek.Seek(r.wbase+total, io.SeekStart); err != nil {
						return total, fmt.Errorf("stream: %w", err)
					}
				}
				return total, nil
			}
			return total, err
		}
	}
}
