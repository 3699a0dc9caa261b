package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

// TestRefuseCiphertextToTerminal: backup encrypt and data encrypt to a
// terminal stdout exit 2 before any work; to a pipe they would run.
func TestRefuseCiphertextToTerminal(t *testing.T) {
	for _, args := range [][]string{
		{"backup", "encrypt", "--keyring", t.TempDir()},
		{"data", "encrypt", "--keyring", t.TempDir(), "-"},
	} {
		ios, in, out, errOut := iostreams.Test()
		ios.SetTTY(false, true, false)
		in.WriteString("plaintext")
		f := &Factory{IO: ios, Registry: registry.Default, Now: time.Now, Getenv: func(string) string { return "" }}
		code := Main(f, append(args, "--audit-log", "off"))
		if code != ExitUsage || !strings.Contains(errOut.String(), "refusing to write ciphertext to a terminal") || out.Len() != 0 {
			t.Errorf("%v to a terminal: exit %d, stdout %d bytes, stderr %q", args, code, out.Len(), errOut.String())
		}
	}
}
