package keyring_test

import (
	"context"
	"sync"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// 16 goroutines rotate the data keys of the same 3 keyrings at once, each
// taking the locks through LoadGroup(write=true): they serialise, so each
// node ends with exactly 1 + 16 data keys, exactly one active, none lost or
// doubled.
func TestConcurrentRotations(t *testing.T) {
	const workers = 16
	ctx := context.Background()
	k := newKMS(t)
	c := newCluster(t, k, "cluster-conc", 1, 3)
	env := k.env()
	before := map[string][]string{}
	for _, d := range c.dirs() {
		before[d] = keyIDs(load(t, d))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := rotate(ctx, env, c.dirs(), nil, keyring.OpRotateDataKey, keyring.RotateOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range c.dirs() {
		kr := load(t, d)
		active := 0
		for _, dk := range kr.DataKeys {
			if dk.State == keyring.StateActive {
				active++
			}
		}
		if len(kr.DataKeys) != 1+workers || active != 1 || !superset(keyIDs(kr), before[d]) {
			t.Fatalf("%s: %d data keys (%d active) after %d rotations, want %d (1 active)", d, len(kr.DataKeys), active, workers, 1+workers)
		}
	}
	if got := k.counts(c.regions[0].cmek).Unwrap; got != workers {
		t.Fatalf("%d unwraps for %d rotations of one region", got, workers)
	}
	if journalLeft(c.dirs()) {
		t.Fatal("a journal is left")
	}
}
