package commands

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/safefile"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// DataOptions are the data verbs' options.
type DataOptions struct {
	Keyring     string
	In, Out     string
	Parallel    int
	Decrypt     bool
	ExpectBytes int64
}

func newCmdData(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Encrypt and decrypt data with a node's data keys (the data plane)",
		Long: `Seal data with the node's active data key, and open data with whichever data
key sealed it, as a node's storage would. The input and output default to
stdin and stdout. An OUT file is renamed into place only when the run
succeeds; a device or named pipe is written in place. One KMS unwrap per run.
With -o json the report (node, data key, bytes, chunks, KMS calls) goes to
stdout when OUT is a file, to stderr when the data goes to stdout.`,
	}
	sub := func(decrypt bool, use, short string) *cobra.Command {
		opts := &DataOptions{Decrypt: decrypt}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.MaximumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					opts.In = args[0]
				}
				if len(args) > 1 {
					opts.Out = args[1]
				}
				return dataRun(cmd.Context(), f, p(), opts)
			},
		}
		c.Flags().StringVar(&opts.Keyring, "keyring", "", "the node's keyring directory")
		addSelectors(c)
		parallelFlag(c, &opts.Parallel, "seal or open chunks")
		if !decrypt {
			expectBytesFlag(c, &opts.ExpectBytes)
		}
		_ = c.MarkFlagRequired("keyring")
		return c
	}
	cmd.AddCommand(
		sub(false, "encrypt --keyring DIR [IN [OUT]]", "Seal data with the node's active data key"),
		sub(true, "decrypt --keyring DIR [IN [OUT]]", "Open data sealed by any of the node's data keys"),
	)
	return cmd
}

func dataRun(ctx context.Context, f *Factory, p printer, o *DataOptions) error {
	if !o.Decrypt {
		if err := refuseTerminal(f, o.Out); err != nil {
			return err
		}
	}
	in, closeIn, err := openStreamInput(f, o.In, &o.Parallel)
	if err != nil {
		return err
	}
	defer closeIn()
	s := f.newSession()
	sl, err := keyring.OpenSealer(ctx, f.env(s), f.store(o.Keyring))
	if err != nil {
		return err
	}
	defer sl.Close()
	expect := int64(-1)
	if !o.Decrypt {
		expect = o.ExpectBytes
	}
	var h keyring.DataHeader
	n, err := writeStream(ctx, f, o.Out, in, expect, func(w io.Writer, in io.Reader) error {
		var err error
		if o.Decrypt {
			if h, err = sl.Open(w, in, stream.Options{Parallel: o.Parallel}); err != nil {
				err = fmt.Errorf("%s: %w", inputName(o.In), err)
			}
		} else {
			h, err = sl.Seal(w, in, stream.Options{Parallel: o.Parallel})
		}
		return err
	})
	if err != nil {
		return err
	}
	plain := n.In
	if o.Decrypt {
		plain = n.Out
	}
	rep := dataReport{ClusterID: h.ClusterID, Region: h.Region, Node: h.Node, Keyring: streamPath(o.Keyring), DataKeyID: h.DataKeyID,
		streamReport: newStreamReport(o.In, o.Out, n, plain, s.Counts())}
	return printStreamReport(f, p, o.Out, rep, "")
}

func openInput(f *Factory, path string) (io.Reader, func(), error) {
	if path == "" || path == "-" {
		return f.IO.In, func() {}, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open input: %w", err)
	}
	return fh, func() { fh.Close() }, nil
}

// writeOutput writes fn's output to stdout (path "" or "-"), or to path:
//   - a regular file (or a new one) through a temporary file beside it,
//     renamed over it only when fn succeeds, so a failed run leaves no
//     partial output; a symbolic link is followed, and stays a link;
//   - a device, FIFO or socket (/dev/null, a named pipe) directly, like
//     stdout: replacing it with a file would be wrong.
//
// A directory is refused before fn runs.
func writeOutput(f *Factory, path string, fn func(io.Writer) error) error {
	if path == "" || path == "-" {
		return fn(f.IO.Out)
	}
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			return usageError("give the name of a file to write, inside the directory or elsewhere", "output %s is a directory", path)
		case !fi.Mode().IsRegular():
			return writeSpecial(path, fn)
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fn(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	ok = true
	if err := (safefile.OS{}).SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// parallelFlag adds --parallel to a command that streams data. Unset (or 0)
// it is the cores available (runtime.GOMAXPROCS, at most stream.MaxParallel).
func parallelFlag(c *cobra.Command, p *int, what string) {
	c.Flags().IntVar(p, "parallel", 0, fmt.Sprintf("%s on that many cores, 1 to %d (1: serial; default: the cores available)", what, stream.MaxParallel))
}

// openStreamInput checks --parallel (0 becomes the cores available), then
// opens the input of a command that streams data (stdin for "" or "-"): a
// bad value is refused before any work.
func openStreamInput(f *Factory, path string, parallel *int) (io.Reader, func(), error) {
	if err := checkParallel(parallel); err != nil {
		return nil, nil, err
	}
	return openInput(f, path)
}

// checkParallel refuses a --parallel value out of range, and sets 0 (the
// default) to the cores available.
func checkParallel(n *int) error {
	if *n == 0 {
		*n = min(runtime.GOMAXPROCS(0), stream.MaxParallel)
	}
	if *n < 1 || *n > stream.MaxParallel {
		return usageError(fmt.Sprintf("give a number of cores from 1 to %d, or leave --parallel out to use the %d available", stream.MaxParallel, runtime.GOMAXPROCS(0)),
			"--parallel %d is out of range", *n)
	}
	return nil
}

// writeSpecial writes to a device, FIFO or socket in place.
func writeSpecial(path string, fn func(io.Writer) error) error {
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	if err := fn(fh); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// inputName names an input file in errors ("stdin" for "" or "-").
func inputName(path string) string {
	if path == "" || path == "-" {
		return "stdin"
	}
	return path
}

// refuseTerminal refuses to write ciphertext to a terminal (stdout, when
// OUT is "" or "-"), as age does: it would garble the terminal, and nobody
// can keep it.
func refuseTerminal(f *Factory, out string) error {
	if (out == "" || out == "-") && f.IO.IsStdoutTTY() {
		return usageError("give OUT, or redirect: ... > FILE", "refusing to write ciphertext to a terminal")
	}
	return nil
}
