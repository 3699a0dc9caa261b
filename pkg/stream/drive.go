package stream

import (
	"sync"
	"sync/atomic"
)

// Driven streams. When the input is a regular file and the caller hands the
// whole stream over at once (writer.ReadFrom, reader.WriteTo), every job's
// plan is a function of its number alone: the file's size fixes the framing.
// So the workers claim job numbers themselves, in order, as the floor in
// BenchmarkPaths does, and no goroutine hands jobs out: a caller that plans
// and hands out jobs runs only when a worker gives up its core, and the
// workers wait for it (measured: a quarter to a third of their time).
//
// A job's output leaves in one of three ways (driveMode, chosen by
// pipeline.driveShape):
//
//   - driveOwn: nothing to write (io.Discard: backup verify). Each worker
//     keeps one job's buffers for all its jobs; of the jobs that fail, the
//     first in stream order decides the error, and no job after it starts.
//   - driveOrdered: the output goes out in stream order, to a regular file
//     (pwrite at the job's offset) or to any other writer (a pipe, a
//     terminal, a device). A finished job waits in a ring of window jobs for
//     its turn, and whichever worker finds the next job ready writes it, and
//     those ready after it; the output stops at the first job that fails.
//     No goroutine writes every byte, and no two write at once: buffered
//     writes to one file take turns in the kernel anyway.
//   - driveCaller: one worker and a regular file to write: the worker reads
//     and seals or opens, the caller writes each job at its offset, so that
//     writing overlaps the worker's reading and sealing.
type driveMode int

const (
	driveOwn driveMode = iota
	driveOrdered
	driveCaller
)

// driver runs one driven stream.
type driver struct {
	mode    driveMode
	jobs    int64 // jobs in the stream
	workers int
	window  int // driveOrdered, driveCaller: jobs with buffers
	// plan makes j job number k: its chunks, offsets and flags. A planning
	// error (too many chunks) goes in j.err, and the job is not run.
	plan  func(j *job, k int64)
	fresh func() *job
	// emit writes a finished job's output (driveOrdered, driveCaller); it
	// runs for each job in stream order, one at a time, up to the first
	// that fails (that one included: the plaintext of its chunks before the
	// failing one is output, as a sequential read would return it).
	emit func(j *job) error

	next atomic.Int64 // the next job number to claim
	made atomic.Int64 // job buffer sets made
	all  []*job       // the jobs made, for their buffers to be kept (spares)
	stop atomic.Int64 // no job from this number on starts
	quit chan struct{}

	mu     sync.Mutex
	failAt int64 // the first job that failed, in stream order (jobs if none)
	err    error
	// failedOut: the plaintext bytes the failed job output before its
	// failing chunk (a reader's).
	failedOut int
	// driveOrdered: done jobs waiting for their turn, job k at k%window.
	ring     []*job
	ringK    []int64
	turn     int64
	emitting bool
	free     chan *job
	slots    []chan *job // driveCaller: job k at k%window, for the caller
}

// driveResult is what a driven stream did: the jobs that succeeded before
// the first failure (all of them if err is nil), the failure, and the
// plaintext bytes the failed job output before its failing chunk.
type driveResult struct {
	ok        int64
	err       error
	failedOut int
}

