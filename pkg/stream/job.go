package stream

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// job is a run of consecutive chunks on their way through the pipeline: one
// chunk in serial mode, a batch of them in parallel mode. It carries all it
// needs to be sealed or opened, so that workers hold no reference to the
// stream.
//
// A writer's job holds the plaintext of its chunks contiguous in in, and
// seals chunk i to buf[i×stride:], so that the job's wire bytes are
// contiguous in buf: one write per job. A reader's job holds the wire bytes
// as read in buf, and opens chunk i into out[i×C:]; a positional reader's job
// first reads those bytes itself, at the offset its first chunk has in the
// file (readAt).
type job struct {
	s     *suite
	first uint64 // the number of the job's first chunk
	n     int    // chunks in the job
	last  bool   // the job's last chunk is the stream's final chunk
	open  bool   // open (reader) rather than seal (writer)
	in    []byte // writer: plaintext, chunk i at in[i×C:]
	buf   []byte // writer: the sealed chunks; reader: the wire bytes
	fill  int    // writer: plaintext bytes in chunk n-1
	out   []byte // reader: the plaintext of the chunks opened, contiguous
	tail  error  // reader: a framing error after the job's chunks
	err   error  // the first chunk that failed, or tail
	done  chan struct{}
	sc    scratch
	// A positional job reads its own input on the worker that seals or
	// opens it: want bytes at off of ra (a reader's wire bytes, a writer's
	// plaintext); and writes its output there too, at woff of wa (a
	// writer's wire bytes, a reader's plaintext), when the destination is
	// a regular file.
	ra   io.ReaderAt
	off  int64
	want int
	wa   io.WriterAt
	woff int64
}

// span is how many chunk numbers after the job's first its chunks take: all
// of them but a final one need a successor number.
func (j *job) span() uint64 {
	if j.last {
		return uint64(j.n) - 1
	}
	return uint64(j.n)
}

// sealed is the wire bytes of a sealed writer job.
func (j *job) sealed() []byte {
	return j.buf[:(j.n-1)*j.s.stride()+j.fill+j.s.over]
}

func (j *job) run() {
	if j.open {
		if j.ra != nil {
			j.readAt()
		}
		j.doOpen()
		j.writeAt(j.out)
		return
	}
	if j.ra != nil && !j.readIn() {
		return
	}
	c, stride := j.s.chunk, j.s.stride()
	for i := range j.n {
		size, last := c, false
		if i == j.n-1 {
			size, last = j.fill, j.last
		}
		j.s.seal(&j.sc, j.buf[i*stride:], j.in[i*c:i*c+size], j.first+uint64(i), last)
	}
	j.writeAt(j.sealed())
}

// readIn reads a positional writer job's plaintext: whole chunks, planned
// from the input file's size.
func (j *job) readIn() bool {
	n, err := j.ra.ReadAt(j.in[:j.want], j.off)
	if n == j.want {
		return true
	}
	if err == nil || err == io.EOF {
		err = errors.New("the input file shrank while it was read")
	}
	j.err = fmt.Errorf("stream: read input at offset %d: %w", j.off+int64(n), err)
	return false
}

// writeAt writes a positional job's output at its offset. A failed write
// is the job's error, before any other.
func (j *job) writeAt(b []byte) {
	if j.wa == nil {
		return
	}
	if err := writeAt(j.wa, b, j.woff); err != nil {
		j.err = err
	}
}

// writeAt writes b at off of wa.
func writeAt(wa io.WriterAt, b []byte, off int64) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := wa.WriteAt(b, off); err != nil {
		return fmt.Errorf("stream: write at offset %d: %w", off, err)
	}
	return nil
}

// readAt reads a positional job's wire bytes. A short read means the file
// changed (shrank) since its size was taken, or failed: the whole chunks read
// are still opened, as not final, and the job ends with the error behind
// them, so that the stream fails as a sequential read of what is there would.
func (j *job) readAt() {
	buf := j.buf[:j.want]
	n, err := j.ra.ReadAt(buf, j.off)
	if n == len(buf) {
		j.buf = buf
		return
	}
	stride := j.s.stride()
	full := n / stride
	j.buf, j.n, j.last = buf[:full*stride], min(j.n, full), false
	c := j.first + uint64(full)
	if err == nil || err == io.EOF {
		j.tail = fmt.Errorf("stream: chunk %d: the file shrank while being read: %w", c, ErrTruncated)
	} else {
		j.tail = fmt.Errorf("stream: read chunk %d: %w", c, err)
	}
}

// doOpen authenticates and decrypts the job's chunks in order, and stops at
// the first that fails: j.out then holds the plaintext of the chunks before
// it, and j.err says why.
func (j *job) doOpen() {
	stride := j.s.stride()
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
	pt, err := j.s.open(&j.sc, dst, ct, c, last)
	if err == nil {
		if last && len(pt) == 0 && c != 0 {
			// NewWriter never writes an empty final chunk after data.
			return fmt.Errorf("stream: chunk %d: empty final chunk: %w", c, ErrAuth)
		}
		j.out = j.out[:l+len(pt)]
		return nil
	}
	if len(ct) == j.s.stride() {
		if _, err := j.s.open(&j.sc, dst, ct, c, !last); err == nil {
			clear(j.out[l : l+j.s.chunk])
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

// pipeline is what a writer and a reader share: the stream's cipher and
// framing, the jobs in flight and the spare ones, and the workers.
type pipeline struct {
	s       *suite
	opt     Options
	workers int
	batch   int    // chunks per job
	queue   []*job // jobs started, in stream order
	free    []*job
	pool    *pool // nil in serial mode
	window  int
	err     error // sticky
}

func newPipeline(s *suite, opt Options) pipeline {
	p := pipeline{s: s, opt: opt, workers: opt.parallel(), batch: opt.batch(s.chunk)}
	p.window = opt.window(p.batch * (s.stride() + s.chunk))
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

// drop drops the jobs in flight, waiting for their workers so that no
// goroutine still writes into a buffer, and stops the pool.
func (p *pipeline) drop() {
	for _, j := range p.queue {
		p.pool.wait(j)
	}
	p.queue = nil
	p.pool.stopNil()
}
