// Package stream is cmekctl's chunked streaming AEAD: the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár), as age uses it, over AES-256-GCM.
//
// Wire format (docs/backup-format.md has the full description):
//
//	salt      16 bytes, random per stream
//	chunk 0   AES-256-GCM(chunkKey, nonce(0, last?), plaintext[0:C], aad = header)
//	chunk 1   AES-256-GCM(chunkKey, nonce(1, last?), plaintext[C:2C], aad = "")
//	...
//	chunk n   the final chunk, last flag set: 0 < len ≤ C bytes of plaintext,
//	          or empty only when the whole stream is empty
//
// where C is the chunk size (Options.ChunkSize, default 64 KiB), every
// chunk but the final one carries exactly C bytes of plaintext (C+16 bytes on
// the wire), chunkKey = HKDF-SHA256(key, salt, "cmekctl stream v1") and
// nonce(i, last) = the 11-byte big-endian chunk counter i || 0x01 if last else
// 0x00. The caller's header bytes are the additional data of chunk 0, so a
// changed header fails the first chunk.
//
// The counter and the last flag make reordering, dropping, truncating and
// extending the stream fail authentication; the reader tells these cases
// apart where it can (ErrAuth, ErrTruncated, ErrTrailingData).
//
// The wire format does not depend on Options.Parallel: a stream written with
// any Parallel reads with any other.
package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

const (
	// DefaultChunkSize is the plaintext size of every chunk but the last.
	DefaultChunkSize = 64 << 10
	// MaxChunkSize bounds Options.ChunkSize, so that a chunk size read from an
	// untrusted header cannot make a reader allocate without limit.
	MaxChunkSize = 4 << 20
	// MaxParallel bounds Options.Parallel: each worker adds two jobs of
	// buffers (up to 1 MiB each) to the window.
	MaxParallel = 64
	// KeySize is the size of the stream key: a 256-bit data or backup key.
	KeySize = 32
	// SaltSize is the size of the per-stream random salt written first.
	SaltSize = 16
	// Overhead is the ciphertext expansion of one chunk (the GCM tag).
	Overhead = 16

	nonceSize = 12
	kdfInfo   = "cmekctl stream v1"
	// maxCounter is the last chunk number the stream will use. The nonce has
	// room for an 11-byte counter; the implementation carries it in a uint64
	// and refuses to go past 2^64-1 chunks instead of wrapping.
	maxCounter = ^uint64(0)
)

var (
	// ErrAuth: a chunk failed authentication (wrong key, wrong header,
	// tampered, reordered or spliced chunks). No plaintext of that chunk is
	// returned.
	ErrAuth = errors.New("message authentication failed")
	// ErrTruncated: the stream ends before its final chunk (cut at a chunk
	// boundary, final chunk dropped, or cut inside the salt or a tag).
	ErrTruncated = errors.New("stream truncated")
	// ErrTrailingData: data follows the final chunk.
	ErrTrailingData = errors.New("data after the final chunk")
	// ErrCounterOverflow: the stream is too long for the chunk counter.
	ErrCounterOverflow = errors.New("chunk counter overflow")
)

// Options tune a stream. The wire format depends on ChunkSize (a reader must
// use the writer's), never on Parallel.
type Options struct {
	// ChunkSize is the plaintext bytes per chunk; 0 means DefaultChunkSize.
	ChunkSize int
	// Parallel: 0 or 1 seals/opens chunks on the calling goroutine, one at a
	// time; N > 1 seals/opens chunks on N worker goroutines, in jobs of up to
	// 512 KiB of plaintext, while the caller's goroutine reads and writes
	// the stream; at most 2N jobs in flight, output order kept.
	Parallel int

	// chunksPerJob overrides the chunks per job (tests: batching in serial
	// mode, where the order of work is deterministic).
	chunksPerJob int
}

