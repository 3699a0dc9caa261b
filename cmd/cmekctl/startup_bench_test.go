package main

// Start-up time of `cmekctl version` against a bare cobra binary with one
// verb (testdata/barecobra), in the same run (issue 18):
//
//	go test -run '^$' -bench BenchmarkStartup -benchtime 50x ./cmd/cmekctl/
//
// Both are built with the same toolchain and flags into a temporary
// directory first; each iteration is one process start to exit.

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	bins := map[string]string{"cmekctl": ".", "barecobra": "./testdata/barecobra"}
	for name, pkg := range bins {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("build %s: %v", name, err)
		}
		bins[name] = out
	}
	env := cliEnv(dir)
	for _, name := range []string{"barecobra", "cmekctl"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				c := exec.Command(bins[name], "version")
				c.Env = env
				if err := c.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
