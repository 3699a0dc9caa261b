package commands

import (
	"fmt"
	"slices"
	"sync"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// progressBars draws one bar per region on stderr while a multi-node
// operation runs, only when stderr is a terminal.
type progressBars struct {
	f       *Factory
	mu      sync.Mutex
	regions []string
	total   map[string]int
	done    map[string]int
	failed  map[string]int
	drawn   bool
	active  bool
	// kmsLines is how many KMS progress lines were written when the bars
	// were last drawn: after a new one the bars are drawn below it.
	kmsLines int64
}

// progress returns the bars for a group (inactive when stderr is not a
// terminal, or for a single node).
func (f *Factory) progress(g *keyring.Group) *progressBars {
	pb := &progressBars{f: f, total: map[string]int{}, done: map[string]int{}, failed: map[string]int{}}
	if g == nil || !f.IO.IsStderrTTY() || len(g.Nodes) < 2 {
		return pb
	}
	pb.active = true
	pb.regions = slices.Clone(g.Regions)
	for _, n := range g.Nodes {
		pb.total[n.KR.Region]++
	}
	return pb
}

func (f *Factory) envWithProgress(s *kmsSession, pb *progressBars) keyring.Env {
	env := f.env(s)
	if pb.active {
		env.Progress = pb.step
	}
	return env
}

func (pb *progressBars) step(region, node string, err error) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	pb.done[region]++
	if err != nil {
		pb.failed[region]++
	}
	pb.draw()
}

func (pb *progressBars) draw() {
	w := pb.f.IO.ErrOut
	if n := pb.f.kmsProgress.written(); pb.drawn && n == pb.kmsLines {
		fmt.Fprintf(w, "\x1b[%dA", len(pb.regions))
	}
	pb.drawn, pb.kmsLines = true, pb.f.kmsProgress.written()
	for _, r := range pb.regions {
		const width = 30
		n, t := pb.done[r], pb.total[r]
		fill := 0
		if t > 0 {
			fill = min(width, n*width/t)
		}
		bar := make([]byte, width)
		for i := range bar {
			bar[i] = ' '
			if i < fill {
				bar[i] = '#'
			}
		}
		extra := ""
		if pb.failed[r] > 0 {
			extra = fmt.Sprintf(" (%d failed)", pb.failed[r])
		}
		fmt.Fprintf(w, "\x1b[2K%-16s [%s] %d/%d%s\n", r, bar, n, t, extra)
	}
}

// finish ends the bars (they stay on screen as the final state).
func (pb *progressBars) finish() {}
