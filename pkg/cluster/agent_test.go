package cluster_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/internal/faultproxy"
	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

// The node agent on S3 polls with a conditional GET: while the keyring is
// unchanged each pass is one request answered 304 Not Modified with no
// body; a revocation is read in full, purged and acknowledged, and the
// polls after it are 304s again. On gofakes3 and on versitygw.
func TestAgentConditionalGetS3(t *testing.T) {
	for name, start := range map[string]func(testing.TB, string) *storetest.S3Server{
		"gofakes3": storetest.StartS3, "versitygw": storetest.StartVersity,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv := start(t, "keyrings")
			storetest.SetAWSTestEnv(t)
			p := faultproxy.Start(t, srv.URL)
			s, err := store.Open(ctx, srv.URI(p.URL, "agent"))
			if err != nil {
				t.Fatal(err)
			}
			k := newKMS(t)
			o, unlocked := enableAndUnlock(ctx, t, s, k)
			passes := make(chan *cluster.AgentResult, 100)
			go cluster.Agent(ctx, s, o, 20*time.Millisecond, func(r *cluster.AgentResult, err error) {
				if err != nil {
					t.Errorf("agent pass: %v", err)
					return
				}
				passes <- r
			})
			next := func() *cluster.AgentResult {
				t.Helper()
				select {
				case r := <-passes:
					return r
				case <-time.After(10 * time.Second):
					t.Fatal("no agent pass in 10s")
					return nil
				}
			}
			// polls waits for n unchanged passes and checks that each cost
			// one request answered 304 with no body.
			polls := func(n int, revoked bool) {
				t.Helper()
				for len(passes) > 0 {
					<-passes
				}
				next() // a pass that may have begun before the reset
				p.Reset()
				for range n {
					if r := next(); !r.Unchanged || r.Revoked != revoked {
						t.Fatalf("pass %+v, want unchanged and revoked=%v", r, revoked)
					}
				}
				statuses, body := p.Answers()
				if p.Requests() < n || p.Requests() > n+1 || statuses[http.StatusNotModified] != p.Requests() || body != 0 {
					t.Fatalf("%d unchanged passes: %d requests, answers %v, %d body bytes; want one 304 with no body each",
						n, p.Requests(), statuses, body)
				}
			}
			if r := next(); r.Unchanged || r.Revoked {
				t.Fatalf("first pass %+v: want a full read of a live keyring", r)
			}
			polls(5, false)

			revs, err := cluster.MarkRevoked(ctx, s, cluster.RevokeOptions{Cluster: "c1", Reason: "drill", Lease: cluster.LeaseOptions{Holder: "op"}})
			if err != nil {
				t.Fatal(err)
			}
			for r := next(); !r.Acked; r = next() {
				if !r.Unchanged {
					t.Fatalf("a pass read the revoked keyring and did not acknowledge: %+v", r)
				}
			}
			if _, err := os.Stat(unlocked.Key); !os.IsNotExist(err) {
				t.Fatalf("the key file is still there: %v", err)
			}
			if un, err := cluster.WaitAcks(ctx, s, "c1", revs, time.Second, 50*time.Millisecond); err != nil || len(un) != 0 {
				t.Fatalf("acks: %v %v", un, err)
			}
			polls(3, true)
		})
	}
}
