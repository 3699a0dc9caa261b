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
	// Parallel: 0 or 1 seals/opens chunks on the calling goroutine; N > 1
	// seals/opens up to N chunks at once, on N-1 worker goroutines and the
	// caller's (which works on queued chunks while it waits for the oldest),
	// at most 2N chunks in flight, output order kept.
	Parallel int
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

// job is one chunk on its way through the pipeline. It carries all it needs
// to be sealed or opened, so that workers hold no reference to the stream.
type job struct {
	aead    cipher.AEAD
	aad     []byte // the header, for chunk 0 only
	counter uint64
	last    bool
	open    bool // open (reader) rather than seal (writer)
	full    int  // wire size of a full chunk (reader)
	nonce   [nonceSize]byte
	in      []byte // writer: plaintext, sealed in place; reader: ciphertext
	out     []byte // reader: plaintext
	err     error
	done    chan struct{} // parallel mode: one token when the job is done
}

func (j *job) setNonce(last bool) []byte {
	clear(j.nonce[:3]) // the high bytes of the 11-byte counter: always zero here
	binary.BigEndian.PutUint64(j.nonce[3:11], j.counter)
	j.nonce[11] = 0
	if last {
		j.nonce[11] = 1
	}
	return j.nonce[:]
}

func (j *job) run() {
	if j.open {
		j.doOpen()
		return
	}
	j.in = j.aead.Seal(j.in[:0], j.setNonce(j.last), j.in, j.aad)
}

