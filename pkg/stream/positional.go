package stream

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Positional I/O: when a stream's input or output is a regular file, the
// workers read and write their own jobs at the offsets the format fixes
// (pread/pwrite), so that no goroutine moves every byte and reading,
// sealing or opening, and writing overlap across the workers. Pipes, FIFOs,
// terminals and other readers and writers are read and written by the
// caller's goroutine, in order.

// file is what a positional reader needs of its source: an *os.File, or
// anything else that can read at offsets and say its size and position.
type file interface {
	io.ReaderAt
	io.Seeker
	Stat() (os.FileInfo, error)
}

// outFile is what positional writes need of a destination.
type outFile interface {
	io.WriterAt
	io.Seeker
	Stat() (os.FileInfo, error)
}

func fileSize(f interface{ Stat() (os.FileInfo, error) }) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// positionalIn says whether src is a regular file, and where it stands.
func positionalIn(src io.Reader) (f file, off, size int64, ok bool) {
	f, ok = src.(file)
	if !ok {
		return nil, 0, 0, false
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, 0, 0, false
	}
	off, err = f.Seek(0, io.SeekCurrent)
	if err != nil || off > fi.Size() {
		return nil, 0, 0, false
	}
	return f, off, fi.Size(), true
}

// positionalOut says whether dst is a regular file, and its offset.
func positionalOut(dst io.Writer) (f outFile, off int64, ok bool) {
	f, ok = dst.(outFile)
	if !ok {
		return nil, 0, false
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, 0, false
	}
	off, err = f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, false
	}
	return f, off, true
}

// readFromFile is ReadFrom for a regular file: the whole chunks before the
// last go to the workers as jobs that read their own plaintext (job.readIn);
// the last 1..C bytes are read here into the open chunk, for Close to seal
// as the final one. src's offset is left at its end. An input that changes
// size meanwhile is an error: what was sealed would not be the file.
func (w *writer) readFromFile(f file, base, size int64) (int64, error) {
	c := int64(w.s.chunk)
	total := size - base
	if total == 0 {
		return 0, nil
	}
	tail := total - c*((total-1)/c) // 1..C bytes
	body := total - tail
	if done, ok, err := w.drive(f, base, body); ok {
		if err != nil {
			return done, err
		}
	} else if done, err := w.planBody(f, base, body); err != nil {
		return done, err
	}
	return w.readTail(f, base, body, size)
}

// planBody has the body's jobs (the whole chunks before the last) read by
// the workers (job.readIn), planned and handed out in order here.
func (w *writer) planBody(f file, base, body int64) (int64, error) {
	c := int64(w.s.chunk)
	for off := int64(0); off < body; {
		n := min(int64(w.batch)*c, body-off)
		j := w.cur
		j.n, j.fill = int(n/c), int(c)
		j.ra, j.off, j.want = f, base+off, int(n)
		off += n
		if err := w.flush(false); err != nil {
			return off, err
		}
	}
	return body, nil
}

// readTail reads the stream's last 1..C bytes into the open chunk, for
// Close to seal as the final one, and checks the file kept its size.
func (w *writer) readTail(f file, base, body, size int64) (int64, error) {
	total, tail := size-base, size-base-body
	k, err := f.ReadAt(w.cur.in[:tail], base+body)
	w.cur.fill = k
	if int64(k) < tail {
		if err == nil || err == io.EOF {
			err = errors.New("the input file shrank while it was read")
		}
		w.err = fmt.Errorf("stream: read input at offset %d: %w", base+body+int64(k), err)
		return body + int64(k), w.err
	}
	if now, err := fileSize(f); err != nil || now != size {
		w.err = fmt.Errorf("stream: the input file changed size while it was read (%d bytes, now %d, %v): encrypt a file nothing is writing to", size, now, err)
		return total, w.err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return total, fmt.Errorf("stream: %w", err)
	}
	return total, nil
}

// driveShape picks how a driven stream's output leaves (drive.go), and the
// chunks per job and jobs with buffers it runs with; ok is false when the
// caller does better alone (one worker, no file to write).
func (p *pipeline) driveShape(fileOut, discard bool) (mode driveMode, batch, window int, ok bool) {
	switch {
	case p.workers > 1 && discard:
		return driveOwn, p.batch, p.window, true
	case p.workers > 1:
		// A regular file too is written in order, one job at a time:
		// buffered writes to one file take turns in the kernel anyway, and
		// workers that each wrote their own job waited for each other there
		// (measured: file to file at 2 workers took 0.74–1.0 of the time
		// written in order). Two jobs per worker, as the caller-fed
		// pipeline: four made workers wait less for buffers but cost more
		// CPU and time (more memory cycled through the caches). Except to a
		// file, whose writes are the slowest stage: there four per worker
		// (within the 8 MiB bound) let the others seal further ahead of the
		// one writing (interleaved at load 4, 2 workers: 0.93–1.02 of the
		// time with two, 7 of 8 runs under 1).
		if fileOut {
			jobBytes := p.batch * (p.s.stride() + p.s.chunk)
			return driveOrdered, p.batch, max(p.window, min(4*p.workers, maxInflight/jobBytes)), true
		}
		return driveOrdered, p.batch, p.window, true
	case fileOut:
		// One worker reads and seals or opens, the caller writes: in jobs
		// as large as two workers' (serial mode's single chunks would cost
		// a hand-off each), as many as two workers would have.
		two := p.opt
		two.Parallel = 2
		b := two.batch(p.s.chunk)
		return driveCaller, b, two.window(b * (p.s.stride() + p.s.chunk)), true
	}
	return 0, 0, 0, false
}

