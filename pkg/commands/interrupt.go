package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// InterruptError is the cause of a run's context when SIGINT, SIGTERM or
// SIGHUP arrived: the run stops, and cmekctl exits 128 + the signal number
// (130, 143, 129), as a shell reports a process killed by it.
type InterruptError struct{ Signal syscall.Signal }

func (e *InterruptError) Error() string {
	return "interrupted by " + signalName(e.Signal)
}

// Code is the exit code: 128 + the signal number.
func (e *InterruptError) Code() int { return 128 + int(e.Signal) }

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// instantVerbs print what the binary itself holds and wait for nothing, so
// they take no signals: Ctrl-C ends them as it ends any program that does
// not catch it (a shell reports 128 + the signal number, as for the verbs
// that do). os/signal's set-up and tear-down hand each of the three signals
// to its own signal thread and back, which was ~0.8 ms of the ~9 ms that
// `cmekctl version` takes (docs/performance.md, "Start-up").
var instantVerbs = map[string]bool{"version": true, "exit-codes": true}

// runContext is the context of a run of verb (as lazyVerb names it): for an
// instant verb one that nothing cancels, else signalContext's.
func runContext(verb string) (context.Context, func()) {
	if instantVerbs[verb] {
		return context.Background(), func() {}
	}
	return signalContext()
}