// doOpen authenticates and decrypts one chunk. j.last is what the framing
// says (a short chunk, or a full one followed by EOF). When that fails on a
// full chunk the other flag is tried, only to tell truncation and trailing
// data from tampering: nothing of such a chunk is ever returned.
func (j *job) doOpen() {
	out, err := j.aead.Open(j.out[:0], j.setNonce(j.last), j.in, j.aad)
	if err == nil {
		if j.last && len(out) == 0 && j.counter != 0 {
			// NewWriter never writes an empty final chunk after data.
			j.err = fmt.Errorf("stream: chunk %d: empty final chunk: %w", j.counter, ErrAuth)
			return
		}
		j.out = out
		return
	}
	j.out = j.out[:0]
	if len(j.in) == j.full {
		if _, err := j.aead.Open(j.out[:0], j.setNonce(!j.last), j.in, j.aad); err == nil {
			j.out = j.out[:0]
			if j.last {
				j.err = fmt.Errorf("stream: chunk %d: final chunk missing: %w", j.counter, ErrTruncated)
			} else {
				j.err = fmt.Errorf("stream: chunk %d is the final chunk: %w", j.counter, ErrTrailingData)
			}
			return
		}
		j.out = j.out[:0]
	}
	j.err = fmt.Errorf("stream: chunk %d: %w", j.counter, ErrAuth)
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

// wait waits for a job started by run. While it waits, the caller seals or
// opens queued chunks itself rather than sleep, so the caller's goroutine is
// never idle while there is work (at most GOMAXPROCS goroutines run anyway).
func (p *pool) wait(j *job) {
	if p == nil || j.done == nil {
		return
	}
	for {
		select {
		case <-j.done:
			return
		case other, ok := <-p.jobs:
			if !ok {
				<-j.done
				return
			}
			other.run()
			other.done <- struct{}{}
		}
	}
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

type writer struct {
	dst    io.Writer
	aead   cipher.AEAD
	header []byte
	chunk  int

	cur     *job   // the chunk being filled
	queue   []*job // chunks started, in stream order
	free    []*job
	counter uint64
	pool    *pool // nil in serial mode
	window  int
	err     error
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
	cs, err := opt.chunkSize()
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
	w := &writer{
		dst:    dst,
		aead:   aead,
		header: append([]byte(nil), header...),
		chunk:  cs,
		window: opt.window(),
	}
	if n := opt.parallel(); n > 1 {
		w.pool = newPool(n-1, w.window)
		runtime.AddCleanup(w, func(p *pool) { p.stop() }, w.pool)
	}
	w.cur = w.newJob()
	return w, nil
}

func (w *writer) newJob() *job {
	if n := len(w.free); n > 0 {
		j := w.free[n-1]
		w.free = w.free[:n-1]
		j.in = j.in[:0]
		j.err = nil
		return j
	}
	return &job{aead: w.aead, in: make([]byte, 0, w.chunk+Overhead)}
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if len(w.cur.in) == w.chunk {
			// The buffered chunk is full and more data follows: it is not the last.
			if err := w.flush(false, w.newJob()); err != nil {
				return written, err
			}
		}
		k := min(w.chunk-len(w.cur.in), len(p))
		w.cur.in = append(w.cur.in, p[:k]...)
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
		if len(w.cur.in) < w.chunk {
			l := len(w.cur.in)
			n, err = src.Read(w.cur.in[l:w.chunk])
			w.cur.in = w.cur.in[:l+n]
		} else {
			// The current chunk is full: it is the last one unless src has more.
			next := w.newJob()
			n, err = src.Read(next.in[:w.chunk])
			next.in = next.in[:n]
			if n > 0 {
				if ferr := w.flush(false, next); ferr != nil {
					return total, ferr
				}
			} else {
				w.free = append(w.free, next)
			}
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

func (w *writer) check() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("stream: write after close")
	}
	return nil
}

// flush starts sealing the current chunk, makes next the current one, and
// writes out finished chunks while the window is full.
func (w *writer) flush(last bool, next *job) error {
	if !last && w.counter == maxCounter {
		w.err = fmt.Errorf("stream: chunk %d: %w", w.counter, ErrCounterOverflow)
		return w.err
	}
	j := w.cur
	j.counter, j.last = w.counter, last
	j.aad = nil
	if j.counter == 0 {
		j.aad = w.header
	}
	w.counter++
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
	if _, err := w.dst.Write(j.in); err != nil {
		w.err = fmt.Errorf("stream: write chunk %d: %w", j.counter, err)
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
		w.drainAll()
		return w.err
	}
	if err := w.flush(true, nil); err != nil {
		w.drainAll()
		return err
	}
	for len(w.queue) > 0 {
		if err := w.drainOne(); err != nil {
			w.drainAll()
			return err
		}
	}
	return nil
}

func (p *pool) stopNil() {
	if p != nil {
		p.stop()
	}
}

// drainAll waits for chunks in flight without writing them.
func (w *writer) drainAll() {
	for _, j := range w.queue {
		w.pool.wait(j)
	}
	w.queue = nil
}

// ---------------------------------------------------------------- reader

type reader struct {
	src    io.Reader
	aead   cipher.AEAD
	header []byte
	chunk  int

	queue   []*job // chunks read and started, in stream order
	free    []*job
	cur     *job   // the chunk whose plaintext is being returned
	unread  []byte // rest of cur.out
	counter uint64 // next chunk number to read from src
	sawLast bool   // nothing more to read from src
	// A chunk is read together with the first byte after it, to tell the
	// final chunk from the others; that byte is carried into the next chunk.
	carry    byte
	hasCarry bool
	pool     *pool
	window   int
	err      error // sticky
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
	cs, err := opt.chunkSize()
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
	r := &reader{
		src:    src,
		aead:   aead,
		header: append([]byte(nil), header...),
		chunk:  cs,
		window: opt.window(),
	}
	if n := opt.parallel(); n > 1 {
		r.pool = newPool(n-1, r.window)
		runtime.AddCleanup(r, func(p *pool) { p.stop() }, r.pool)
	}
	return r, nil
}

func (r *reader) newJob() *job {
	if n := len(r.free); n > 0 {
		j := r.free[n-1]
		r.free = r.free[:n-1]
		j.err = nil
		return j
	}
	return &job{
		aead: r.aead,
		open: true,
		full: r.chunk + Overhead,
		in:   make([]byte, r.chunk+Overhead+1),
		out:  make([]byte, 0, r.chunk),
	}
}

// readChunk reads the next chunk's ciphertext from src into a job and decides
// from the framing whether it is the final one.
func (r *reader) readChunk() (*job, error) {
	full := r.chunk + Overhead
	j := r.newJob()
	j.in = j.in[:full+1]
	start := 0
	if r.hasCarry {
		j.in[0] = r.carry
		start, r.hasCarry = 1, false
	}
	n, err := io.ReadFull(r.src, j.in[start:])
	n += start
	j.in = j.in[:min(n, full)]
	switch {
	case n == full+1:
		// A byte follows this chunk: it is not the final one.
		r.carry, r.hasCarry = j.in[:full+1][full], true
		j.last = false
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		r.free = append(r.free, j)
		return nil, fmt.Errorf("stream: read chunk %d: %w", r.counter, err)
	case n == 0:
		r.free = append(r.free, j)
		return nil, fmt.Errorf("stream: chunk %d: no final chunk: %w", r.counter, ErrTruncated)
	case n < Overhead:
		r.free = append(r.free, j)
		return nil, fmt.Errorf("stream: chunk %d: %d bytes, shorter than a tag: %w", r.counter, n, ErrTruncated)
	default:
		// A full chunk followed by the end, or a short chunk: the final one.
		j.last = true
	}
	if !j.last && r.counter == maxCounter {
		r.free = append(r.free, j)
		return nil, fmt.Errorf("stream: chunk %d: %w", r.counter, ErrCounterOverflow)
	}
	j.counter = r.counter
	j.aad = nil
	if j.counter == 0 {
		j.aad = r.header
	}
	r.counter++
	r.sawLast = j.last
	return j, nil
}

// fill reads and starts chunks until the window is full or the final chunk
// has been read. A read error is queued behind the chunks before it.
func (r *reader) fill() {
	for !r.sawLast && len(r.queue) < r.window {
		j, err := r.readChunk()
		if err != nil {
			r.queue = append(r.queue, &job{err: err})
			r.sawLast = true
			return
		}
		r.queue = append(r.queue, j)
		r.pool.run(j)
	}
}

// next makes the next chunk current. It returns io.EOF after the final chunk.
func (r *reader) next() error {
	if r.err != nil {
		return r.err
	}
	if r.cur != nil {
		r.free = append(r.free, r.cur)
		r.cur = nil
	}
	r.fill()
	if len(r.queue) == 0 {
		r.err = io.EOF
		r.pool.stopNil()
		return io.EOF
	}
	j := popFront(&r.queue)
	r.pool.wait(j)
	if j.err != nil {
		r.err = j.err
		r.abandon()
		return r.err
	}
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

// WriteTo writes the rest of the plaintext to dst, chunk by chunk.
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

// abandon drops the chunks behind a failed one, waiting for their workers so
// that no goroutine still writes into a buffer, and stops the pool.
func (r *reader) abandon() {
	for _, j := range r.queue {
		r.pool.wait(j)
	}
	r.queue = nil
	r.pool.stopNil()
}
