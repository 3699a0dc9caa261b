package keyring

import (
	"context"
	"fmt"
)

// StartedOptions name the stores of a node that started.
type StartedOptions struct {
	// StorePaths are the stores that started; none: every store unlock
	// recorded for the node.
	StorePaths []string
	// ActiveKeyID is the store key the store runs on, as `cockroach debug
	// encryption-active-key` prints it (one store only); "": the key it was
	// last handed.
	ActiveKeyID string
}

// NodeStarted records that stores of the node started (cmekctl node
// started, run once the database is up): each now runs on the key unlock
// last handed it (or on ActiveKeyID), so keys it moved off may be retired by
// the next rotate store-key. No KMS call. Nothing changes on an error.
func NodeStarted(ctx context.Context, env Env, s Store, opt StartedOptions) ([]StoreState, error) {
	kr0, err := s.Load()
	if err != nil {
		return nil, err
	}
	if s, err = s.Open(); err != nil {
		return nil, err
	}
	defer s.Close()
	paths := opt.StorePaths
	if len(paths) > 0 {
		if err := CheckStorePaths(paths); err != nil {
			return nil, err
		}
	}
	if opt.ActiveKeyID != "" && len(paths) != 1 && !(len(paths) == 0 && len(kr0.Stores) == 1) {
		return nil, refusef("give --store-path with --active-key-id: one store's active key at a time", "--active-key-id names the key of one store, and %d are named", max(len(paths), len(kr0.Stores)))
	}
	l, err := s.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	kr, err := s.Load()
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		for _, st := range kr.Stores {
			paths = append(paths, st.Path)
		}
	}
	if len(paths) == 0 {
		return nil, refusef("run cmekctl unlock --store-path ... at the node's start, then node started", "%s: unlock has handed no store of node %s a key", s.Dir, kr.Node)
	}
	now := env.now()
	var out []StoreState
	for _, p := range paths {
		st, err := kr.RecordStarted(p, ParseActiveKeyID(opt.ActiveKeyID), now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Dir, err)
		}
		out = append(out, st)
	}
	kr.Updated = now
	if err := s.Save(kr); err != nil {
		return nil, err
	}
	return out, nil
}