// signalContext returns a context cancelled, with an *InterruptError as its
// cause, by the first SIGINT, SIGTERM or SIGHUP. Later signals are ignored
// while the run cleans up (removes a partial output), which takes no time.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			sig, _ := s.(syscall.Signal)
			cancel(&InterruptError{Signal: sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// interrupted returns the *InterruptError that cancelled ctx, or nil.
func interrupted(ctx context.Context) *InterruptError {
	var ie *InterruptError
	if errors.As(context.Cause(ctx), &ie) {
		return ie
	}
	return nil
}

// guardedReader reads the input of a stream. Once the run is interrupted it
// returns the interrupt, also in place of an end of input that came with it
// (a producer killed by the same Ctrl-C closes the pipe): the stream then
// fails and never writes its final chunk. With expect >= 0 an input shorter
// or longer than expect bytes is an error, not an end.
type guardedReader struct {
	ctx    context.Context
	r      io.Reader
	n      int64
	expect int64
	// total counts every byte read, in order or at offsets (the report).
	total atomic.Int64
}

func (g *guardedReader) Read(p []byte) (int, error) {
	if ie := interrupted(g.ctx); ie != nil {
		return 0, ie
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	g.total.Add(int64(n))
	if ie := interrupted(g.ctx); ie != nil {
		return 0, ie
	}
	if g.expect >= 0 {
		if g.n > g.expect {
			return 0, exitf(ExitCorrupt, "the input is longer than --expect-bytes %d", g.expect)
		}
		if err == io.EOF && g.n != g.expect {
			return 0, &ExitError{Code: ExitCorrupt,
				Err:  fmt.Errorf("the input ended after %d bytes, --expect-bytes says %d", g.n, g.expect),
				Hint: "the producer failed or was interrupted; no final chunk was sealed (an OUT file is not written): run it again"}
		}
	}
	return n, err
}

// guardedWriter refuses every write once the run is interrupted, so nothing
// reaches stdout or a pipe after the signal.
type guardedWriter struct {
	ctx context.Context
	w   io.Writer
	// total counts every byte written, in order or at offsets (the report).
	total atomic.Int64
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	if ie := interrupted(g.ctx); ie != nil {
		return 0, ie
	}
	n, err := g.w.Write(p)
	g.total.Add(int64(n))
	return n, err
}

// writeStream runs a stream from in to the output path (see writeOutput)
// so that a signal stops it at once, even while it waits for input: the
// output file is not renamed into place (an old file there is left as it
// was, the temporary file removed), nothing more is written to stdout, and
// the interrupt is returned. expect is --expect-bytes (-1: not given).
// The bytes read and written are returned for the verb's report.
func writeStream(ctx context.Context, f *Factory, path string, in io.Reader, expect int64, fn func(w io.Writer, r io.Reader) error) (streamBytes, error) {
	r := &guardedReader{ctx: ctx, r: in, expect: expect}
	gw := &guardedWriter{ctx: ctx}
	err := writeOutput(f, path, func(w io.Writer) error {
		gw.w = w
		done := make(chan error, 1)
		go func() { done <- fn(gw, r) }()
		select {
		case err := <-done:
			if ie := interrupted(ctx); ie != nil {
				return ie // the signal came as it ended: do not commit
			}
			return err
		case <-ctx.Done():
			if ie := interrupted(ctx); ie != nil {
				return ie
			}
			return ctx.Err()
		}
	})
	return streamBytes{In: r.total.Load(), Out: gw.total.Load()}, err
}

// keyringStamps records, before a verb runs, each keyring file and journal
// of its --keyring directories (size, time and inode), so that an
// interrupted run can say truthfully whether it changed one.
func keyringStamps(dirs []string) map[string]string {
	m := map[string]string{}
	for _, d := range dirs {
		for _, base := range []string{keyring.FileName, keyring.JournalName} {
			p := filepath.Join(d, base)
			m[p] = stamp(p)
		}
	}
	return m
}

func stamp(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return "absent"
	}
	return fmt.Sprintf("%d %d %d", fi.Size(), fi.ModTime().UnixNano(), inode(fi))
}

// changesOutside are the verbs whose work reaches beyond the keyrings and
// the output file (a KMS key's state, tmpfs key files, the Cloud): an
// interrupt of one of them never claims that nothing changed.
var changesOutside = []string{"kms ", "revoke", "unlock", "drill", "region ", "node ", "config "}

// interruptReport is the error an interrupted run exits with: the signal,
// and whether the keyrings given were left as they were.
func interruptReport(f *Factory, ie *InterruptError, _ error) error {
	e := &ExitError{Code: ie.Code(), Err: ie}
	if f.stamps == nil {
		return e
	}
	for p, s := range f.stamps {
		if stamp(p) != s && f.Verb == "backup encrypt" {
			e.Hint = "no backup was written (an old OUT file is as it was); the backup key made for it stays in the keyrings, unused: run the backup again"
			return e
		}
		if stamp(p) != s {
			e.Hint = "a keyring changed before the signal: run the same command again to finish (cmekctl status shows where each node is)"
			return e
		}
	}
	if f.cloud {
		return e
	}
	for _, v := range changesOutside {
		if strings.HasPrefix(f.Verb+" ", v) {
			return e
		}
	}
	e.Hint = "nothing was changed: the keyrings and the output file are as they were"
	return e
}

// expectBytesFlag adds --expect-bytes to a command that seals a stream.
func expectBytesFlag(c *cobra.Command, p *int64) {
	c.Flags().Int64Var(p, "expect-bytes", -1, "fail, sealing nothing, unless the input is exactly N bytes long (a producer that died early gives a short input)")
}

const backupEncryptLong = `Encrypt a backup stream with a fresh backup key (a full backup), with a key
made before by backup-keys create (--backup-key), or with its full backup's
key (--incremental-of). The input and output default to stdin and stdout:

  pg_dump db | cmekctl backup encrypt --keyring DIR - backup.cmek

An end of input is the end of the backup: cmekctl seals its final chunk then,
and a backup cut short by a producer that failed half-way would decrypt cleanly
to half the data. In a shell pipeline, run

  set -o pipefail

so that the pipeline's status is the producer's failure, and give
--expect-bytes N when the size is known: a shorter or longer input then fails
(exit 4) and nothing is sealed. SIGINT, SIGTERM or SIGHUP (Ctrl-C, a stopped
job) stop the run at once: the final chunk is never written, OUT is not
created (a file already there is left as it was), and cmekctl exits 130, 143
or 129.

An OUT file is written beside itself and renamed into place only when the run
succeeds; a device or named pipe (/dev/null, a FIFO) is written in place.

cmekctl says on stderr which backup it wrote and with which backup key (new
for a full backup, its full backup's for an incremental). With -o json the
report (backup ID, backup key ID, bytes, chunks, KMS calls, times) goes to
stdout when OUT is a file, and to stderr when the backup goes to stdout: it
never mixes with the data (docs/json.md).

` + backupKeyUseHelp
