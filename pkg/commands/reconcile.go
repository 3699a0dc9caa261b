package commands

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// A split region (its nodes hold different store-key bundles, after a
// rotation with --partial) is reconciled by a store-key rotation of every
// node of the region: status names that command, and a rotate cmek that
// cannot work on the split region names it too.

// reconcileCommand is the command that brings every node of region onto one
// store key: with a cluster config that lists the region, --region; else
// every keyring of the region that was given.
func reconcileCommand(f *Factory, region string, dirs []string) string {
	args := []string{"cmekctl", "rotate", "store-key"}
	if c := f.Config; c != nil && slices.ContainsFunc(c.Regions, func(r config.Region) bool { return r.Name == region && len(r.Nodes) > 0 }) {
		if p := c.Path; p != f.Getenv("CMEKCTL_CONFIG") && p != config.DefaultPath(f.Getenv) {
			args = append(args, "--config", shellWord(p))
		}
		return strings.Join(append(args, "--region", shellWord(region)), " ")
	}
	for _, d := range dirs {
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
		args = append(args, "--keyring", shellWord(d))
	}
	return strings.Join(args, " ")
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// splitRegionExit gives a rotation refused on a split region its exit code
// (partial: a rotation left part of the region behind) and the command that
// reconciles it.
func splitRegionExit(f *Factory, err error) error {
	var se *keyring.SplitRegionError
	if !errors.As(err, &se) {
		return err
	}
	return &ExitError{Code: ExitPartial, Err: err,
		Hint: fmt.Sprintf("run %s first: it brings every node of region %s onto one new store key; then run this command again", reconcileCommand(f, se.Region, se.Dirs), se.Region)}
}

// splitRegions returns, per region whose nodes hold different store-key
// bundles or generations (a rotate cmek --partial re-wraps the same keys),
// the command that reconciles it.
func splitRegions(f *Factory, g *keyring.Group) map[string]string {
	out := map[string]string{}
	for _, r := range g.Regions {
		var krs []*keyring.Keyring
		var dirs []string
		for _, n := range g.ByRegion(r) {
			krs, dirs = append(krs, n.KR), append(dirs, n.Store.Dir)
		}
		if keyring.Split(krs) || slices.ContainsFunc(krs, func(kr *keyring.Keyring) bool { return kr.StoreWrap.Generation != krs[0].StoreWrap.Generation }) {
			out[r] = reconcileCommand(f, r, dirs)
		}
	}
	return out
}

// reconcileLine says that a region is split and what reconciles it.
func reconcileLine(r statusRegion) string {
	return fmt.Sprintf("region %s: its nodes hold different store keys or generations (a rotation with --partial left some behind): run %s", r.Region, r.Reconcile)
}

// reconcileRun is ": run COMMAND" for a split region, else "".
func reconcileRun(rep statusReport, region string) string {
	for _, r := range rep.Regions {
		if r.Region == region && r.Reconcile != "" {
			return ": run " + r.Reconcile
		}
	}
	return ""
}