func (o Options) chunkSize() (int, error) {
	switch {
	case o.ChunkSize == 0:
		return DefaultChunkSize, nil
	case o.ChunkSize < 1 || o.ChunkSize > MaxChunkSize:
		return 0, fmt.Errorf("stream: chunk size %d out of range 1..%d", o.ChunkSize, MaxChunkSize)
	}
	return o.ChunkSize, nil
}

func (o Options) check() (chunk int, err error) {
	if o.Parallel > MaxParallel {
		return 0, fmt.Errorf("stream: parallel %d out of range 1..%d", o.Parallel, MaxParallel)
	}
	return o.chunkSize()
}

func (o Options) parallel() int {
	if o.Parallel < 1 {
		return 1
	}
	return o.Parallel
}

// window is the number of chunks in flight (being sealed or opened, or done
// and waiting for their turn to be written or read) in parallel mode.
func (o Options) window() int {
	if o.parallel() == 1 {
		return 1
	}
	return 2 * o.parallel()
}

// batchBytes is the plaintext a job carries in parallel mode: enough chunks
// that handing a job to another goroutine costs little next to sealing it.
// Serial mode works a chunk at a time, so its buffers stay in the L1/L2 cache.
const (
	batchBytes = 512 << 10
	maxBatch   = 16
)

func (o Options) batch(chunk int) int {
	if o.chunksPerJob > 0 {
		return o.chunksPerJob
	}
	if o.parallel() == 1 {
		return 1
	}
	return max(1, min(maxBatch, batchBytes/chunk))
}

func newAEAD(key, salt []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("stream: key is %d bytes, want %d", len(key), KeySize)
	}
	ck, err := hkdf.Key(sha256.New, key, salt, kdfInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("stream: derive chunk key: %w", err)
	}
	block, err := aes.NewCipher(ck)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	return aead, nil
}

// job is a run of consecutive chunks on their way through the pipeline: one
// chunk in serial mode, a batch of them in parallel mode. It carries all it
// needs to be sealed or opened, so that workers hold no reference to the
// stream.
//
// A writer's job holds plaintext chunk i at buf[i*(C+16):], so that sealing
// each chunk in place leaves the batch's ciphertext contiguous in buf. A
// reader's job holds the ciphertext as read, and opens chunk i into
// out[i*C:].
type job struct {
	aead   cipher.AEAD
	header []byte // the additional data of chunk 0
	chunk  int    // C, the plaintext size of a full chunk
	first  uint64 // the number of the job's first chunk
	n      int    // chunks in the job
	last   bool   // the job's last chunk is the stream's final chunk
	open   bool   // open (reader) rather than seal (writer)
	buf    []byte // writer: chunks at stride C+16, sealed in place; reader: ciphertext
	fill   int    // writer: plaintext bytes in chunk n-1
	out    []byte // reader: the plaintext of the chunks opened, contiguous
	tail   error  // reader: a framing error after the job's chunks
	err    error  // the first chunk that failed, or tail
	done   chan struct{}
	nonce  [nonceSize]byte
}

func (j *job) setNonce(counter uint64, last bool) []byte {
	clear(j.nonce[:3]) // the high bytes of the 11-byte counter: always zero here
	binary.BigEndian.PutUint64(j.nonce[3:11], counter)
	j.nonce[11] = 0
	if last {
		j.nonce[11] = 1
	}
	return j.nonce[:]
}

func (j *job) aad(counter uint64) []byte {
	if counter == 0 {
		return j.header
	}
	return nil
}

// sealed is the wire bytes of a sealed writer job.
func (j *job) sealed() []byte {
	return j.buf[:(j.n-1)*(j.chunk+Overhead)+j.fill+Overhead]
}

func (j *job) run() {
	if j.open {
		j.doOpen()
		return
	}
	stride := j.chunk + Overhead
	for i := range j.n {
		size, last := j.chunk, false
		if i == j.n-1 {
			size, last = j.fill, j.last
		}
		c := j.first + uint64(i)
		p := j.buf[i*stride : i*stride+size]
		j.aead.Seal(p[:0], j.setNonce(c, last), p, j.aad(c))
	}
}

