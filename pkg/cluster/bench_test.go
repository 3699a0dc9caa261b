package cluster_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/internal/faultproxy"
	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

// BenchmarkRotateRegions rotates the data keys of 100 nodes per region with
// 20 ms added to every store request: one region, then three, side by side
// in one run, on two stores: "mem" (the in-memory store of storetest, the
// latency added by the test's wrapper: the protocol's own cost) and "s3"
// (gofakes3 over HTTP behind faultproxy: a real S3 client and server in
// this process, whose CPU cost grows with the node count). "s3" runs again
// with no latency added: the difference is what the latency costs, apart
// from the CPU. Reported per rotation: wall time, CPU time of the process
// (client, proxy and server), new connections, store requests per node and
// KMS unwraps. The claim: 3 regions take at most 1.5x the time of one
// (regions proceed side by side, writes bounded per region), at 2 store
// requests per node plus a few.
//
//	go test ./pkg/cluster/ -run '^$' -bench RotateRegions -benchtime 3x
func BenchmarkRotateRegions(b *testing.B) {
	for _, backend := range []string{"mem", "s3"} {
		for _, latency := range []time.Duration{20 * time.Millisecond, 0} {
			if backend == "mem" && latency == 0 {
				continue
			}
			for _, regions := range []int{1, 3} {
				b.Run(fmt.Sprintf("%s/regions=%d/nodes=100/latency=%s", backend, regions, latency), func(b *testing.B) {
					benchRotate(b, backend, regions, latency)
				})
			}
		}
	}
}

func benchRotate(b *testing.B, backend string, regions int, latency time.Duration) {
	var st *counted
	var setLatency func()
	conns := func() int { return 0 }
	switch backend {
	case "mem":
		st = count(storetest.NewMem())
		setLatency = func() { st.latency = latency }
	case "s3":
		srv := storetest.StartS3(b, "keyrings")
		storetest.SetAWSTestEnv(b)
		p := faultproxy.Start(b, srv.URL)
		s, err := store.Open(context.Background(), srv.URI(p.URL, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		st = count(s)
		setLatency = func() { p.Set(faultproxy.Fault{Latency: latency}) }
		conns = p.Conns
	}
	k := newKMS(b)
	for r := range regions {
		name := fmt.Sprintf("r%d", r+1)
		if _, err := cluster.Enable(context.Background(), st, k.env(), "c1", name, k.create(b, name), nodeNames(name+"-n", 100)); err != nil {
			b.Fatal(err)
		}
	}
	setLatency()
	st.reset()
	k.reset()
	cpu0 := cpuTime()
	conns0 := conns()
	b.ResetTimer()
	for b.Loop() {
		if _, err := cluster.Rotate(context.Background(), st, k.env(), cluster.RotateOptions{Cluster: "c1", Op: keyring.OpRotateDataKey, By: "bench",
			Lease: cluster.LeaseOptions{Holder: "bench", TTL: time.Minute}}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(conns()-conns0)/float64(b.N), "new-conns/op")
	b.ReportMetric(float64(st.total())/float64(b.N)/float64(100*regions), "store-req/node")
	b.ReportMetric(float64(k.total().Unwrap)/float64(b.N), "kms-unwrap/op")
}

// cpuTime is the CPU time (user + system) this process has used: the
// client, the proxy and, for "s3", gofakes3, all in this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
