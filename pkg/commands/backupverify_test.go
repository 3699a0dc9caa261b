package commands

import (
	"fmt"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/stream"
)

// The exit status of backup verify is the worst class among the files, in
// the order its --help documents.
func TestVerifyWorstClass(t *testing.T) {
	for _, c := range []struct{ a, b, want int }{
		{ExitOK, ExitNotRestorable, ExitNotRestorable},
		{ExitNotRestorable, ExitOK, ExitNotRestorable},
		{ExitCorrupt, ExitMisuse, ExitMisuse},
		{ExitNotRestorable, ExitCorrupt, ExitCorrupt},
		{ExitKMSUnavailable, ExitNotRestorable, ExitNotRestorable},
		{ExitForeign, ExitNotRestorable, ExitForeign},
		{ExitFailure, ExitKMSUnavailable, ExitKMSUnavailable},
	} {
		if got := worse(c.a, c.b); got != c.want {
			t.Errorf("worse(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for err, want := range map[error]int{
		fmt.Errorf("x: %w", stream.ErrAuth):         ExitMisuse,
		fmt.Errorf("x: %w", stream.ErrTruncated):    ExitCorrupt,
		fmt.Errorf("x: %w", stream.ErrTrailingData): ExitCorrupt,
		fmt.Errorf("x: %w", stream.ErrFIPSV1):       ExitNotRestorable,
	} {
		if got := streamClass(err); got != want {
			t.Errorf("streamClass(%v) = %d, want %d", err, got, want)
		}
	}
}
