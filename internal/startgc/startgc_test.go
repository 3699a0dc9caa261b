package startgc

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// read returns GOGC and the memory limit in force, without changing them.
func read() (gogc, limit int64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
}

var ran bool

// This test binary imports the package, so its init ran: the collector is
// off until Resume, which doubles GOGC until the first collection ends and
// then restores GOGC and GOMEMLIMIT.
func TestResume(t *testing.T) {
	if ran {
		t.Skip("the collector's start-up state is once per process (-count > 1)")
	}
	ran = true
	if gcPercent < 0 {
		t.Skip("run with GOGC=off: the collector stays off")
	}
	if p, l := read(); p != -1 && p != 0 || l > backstop {
		t.Fatalf("before Resume: GOGC %d, memory limit %d; want off, at most %d", p, l, backstop)
	}
	Resume()
	if p, l := read(); p != int64(2*gcPercent) || l != memLimit {
		t.Fatalf("after Resume: GOGC %d, memory limit %d; want %d until the first collection, and %d", p, l, 2*gcPercent, memLimit)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if p, _ := read(); p == int64(gcPercent) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("GOGC after collections = %d, want %d restored", p, gcPercent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	Resume() // a second call changes nothing
	if p, _ := read(); p != int64(gcPercent) {
		t.Fatalf("GOGC after a second Resume = %d, want %d", p, gcPercent)
	}
}
