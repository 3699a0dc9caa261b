package commands

import (
	"sync"
	"testing"
)

// Command trees are built concurrently (the e2e matrix runs Main in
// parallel); building one registered the help templates' functions in
// cobra's global map each time, and concurrent map writes are fatal.
func TestNewRootCmdConcurrent(t *testing.T) {
	f := NewFactory()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				newRootCmd(f, "version")
			}
		})
	}
	wg.Wait()
}
