// Package iostreams is the one value commands do I/O through (as gh's
// pkg/iostreams): standard streams, whether each is a terminal, and prompts.
package iostreams

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"
)

// IOStreams are a command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY, stdoutTTY, stderrTTY bool
	// width is the terminal's width in columns (0: unknown).
	width int
	// NoColor is set by --no-color or NO_COLOR.
	NoColor bool
	inBuf   *bufio.Reader
}

// System returns the process's streams.
func System() *IOStreams {
	isTTY := func(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
	s := &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		stdinTTY: isTTY(os.Stdin), stdoutTTY: isTTY(os.Stdout), stderrTTY: isTTY(os.Stderr),
		NoColor: os.Getenv("NO_COLOR") != ""}
	if w, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && w > 0 {
		s.width = w
	} else if s.stdoutTTY {
		if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
			s.width = w
		}
	}
	return s
}

// Width is the terminal's width in columns ($COLUMNS, else the stdout
// terminal's), or 0 when unknown.
func (s *IOStreams) Width() int { return s.width }

// SetWidth sets the terminal width (tests).
func (s *IOStreams) SetWidth(w int) { s.width = w }

// Test returns streams backed by buffers, none a terminal, and the buffers.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// SetTTY marks the streams as terminals or not (tests).
func (s *IOStreams) SetTTY(stdin, stdout, stderr bool) {
	s.stdinTTY, s.stdoutTTY, s.stderrTTY = stdin, stdout, stderr
}

// IsStdoutTTY reports whether stdout is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether stderr is a terminal (progress goes there).
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// CanPrompt reports whether the user can answer a question.
func (s *IOStreams) CanPrompt() bool { return s.stdinTTY && s.stderrTTY }

// ErrNoAnswer is returned when the input ends before an answer.
var ErrNoAnswer = errors.New("no answer")

// Prompt asks a question on stderr and reads one line from stdin.
func (s *IOStreams) Prompt(question string) (string, error) {
	fmt.Fprint(s.ErrOut, question)
	if s.inBuf == nil {
		s.inBuf = bufio.NewReader(s.In)
	}
	line, err := s.inBuf.ReadString('\n')
	if err != nil && line == "" {
		return "", ErrNoAnswer
	}
	return strings.TrimSpace(line), nil
}