// doOpen authenticates and decrypts the job's chunks in order, and stops at
// the first that fails: j.out then holds the plaintext of the chunks before
// it, and j.err says why.
func (j *job) doOpen() {
	stride := j.chunk + Overhead
	j.out = j.out[:0]
	for i := range j.n {
		ct := j.buf[i*stride : min(len(j.buf), (i+1)*stride)]
		last := j.last && i == j.n-1
		if err := j.openChunk(j.first+uint64(i), last, ct); err != nil {
			j.err = err
			return
		}
	}
	j.err = j.tail
}

// openChunk opens one chunk onto j.out. last is what the framing says (a
// short chunk, or a full one followed by EOF). When that fails on a full
// chunk the other flag is tried, only to tell truncation and trailing data
// from tampering: nothing of such a chunk is ever kept.
func (j *job) openChunk(c uint64, last bool, ct []byte) error {
	l := len(j.out)
	dst := j.out[l:l]
	pt, err := j.aead.Open(dst, j.setNonce(c, last), ct, j.aad(c))
	if err == nil {
		if last && len(pt) == 0 && c != 0 {
			// NewWriter never writes an empty final chunk after data.
			return fmt.Errorf("stream: chunk %d: empty final chunk: %w", c, ErrAuth)
		}
		j.out = j.out[:l+len(pt)]
		return nil
	}
	if len(ct) == j.chunk+Overhead {
		if _, err := j.aead.Open(dst, j.setNonce(c, !last), ct, j.aad(c)); err == nil {
			clear(j.out[l : l+j.chunk])
			if last {
				return fmt.Errorf("stream: chunk %d: final chunk missing: %w", c, ErrTruncated)
			}
			return fmt.Errorf("stream: chunk %d is the final chunk: %w", c, ErrTrailingData)
		}
	}
	return fmt.Errorf("stream: chunk %d: %w", c, ErrAuth)
}

// pool is a fixed set of worker goroutines fed through a channel. It is
// stopped when the stream ends (Close, final chunk, error) or, for a stream
// abandoned half-way, when the stream becomes unreachable (runtime.AddCleanup).
type pool struct {
	jobs chan *job
	once sync.Once
}

func newPool(n, window int) *pool {
	p := &pool{jobs: make(chan *job, window)}
	for range n {
		go func(jobs <-chan *job) {
			for j := range jobs {
				j.run()
				j.done <- struct{}{}
			}
		}(p.jobs)
	}
	return p
}

func (p *pool) stop() { p.once.Do(func() { close(p.jobs) }) }

func (p *pool) stopNil() {
	if p != nil {
		p.stop()
	}
}

// run starts j: on the pool, or right here in serial mode.
func (p *pool) run(j *job) {
	if p == nil {
		j.run()
		return
	}
	if j.done == nil {
		j.done = make(chan struct{}, 1)
	}
	p.jobs <- j
}

// wait waits for a job started by run. The caller does not take queued jobs
// itself while it waits: measured, that left the workers idle and parked
// more often than it saved (goroutine wake-ups cost more than a job's
// hand-off), and the caller has the stream's reading or writing to do.
func (p *pool) wait(j *job) {
	if p == nil || j.done == nil {
		return
	}
	<-j.done
}

// popFront removes the first job of a queue, keeping the queue's storage
// (queues are at most a window long, so the shift is cheap).
func popFront(q *[]*job) *job {
	j := (*q)[0]
	n := copy(*q, (*q)[1:])
	(*q)[n] = nil
	*q = (*q)[:n]
	return j
}

// ---------------------------------------------------------------- writer

// pipeline is what a writer and a reader share: the stream's cipher and
// framing, the jobs in flight and the spare ones, and the workers.
type pipeline struct {
	aead   cipher.AEAD
	header []byte
	chunk  int
	batch  int    // chunks per job
	queue  []*job // jobs started, in stream order
	free   []*job
	pool   *pool // nil in serial mode
	window int
	err    error // sticky
}

