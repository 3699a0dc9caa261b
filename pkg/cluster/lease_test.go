package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

func TestLease(t *testing.T) {
	ctx := context.Background()
	s := dirStore(t)
	o := cluster.LeaseOptions{TTL: 300 * time.Millisecond, Holder: "a"}
	h, err := cluster.AcquireLease(ctx, s, "c1", "rotate", o)
	if err != nil {
		t.Fatal(err)
	}
	// Busy while renewed: a waiter that gives up early is told who holds it.
	_, err = cluster.AcquireLease(ctx, s, "c1", "revoke", cluster.LeaseOptions{TTL: time.Second, Holder: "b", Wait: 500 * time.Millisecond})
	var be *cluster.BusyError
	if !errors.As(err, &be) || be.Holder != "a" || be.Op != "rotate" {
		t.Fatalf("busy lease: %v", err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// A holder that dies (no renewal, no release) is taken over after a
	// whole TTL of the same version.
	dead, err := cluster.AcquireLease(ctx, s, "c1", "rotate", o)
	if err != nil {
		t.Fatal(err)
	}
	dead.StopRenewing()
	start := time.Now()
	h2, err := cluster.AcquireLease(ctx, s, "c1", "revoke", cluster.LeaseOptions{Holder: "b", Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("taken over after %s, before a whole TTL", el)
	}
	// store unlock --force: the wrong token changes nothing; the right one releases.
	if _, err := cluster.ForceRelease(ctx, s, "c1", "nope"); err == nil {
		t.Fatal("force release with a wrong token succeeded")
	}
	if _, err := cluster.ForceRelease(ctx, s, "c1", h2.Token()); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.AcquireLease(ctx, s, "c1", "x", cluster.LeaseOptions{Holder: "c"}); err != nil {
		t.Fatalf("after a forced release: %v", err)
	}
}

// On etcd the lease is native: a busy lease names its holder; a holder that
// dies (its keep-alives stop) is let go by the server after the TTL; store
// unlock --force revokes it.
func TestLeaseEtcdNative(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, "etcd://"+storetest.StartEtcd(t)+"/lease")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err := cluster.AcquireLease(ctx, s, "c1", "rotate", cluster.LeaseOptions{TTL: 2 * time.Second, Holder: "a"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cluster.AcquireLease(ctx, s, "c1", "revoke", cluster.LeaseOptions{Holder: "b", Wait: 3 * time.Second})
	var be *cluster.BusyError
	if !errors.As(err, &be) || be.Holder != "a" {
		t.Fatalf("a renewed lease, waited past its TTL: %v, want busy naming a", err)
	}
	if _, err := cluster.ForceRelease(ctx, s, "c1", "wrong"); err == nil {
		t.Fatal("force release with a wrong token succeeded")
	}
	if _, err := cluster.ForceRelease(ctx, s, "c1", h.Token()); err != nil {
		t.Fatal(err)
	}
	if h.Lost() == nil {
		time.Sleep(500 * time.Millisecond)
	}
	h2, err := cluster.AcquireLease(ctx, s, "c1", "x", cluster.LeaseOptions{Holder: "c", TTL: 2 * time.Second})
	if err != nil {
		t.Fatalf("after a forced release: %v", err)
	}
	if err := h2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.AcquireLease(ctx, s, "c2", "y", cluster.LeaseOptions{Holder: "d"}); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	// A holder that dies: its client goes away without releasing.
	ep := strings.TrimPrefix(s.String(), "etcd://")
	dying, err := store.Open(ctx, "etcd://"+ep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.AcquireLease(ctx, dying, "c3", "rotate", cluster.LeaseOptions{Holder: "dead", TTL: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	dying.Close()
	start := time.Now()
	if _, err := cluster.AcquireLease(ctx, s, "c3", "rotate", cluster.LeaseOptions{Holder: "e", Wait: 10 * time.Second}); err != nil {
		t.Fatalf("a dead holder's lease was not let go: %v", err)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("a dead holder's lease was taken after %s, before its TTL", time.Since(start))
	}
}
