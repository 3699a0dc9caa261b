package commands

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
)

// The part of a start that is cmekctl's own code, in process: building the
// command tree, and a whole `cmekctl version` run (tree, flags, config
// lookup, the verb). cmd/cmekctl's BenchmarkStartup measures the process.
//
//	go test ./pkg/commands -run '^$' -bench 'RootCmd|MainVersion' -benchmem
func BenchmarkNewRootCmd(b *testing.B) {
	f := NewFactory()
	for b.Loop() {
		NewRootCmd(f)
	}
}

func BenchmarkMainVersion(b *testing.B) {
	dir := b.TempDir()
	env := map[string]string{"HOME": dir, "XDG_CONFIG_HOME": filepath.Join(dir, "config"), "XDG_STATE_HOME": filepath.Join(dir, "state")}
	for b.Loop() {
		io, _, _, _ := iostreams.Test()
		f := &Factory{IO: io, Now: time.Now, Getenv: func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		}}
		if code := Main(f, []string{"version"}); code != 0 {
			b.Fatalf("version: exit %d", code)
		}
	}
}