func (d *driver) run() driveResult {
	d.failAt = d.jobs
	d.stop.Store(d.jobs)
	d.quit = make(chan struct{})
	// Jobs' buffers are made as workers first need them, up to window sets:
	// the in-flight bound holds in every mode, however many workers there
	// are (each worker in driveOwn keeps one set, so no more workers run).
	d.free = make(chan *job, d.window)
	workers := d.workers
	if d.mode == driveOwn {
		workers = min(workers, d.window)
	} else {
		d.ring, d.ringK = make([]*job, d.window), make([]int64, d.window)
		d.slots = make([]chan *job, d.window)
		for i := range d.slots {
			d.slots[i] = make(chan *job, 1)
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(d.work)
	}
	if d.mode == driveCaller {
		d.callerEmits()
	}
	wg.Wait()
	for _, j := range d.all {
		j.spare()
	}
	return driveResult{ok: d.failAt, err: d.err, failedOut: d.failedOut}
}

// madeJob, when set (tests), sees each job a driven stream makes.
var madeJob func(*job)

// spares keeps the buffers of finished driven streams for the next ones, by
// size: a process that verifies many files (or a benchmark) then reuses
// memory its jobs have touched, rather than having fresh pages faulted in
// and zeroed for every stream. A sync.Pool lets the garbage collector free
// them. A buffer taken from here may hold another stream's bytes: jobs only
// read what they have written.
var spares sync.Map // int (cap) → *sync.Pool of *[]byte

// buffer returns a buffer of n bytes, a kept one if there is one.
func buffer(n int) []byte {
	if p, ok := spares.Load(n); ok {
		if b, ok := p.(*sync.Pool).Get().(*[]byte); ok {
			return (*b)[:n]
		}
	}
	return make([]byte, n)
}

// keep keeps b's storage for buffer.
func keep(b []byte) {
	if cap(b) == 0 {
		return
	}
	b = b[:cap(b)]
	p, _ := spares.LoadOrStore(cap(b), new(sync.Pool))
	p.(*sync.Pool).Put(&b)
}

// spare keeps a driven job's buffers; the job is not used again.
func (j *job) spare() {
	keep(j.in)
	keep(j.buf)
	keep(j.out)
	j.in, j.buf, j.out = nil, nil, nil
}

// take returns a job's buffers: spare ones, new ones while fewer than
// window sets exist, or the next set given back.
func (d *driver) take() (*job, bool) {
	select {
	case j := <-d.free:
		return j, true
	default:
	}
	if d.made.Add(1) <= int64(d.window) {
		j := d.fresh()
		if madeJob != nil {
			madeJob(j)
		}
		d.mu.Lock()
		d.all = append(d.all, j)
		d.mu.Unlock()
		return j, true
	}
	select {
	case j := <-d.free:
		return j, true
	case <-d.quit:
		return nil, false
	}
}

// work is one worker: it claims the next job number, plans, runs and hands
// on the job, until the stream's jobs run out or one fails. It takes the
// buffers before the number, so that a job claimed never waits for buffers
// that jobs after it hold.
func (d *driver) work() {
	var own *job // driveOwn: the worker's buffers, for all its jobs
	for {
		j := own
		if j == nil {
			var ok bool
			if j, ok = d.take(); !ok {
				return
			}
		}
		k := d.next.Add(1) - 1
		if k >= d.stop.Load() {
			d.free <- j
			return
		}
		d.plan(j, k)
		if j.err == nil {
			j.run()
		}
		switch d.mode {
		case driveOwn:
			own = j
			if j.err != nil {
				d.fail(k, j)
			}
		case driveOrdered:
			d.deposit(k, j)
		case driveCaller:
			// Job k-window has left its slot: its buffers are this job's.
			d.slots[k%int64(d.window)] <- j
		}
	}
}

// fail records job k's failure (driveOwn) if it is the first in stream
// order so far, and stops jobs after it from starting.
func (d *driver) fail(k int64, j *job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k < d.failAt {
		d.failAt, d.err, d.failedOut = k, j.err, len(j.out)
		d.stop.Store(k + 1)
	}
}

// deposit puts finished job k in the ring. In driveOrdered mode, when no
// worker is writing, this one writes every job that is ready in turn.
func (d *driver) deposit(k int64, j *job) {
	d.mu.Lock()
	if d.failAt < d.jobs {
		// A job before this one failed: its output is not wanted.
		d.mu.Unlock()
		d.free <- j
		return
	}
	i := k % int64(d.window)
	d.ring[i], d.ringK[i] = j, k
	if d.emitting {
		d.mu.Unlock()
		return
	}
	d.emitting = true
	for {
		i := d.turn % int64(d.window)
		j := d.ring[i]
		if j == nil || d.ringK[i] != d.turn || d.failAt < d.jobs {
			break
		}
		d.ring[i] = nil
		d.mu.Unlock()
		out, err := d.emitOne(j)
		d.mu.Lock()
		if err != nil {
			d.failAt, d.err, d.failedOut = d.turn, err, out
			d.stop.Store(d.turn + 1)
			d.releaseRing()
		}
		d.turn++
		d.free <- j
	}
	d.emitting = false
	d.mu.Unlock()
}

// emitOne writes a job's output and says whether the stream stops there,
// and how much plaintext of a failed job was output.
func (d *driver) emitOne(j *job) (int, error) {
	if err := d.emit(j); err != nil {
		return 0, err
	}
	return len(j.out), j.err
}

// releaseRing returns the buffers of jobs waiting in the ring after a
// failure. d.mu is held.
func (d *driver) releaseRing() {
	for i, j := range d.ring {
		if j != nil {
			d.ring[i] = nil
			d.free <- j
		}
	}
}

// callerEmits is the caller's part in driveCaller mode: it writes the jobs
// in turn as the worker finishes them, and stops the worker at the first
// that fails.
func (d *driver) callerEmits() {
	defer close(d.quit)
	for k := range d.jobs {
		j := <-d.slots[k%int64(d.window)]
		out, err := d.emitOne(j)
		d.free <- j
		if err != nil {
			d.mu.Lock()
			d.failAt, d.err, d.failedOut = k, err, out
			d.stop.Store(k + 1)
			d.mu.Unlock()
			return
		}
	}
}
