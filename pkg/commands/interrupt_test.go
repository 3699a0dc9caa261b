package commands

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// The verbs that wait for nothing run without os/signal (its set-up and
// tear-down were ~0.8 ms of `cmekctl version`'s start); every other verb's
// run is cancelled by SIGINT, SIGTERM or SIGHUP.
func TestRunContextSignals(t *testing.T) {
	names := map[string]bool{}
	for _, v := range verbs() {
		names[v.name] = true
		ctx, stop := runContext(v.name)
		if caught := ctx.Done() != nil; caught == instantVerbs[v.name] {
			t.Errorf("%s: signals caught = %v, want %v", v.name, caught, !instantVerbs[v.name])
		}
		stop()
	}
	for v := range instantVerbs {
		if !names[v] {
			t.Errorf("instant verb %q is not a verb", v)
		}
	}
	if ctx, stop := runContext("version"); ctx.Done() != nil {
		stop()
		t.Fatal("version's run takes signals")
	}
	for _, name := range []string{"", "backup"} { // "": the whole tree (help, a typo, config)
		ctx, stop := runContext(name)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: SIGHUP did not cancel the run", name)
		}
		if ie := interrupted(ctx); ie == nil || ie.Signal != syscall.SIGHUP {
			t.Errorf("%q: cause %v, want SIGHUP", name, ie)
		}
		stop()
	}
}
