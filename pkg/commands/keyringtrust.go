package commands

import (
	"fmt"
	"slices"

	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Keyring trust (docs/threat-model.md, rule 19). A keyring records the CMEK
// keys its wraps were made under, and later verbs dial them: the store-key
// wrap's (unlock, rotate), the backup-key wraps' (backup-keys create wraps
// new backup keys under the region's), the history's (verify-destroyed).
// Whoever can write a keyring could point those at a key of their own at a
// provider's default endpoint, which the endpoint checks (kmstrust.go) do
// not question. With a cluster config in use, the config is the anchor: a
// keyring loaded from a --keyring directory may name, for each region, only
// the config's cmek of that region, its previous_cmek, or a URI on this
// command line; anything else is refused when the keyring is read, before
// any KMS call. Without a config the keyring's own file checks are the only
// guard (the keyring is the operator's only record of the key).

// stores are the keyring directories dirs, vetted by this run's keyring trust.
func (f *Factory) stores(dirs []string) []keyring.Store {
	out := make([]keyring.Store, len(dirs))
	for i, d := range dirs {
		out[i] = f.store(d)
	}
	return out
}

// store is the keyring directory dir, vetted by this run's keyring trust.
func (f *Factory) store(dir string) keyring.Store {
	s := keyring.Store{Dir: dir}
	if c := f.Config; c != nil && c.Plane != config.PlaneCloud && len(c.Regions) > 0 {
		s.Trust = func(dir string, k *keyring.Keyring) error { return trustRecordedKeys(c, f.kmsTrust(), dir, k) }
	}
	return s
}

// trustRecordedKeys refuses a keyring of a cluster or region the config does
// not describe, or one that records a CMEK key the config (or the command
// line) does not name for the wrap's region.
func trustRecordedKeys(c *config.Config, t *kmsTrust, dir string, k *keyring.Keyring) error {
	if k.ClusterID != c.ClusterID {
		return &ExitError{Code: ExitForeign,
			Err:  fmt.Errorf("keyring %s is of cluster %q, and config file %s describes cluster %q: its CMEK keys are vouched for by nothing", dir, k.ClusterID, c.Path, c.ClusterID),
			Hint: fmt.Sprintf("pass --config with cluster %s's config file (its cluster_id and its regions' cmek are enough)", k.ClusterID)}
	}
	check := func(region, uri string) error {
		r, ok := c.Region(region)
		if !ok {
			return &ExitError{Code: ExitForeign,
				Err: fmt.Errorf("keyring %s records CMEK key %s for region %s, which config file %s does not list: refusing to dial a key the config does not name",
					dir, redact(uri), region, c.Path),
				Hint: fmt.Sprintf("if region %s is yours, add it to the config (cmekctl region add --region %s --cmek URI); otherwise restore the keyring from a copy you trust", region, region)}
		}
		id := provider.Identity(uri)
		if id != "" && (t.given[id] || id == provider.Identity(r.CMEK) ||
			slices.ContainsFunc(r.PreviousCMEK, func(p string) bool { return provider.Identity(p) == id })) {
			return nil
		}
		return &ExitError{Code: ExitForeign,
			Err: fmt.Errorf("keyring %s records CMEK key %s for region %s, but config file %s names %s: refusing to dial a key the config does not name",
				dir, redact(uri), region, c.Path, redact(r.CMEK)),
			Hint: fmt.Sprintf("if %s is your key (an earlier one, or the new one of a rotation), add it to previous_cmek: of region %s in %s; otherwise restore the keyring from a copy you trust",
				redact(uri), region, c.Path)}
	}
	if err := check(k.Region, k.StoreWrap.CMEKURI); err != nil {
		return err
	}
	for _, b := range k.BackupKeys {
		for _, w := range b.Wraps {
			if err := check(w.Region, w.CMEKURI); err != nil {
				return err
			}
		}
	}
	if h := k.History; h != nil {
		for _, w := range h.StoreWraps {
			if err := check(k.Region, w.CMEKURI); err != nil {
				return err
			}
		}
		for _, w := range h.BackupWraps {
			if err := check(w.Region, w.CMEKURI); err != nil {
				return err
			}
		}
	}
	return nil
}
