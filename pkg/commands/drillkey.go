package commands

import (
	"context"
	"fmt"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// drillKeyIsNew refuses to rehearse on a key that already exists (the
// drill disables and destroys it: one mistyped URI would destroy a
// production key) unless the operator confirms: typed on a terminal, or
// --yes with --destroy-existing naming the same key. A key whose state
// cannot be read counts as existing.
func drillKeyIsNew(ctx context.Context, f *Factory, uri string, o *DrillOptions) error {
	k, err := f.newSession().Open(uri)
	if err != nil {
		return err
	}
	st, err := k.Describe(ctx)
	if err == nil && st.State == provider.StateNotFound {
		return nil
	}
	state := string(st.State)
	if err != nil {
		state = "unknown: " + oneLine(err.Error())
	}
	if o.Existing != "" && provider.Identity(o.Existing) != provider.Identity(uri) {
		return usageError("--destroy-existing names the --cmek key again, to show you mean it", "--destroy-existing %s is not the --cmek key %s", redact(o.Existing), redact(uri))
	}
	if o.Existing != "" && o.Yes {
		return nil
	}
	what := fmt.Sprintf("disable and destroy the EXISTING key %s (state %s) in a drill", redact(uri), state)
	if !f.IO.CanPrompt() {
		return usageError("rehearse on a key the drill creates (a URI naming no key yet), or pass --destroy-existing URI --yes to sacrifice this one",
			"drill: %s already exists (state %s) and the drill would disable and destroy it: refusing without confirmation; nothing was changed", redact(uri), state)
	}
	return confirm(f, what, redact(uri), false)
}
