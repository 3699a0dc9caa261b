package main

// Start-up time of `cmekctl version` against a bare cobra binary with one
// verb (testdata/barecobra), in the same run (issue 18):
//
//	go test -run '^$' -bench BenchmarkStartup -benchtime 50x ./cmd/cmekctl/
//
// Both are built with the same toolchain and flags as a release
// (.goreleaser.yaml: CGO_ENABLED=0, -trimpath, -s -w) into a temporary
// directory first; each iteration is one process start to exit. Besides the
// wall time per start (ns/op) it reports, per start, the CPU time of the
// process (cpu-ms: user + system, which a loaded machine disturbs less than
// the wall time), its minor page faults (minflt) and its context switches
// (ctxsw: voluntary and involuntary, all threads; a thread that waits for
// another is wall time without CPU time); init-ms is the median,
// over 5 runs with GODEBUG=inittrace=1, of the summed package-init clock
// times. (The child's ru_maxrss is not reported: Go starts it with vfork,
// so it counts the test binary's own RSS; use /usr/bin/time -f %M.)
//
// CMEKCTL_STARTUP_BEFORE=PATH adds a third binary to the same run, as
// "before": an older cmekctl built the same way, for a before/after figure.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	bins := map[string]string{"cmekctl": ".", "barecobra": "./testdata/barecobra"}
	for name, pkg := range bins {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("build %s: %v", name, err)
		}
		bins[name] = out
	}
	env := cliEnv(dir)
	names := []string{"barecobra", "cmekctl"}
	if before := os.Getenv("CMEKCTL_STARTUP_BEFORE"); before != "" {
		bins["before"] = before
		names = append(names, "before")
	}
	for _, name := range names {
		b.Run(name, func(b *testing.B) {
			var cpu time.Duration
			var minflt, ctxsw int64
			for b.Loop() {
				c := exec.Command(bins[name], "version")
				c.Env = env
				if err := c.Run(); err != nil {
					b.Fatal(err)
				}
				cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
				if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
					minflt += ru.Minflt
					ctxsw += ru.Nvcsw + ru.Nivcsw
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms")
			b.ReportMetric(float64(minflt)/float64(b.N), "minflt")
			b.ReportMetric(float64(ctxsw)/float64(b.N), "ctxsw")
			var inits []float64
			for range 5 {
				inits = append(inits, initMillis(b, bins[name], env))
			}
			slices.Sort(inits)
			b.ReportMetric(inits[len(inits)/2], "init-ms")
		})
	}
}

var initLine = regexp.MustCompile(`(?m)^init \S+ @\S+ ms, ([0-9.]+) ms clock`)

// initMillis runs path version with GODEBUG=inittrace=1 and sums the
// package-init clock times it reports.
func initMillis(b *testing.B, path string, env []string) float64 {
	cmd := exec.Command(path, "version")
	cmd.Env = append(slices.Clone(env), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, m := range initLine.FindAllSubmatch(stderr.Bytes(), -1) {
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			b.Fatal(err)
		}
		sum += v
	}
	if sum == 0 {
		b.Fatalf("%s: no inittrace lines", path)
	}
	return sum
}
