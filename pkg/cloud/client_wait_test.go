package cloud_test

// Waiting for an operation: backoff, failure, timeout, server errors, cancel.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

func TestWaitBackoffCapped(t *testing.T) {
	e := newEnv(t, "us-east-1")
	e.srv.SetPolls(9)
	ctx := context.Background()
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{}); err != nil {
		t.Fatal(err)
	}
	s := time.Second
	want := []time.Duration{s / 2, s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s, 10 * s}
	if got := e.clock.Slept(); !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v", got, want)
	}
	if n := e.count("GET", 200); n != 9 {
		t.Errorf("%d GETs, want 9", n)
	}
}

func TestWaitFailed(t *testing.T) {
	e := newEnv(t, "us-east-1", "us-west-2")
	ctx := context.Background()
	e.srv.FailRegion("us-west-2", "AccessDeniedException: the role cannot use the key")
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1", "us-west-2")); err != nil {
		t.Fatal(err)
	}
	info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{})
	if !errors.Is(err, cloud.ErrFailed) {
		t.Fatalf("wait: %v, want ErrFailed", err)
	}
	var fe *cloud.FailedError
	if !errors.As(err, &fe) || fe.Region != "us-west-2" || fe.Status != cloud.StatusEnableFailed ||
		fe.UserMessage != "AccessDeniedException: the role cannot use the key" {
		t.Fatalf("failed error: %#v", fe)
	}
	if !strings.Contains(err.Error(), "us-west-2") || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Errorf("error text %q lacks the region or the message", err)
	}
	if info == nil || info.Region("us-west-2").Status != cloud.StatusEnableFailed {
		t.Errorf("wait returned %+v", info)
	}
}

func TestWaitTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout, want time.Duration
	}{{90 * time.Second, 90 * time.Second}, {0, 2 * time.Hour}} {
		t.Run(tc.want.String(), func(t *testing.T) {
			e := newEnv(t, "us-east-1")
			e.srv.SetPolls(1 << 30)
			ctx := context.Background()
			if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
				t.Fatal(err)
			}
			start := e.clock.Now()
			info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{Timeout: tc.timeout})
			if !errors.Is(err, cloud.ErrTimeout) || errors.Is(err, cloud.ErrFailed) {
				t.Fatalf("wait: %v, want ErrTimeout", err)
			}
			if !strings.Contains(err.Error(), "us-east-1 ENABLING") {
				t.Errorf("timeout error %q does not say what is still pending", err)
			}
			if got := e.clock.Now().Sub(start); got != tc.want {
				t.Errorf("waited %v of fake time, want %v", got, tc.want)
			}
			if info == nil || info.Status != cloud.StatusEnabling {
				t.Errorf("last status %+v", info)
			}
		})
	}
}

func TestWaitPollsThroughServerErrors(t *testing.T) {
	e := newEnv(t, "us-east-1")
	ctx := context.Background()
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	e.srv.GETErrors(cloud.GETAttempts + 2) // more than one GetCMEK retries
	info, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{})
	if err != nil || info.Status != cloud.StatusEnabled {
		t.Fatalf("wait: %+v, %v", info, err)
	}
	if n := e.count("GET", 500); n != cloud.GETAttempts+2 {
		t.Errorf("%d GETs answered 500, want %d", n, cloud.GETAttempts+2)
	}
	if !slices.ContainsFunc(e.Logs(), func(l string) bool { return strings.Contains(l, "polling again") }) {
		t.Errorf("no log line about polling again: %q", e.Logs())
	}
}

func TestWaitStopsOnClientError(t *testing.T) {
	e := newEnv(t, "us-east-1")
	_, err := e.c.Wait(context.Background(), "no-such-cluster", cloud.WaitOptions{})
	if !errors.Is(err, cloud.ErrNotFound) {
		t.Fatalf("wait: %v, want ErrNotFound", err)
	}
	if n := e.count("GET", 0); n != 1 {
		t.Errorf("%d GETs, want 1 (a 404 is final)", n)
	}
}

func TestWaitCancelled(t *testing.T) {
	e := newEnv(t, "us-east-1")
	e.srv.SetPolls(1 << 30)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := e.c.EnableCMEK(ctx, clusterID, e.specs("us-east-1")); err != nil {
		t.Fatal(err)
	}
	polls := 0
	_, err := e.c.Wait(ctx, clusterID, cloud.WaitOptions{Progress: func(*cloud.ClusterInfo) {
		if polls++; polls == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v, want context.Canceled", err)
	}
	if polls != 3 {
		t.Errorf("%d polls, want 3", polls)
	}
}
