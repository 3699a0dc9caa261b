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