func newPipeline(aead cipher.AEAD, header []byte, cs int, opt Options) pipeline {
	p := pipeline{
		aead:   aead,
		header: append([]byte(nil), header...),
		chunk:  cs,
		batch:  opt.batch(cs),
		window: opt.window(),
	}
	if n := opt.parallel(); n > 1 {
		p.pool = newPool(n, p.window)
	}
	return p
}

// spare returns a job to reuse, or a new one from fresh. The caller resets
// its state.
func (p *pipeline) spare(fresh func() *job) *job {
	if n := len(p.free); n > 0 {
		j := p.free[n-1]
		p.free = p.free[:n-1]
		return j
	}
	return fresh()
}

type writer struct {
	pipeline
	dst     io.Writer
	cur     *job   // the job being filled; its chunk cur.n-1 takes the next bytes
	counter uint64 // the number of cur's first chunk
	closed  bool
}

// NewWriter returns a WriteCloser that seals everything written to it onto
// dst, bound to header: the caller's own header bytes, which the stream only
// authenticates (as the additional data of chunk 0) and never writes. It
// writes the random salt to dst before it returns. Close writes the final
// chunk and must be called: a stream that is not closed reads as truncated.
// Close does not close dst. The writer also implements io.ReaderFrom, so
// io.Copy reads straight into its chunk buffers.
func NewWriter(dst io.Writer, key []byte, header []byte, opt Options) (io.WriteCloser, error) {
	cs, err := opt.check()
	if err != nil {
		return nil, err
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
	aead, err := newAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(salt); err != nil {
		return nil, fmt.Errorf("stream: write salt: %w", err)
	}
	w := &writer{pipeline: newPipeline(aead, header, cs, opt), dst: dst}
	if w.pool != nil {
		runtime.AddCleanup(w, func(p *pool) { p.stop() }, w.pool)
	}
	w.cur = w.newJob()
	return w, nil
}

// newJob returns an empty job with one chunk open for data.
func (w *writer) newJob() *job {
	j := w.spare(func() *job {
		return &job{
			aead:   w.aead,
			header: w.header,
			chunk:  w.chunk,
			buf:    make([]byte, w.batch*(w.chunk+Overhead)),
		}
	})
	j.n, j.fill, j.last, j.err = 1, 0, false, nil
	return j
}

// room is where the next bytes go: the free part of cur's open chunk. When
// that chunk is full, the bytes are known to be more than the stream's final
// chunk, so room opens the next chunk, flushing cur first if it has no chunk
// left.
func (w *writer) room() ([]byte, error) {
	if w.cur.fill == w.chunk {
		if w.cur.n == w.batch {
			if err := w.flush(false); err != nil {
				return nil, err
			}
		} else {
			w.cur.n++
			w.cur.fill = 0
		}
	}
	off := (w.cur.n-1)*(w.chunk+Overhead) + w.cur.fill
	return w.cur.buf[off : off+w.chunk-w.cur.fill], nil
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

// ReadFrom reads src to EOF straight into the chunk buffers.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	var total int64
	for {
		var n int
		var err error
		if w.cur.fill < w.chunk {
			off := (w.cur.n-1)*(w.chunk+Overhead) + w.cur.fill
			n, err = src.Read(w.cur.buf[off : off+w.chunk-w.cur.fill])
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
	stride := w.chunk + Overhead
	if w.cur.n < w.batch {
		off := w.cur.n * stride
		n, err := src.Read(w.cur.buf[off : off+w.chunk])
		if n > 0 {
			w.cur.n++
			w.cur.fill = n
		}
		return n, err
	}
	next := w.newJob()
	n, err := src.Read(next.buf[:w.chunk])
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
	if maxCounter-w.counter < span {
		w.err = fmt.Errorf("stream: chunk %d: %w", maxCounter, ErrCounterOverflow)
		if next != nil {
			w.free = append(w.free, next)
		}
		return w.err
	}
	j.first, j.last = w.counter, last
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

func (w *writer) drainOne() error {
	j := popFront(&w.queue)
	w.pool.wait(j)
	if _, err := w.dst.Write(j.sealed()); err != nil {
		w.err = fmt.Errorf("stream: write chunks %d-%d: %w", j.first, j.first+uint64(j.n-1), err)
		return w.err
	}
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
	return nil
}

// ---------------------------------------------------------------- reader

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
}

// NewReader opens a stream written by NewWriter with the same key, header and
// chunk size. It reads the salt before it returns. Each chunk is
// authenticated before any of its plaintext is returned; a chunk that fails
// returns an error wrapping ErrAuth, ErrTruncated or ErrTrailingData and the
// chunk number, never io.EOF, and no byte of that chunk. Plaintext of earlier
// chunks has been returned by then: a consumer that must not act on a partial
// stream should write to a temporary file and keep it only on io.EOF. The
// reader also implements io.WriterTo, so io.Copy writes straight from its
// chunk buffers.
func NewReader(src io.Reader, key []byte, header []byte, opt Options) (io.Reader, error) {
	cs, err := opt.check()
	if err != nil {
		return nil, err
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("stream: key is %d bytes, want %d", len(key), KeySize)
	}
	salt := make([]byte, SaltSize)
	if _, err := io.ReadFull(src, salt); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("stream: salt: %w", ErrTruncated)
		}
		return nil, fmt.Errorf("stream: read salt: %w", err)
	}
	aead, err := newAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	r := &reader{pipeline: newPipeline(aead, header, cs, opt), src: src}
	if r.pool != nil {
		runtime.AddCleanup(r, func(p *pool) { p.stop() }, r.pool)
	}
	return r, nil
}

func (r *reader) newJob() *job {
	j := r.spare(func() *job {
		return &job{
			aead:   r.aead,
			header: r.header,
			chunk:  r.chunk,
			open:   true,
			buf:    make([]byte, r.batch*(r.chunk+Overhead)+1),
			out:    make([]byte, 0, r.batch*r.chunk),
		}
	})
	j.n, j.last, j.tail, j.err = 0, false, nil, nil
	return j
}

// readJob reads the next run of chunks from src into a job and decides from
// the framing which of them, if any, is the final one. A framing error after
// some whole chunks goes into the job's tail, behind those chunks.
func (r *reader) readJob() (*job, error) {
	stride := r.chunk + Overhead
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
	case rest < Overhead:
		j.n = full
		j.tail = fmt.Errorf("stream: chunk %d: %d bytes, shorter than a tag: %w", r.counter+uint64(full), rest, ErrTruncated)
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
	if maxCounter-r.counter < span {
		r.free = append(r.free, j)
		return nil, fmt.Errorf("stream: chunk %d: %w", maxCounter, ErrCounterOverflow)
	}
	j.first = r.counter
	r.counter += span
	r.sawLast = j.last || j.tail != nil
	return j, nil
}

// fill reads and starts jobs until the window is full or the final chunk has
// been read. A read error is queued behind the jobs before it.
func (r *reader) fill() {
	for !r.sawLast && len(r.queue) < r.window {
		j, err := r.readJob()
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
		r.err = io.EOF
		r.pool.stopNil()
		return io.EOF
	}
	j := popFront(&r.queue)
	r.pool.wait(j)
	r.cur, r.unread = j, j.out
	return nil
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

// WriteTo writes the rest of the plaintext to dst, job by job.
func (r *reader) WriteTo(dst io.Writer) (int64, error) {
	var total int64
	for {
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
				return total, nil
			}
			return total, err
		}
	}
}

// drop drops the jobs in flight, waiting for their workers so that no
// goroutine still writes into a buffer, and stops the pool.
func (p *pipeline) drop() {
	for _, j := range p.queue {
		p.pool.wait(j)
	}
	p.queue = nil
	p.pool.stopNil()
}