// jobsOf is the number of jobs of unit bytes each that size bytes make, at
// least one (an empty body is one job that fails).
func jobsOf(size, unit int64) int64 {
	return max(1, (size+unit-1)/unit)
}

// drive is readFromFile's body in a driven stream: the workers plan, read
// and seal its jobs themselves (drive.go). ok is false when the caller
// plans them instead (planBody).
func (w *writer) drive(f file, base, body int64) (done int64, ok bool, err error) {
	mode, batch, window, ok := w.driveShape(w.wa != nil, false)
	if !ok || body == 0 {
		return 0, ok, nil
	}
	s := w.s
	c, stride := int64(s.chunk), int64(s.stride())
	unit := int64(batch) * c
	d := &driver{mode: mode, jobs: jobsOf(body, unit), workers: w.workers, window: window}
	d.fresh = func() *job {
		j := &job{s: s, in: buffer(batch * s.chunk), buf: buffer(batch * s.stride())}
		noDump(j.in) // plaintext (the buffer may have been another size's ciphertext)
		return j
	}
	d.plan = func(j *job, k int64) {
		off := k * unit
		n := min(unit, body-off)
		j.n, j.fill, j.last, j.err = int(n/c), int(c), false, nil
		j.ra, j.off, j.want, j.first = f, base+off, int(n), uint64(k)*uint64(batch)
		j.wa = nil
		if s.maxCounter-j.first < j.span() {
			j.err = overflowError(s)
		}
	}
	d.emit = func(j *job) error {
		if j.err != nil {
			return nil // nothing sealed
		}
		b := j.sealed()
		if w.wa != nil {
			return writeAt(w.wa, b, w.wbase+int64(j.first)*stride)
		}
		if _, err := w.dst.Write(b); err != nil {
			return fmt.Errorf("stream: write chunks %d-%d: %w", j.first, j.first+uint64(j.n-1), err)
		}
		return nil
	}
	res := d.run()
	done = min(body, res.ok*unit)
	w.counter = uint64(done / c)
	w.wrote += (done / c) * stride
	if res.err != nil {
		w.err = res.err
	}
	return done, true, res.err
}

// drive is WriteTo for a positional reader in a driven stream: the
// workers plan, read, open and write its jobs themselves (drive.go). ok is
// false when the caller does better alone.
func (r *reader) drive(dst io.Writer) (n int64, ok bool, err error) {
	f, wbase, fileOut := positionalOut(dst)
	mode, batch, window, ok := r.driveShape(fileOut, dst == io.Discard)
	if !ok {
		return 0, false, nil
	}
	if fileOut {
		r.wa, r.wbase, r.wseek = f, wbase, f
	}
	s := r.s
	c, stride := int64(s.chunk), int64(s.stride())
	body := r.end - r.base
	d := &driver{mode: mode, jobs: jobsOf(body, int64(batch)*stride), workers: r.workers, window: window}
	d.fresh = func() *job {
		j := &job{s: s, open: true, buf: buffer(batch * s.stride()), out: buffer(batch * s.chunk)[:0]}
		noDump(j.out) // plaintext (the buffer may have been another size's ciphertext)
		return j
	}
	d.plan = func(j *job, k int64) {
		j.wa = nil
		if err := r.planAt(j, uint64(k)*uint64(batch), batch); err != nil {
			j.err = err
		}
	}
	d.emit = func(j *job) error {
		if fileOut {
			return writeAt(f, j.out, wbase+int64(j.first)*c)
		}
		if len(j.out) == 0 {
			return nil
		}
		k, err := dst.Write(j.out)
		if err == nil && k < len(j.out) {
			err = io.ErrShortWrite
		}
		return err
	}
	res := d.run()
	r.pool.stopNil()
	if res.err != nil {
		r.err = res.err
		return res.ok*int64(batch)*c + int64(res.failedOut), true, res.err
	}
	// Every chunk opened: the body held ceil(body/stride) chunks.
	n = body - (body+stride-1)/stride*int64(s.over)
	if r.err = r.atEnd(); r.err != io.EOF {
		return n, true, r.err
	}
	if fileOut {
		if _, err := f.Seek(wbase+n, io.SeekStart); err != nil {
			return n, true, fmt.Errorf("stream: %w", err)
		}
	}
	return n, true, nil
}
