package commands

import (
	"errors"
	"io"
	"os"
)

// The stream's positional reader (pkg/stream) reads a regular file's
// chunks at their offsets, on its workers, when its source can read at
// offsets and say its size and position (an *os.File can). guardedReader
// passes that through for a regular input file, with the interrupt check on
// every read; for anything else (stdin, a pipe, a FIFO, a terminal, an input
// with --expect-bytes) Stat fails and the stream reads sequentially.

var errNotPositional = errors.New("input is not read at offsets")

// file is the input as a regular file, or nil.
func (g *guardedReader) file() *os.File {
	f, ok := g.r.(*os.File)
	if !ok || g.expect >= 0 {
		return nil
	}
	return f
}

// Stat is the input file's, or an error when the input is not one.
func (g *guardedReader) Stat() (os.FileInfo, error) {
	if f := g.file(); f != nil {
		return f.Stat()
	}
	return nil, errNotPositional
}

// Seek moves or reports the input file's offset.
func (g *guardedReader) Seek(off int64, whence int) (int64, error) {
	if f := g.file(); f != nil {
		return f.Seek(off, whence)
	}
	return 0, errNotPositional
}

// ReadAt reads the input file at off, unless the run was interrupted.
func (g *guardedReader) ReadAt(p []byte, off int64) (int, error) {
	if ie := interrupted(g.ctx); ie != nil {
		return 0, ie
	}
	f := g.file()
	if f == nil {
		return 0, errNotPositional
	}
	n, err := f.ReadAt(p, off)
	g.total.Add(int64(n))
	return n, err
}

var _ interface {
	io.ReaderAt
	io.Seeker
	Stat() (os.FileInfo, error)
} = (*guardedReader)(nil)

// The stream writes a regular output file at offsets (pwrite), from its
// workers, when its destination offers WriteAt, Seek and Stat:
// guardedWriter passes them through for the temporary file writeOutput
// makes, with the interrupt check on every write; stdout, a device or a
// pipe is written in order.

func (g *guardedWriter) file() *os.File {
	f, _ := g.w.(*os.File)
	return f
}

// Stat is the output file's, or an error when the output is not one.
func (g *guardedWriter) Stat() (os.FileInfo, error) {
	if f := g.file(); f != nil {
		return f.Stat()
	}
	return nil, errNotPositional
}

// Seek moves or reports the output file's offset.
func (g *guardedWriter) Seek(off int64, whence int) (int64, error) {
	if f := g.file(); f != nil {
		return f.Seek(off, whence)
	}
	return 0, errNotPositional
}

// WriteAt writes the output file at off, unless the run was interrupted.
func (g *guardedWriter) WriteAt(p []byte, off int64) (int, error) {
	if ie := interrupted(g.ctx); ie != nil {
		return 0, ie
	}
	f := g.file()
	if f == nil {
		return 0, errNotPositional
	}
	n, err := f.WriteAt(p, off)
	g.total.Add(int64(n))
	return n, err
}

var _ interface {
	io.WriterAt
	io.Seeker
	Stat() (os.FileInfo, error)
} = (*guardedWriter)(nil)
