package commands

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// lockWaitAtTerminal is how long a run at a terminal waits for another
// cmekctl's keyring lock when --lock-wait is not given. A script (no
// terminal on stdin or stderr) does not wait: a second cron job fails at
// once, exit 9, instead of queueing behind the first and running after it.
const lockWaitAtTerminal = 30 * time.Second

// addLockWaitFlag adds the persistent --lock-wait flag to root.
func addLockWaitFlag(root *cobra.Command, wait *string) {
	root.PersistentFlags().StringVar(wait, "lock-wait", "",
		"how long to wait for another cmekctl's keyring lock, e.g. 30s or 5m; 0: fail at once (default: 30s at a terminal, 0 in a script; also CMEKCTL_LOCK_WAIT)")
}

// lockPolicy puts the keyring lock policy of this run on cmd's context:
// the wait, the verb written into the lock file, and a line on stderr, at
// once, naming the holder when the run has to wait.
func lockPolicy(f *Factory, cmd *cobra.Command, wait string) error {
	d := time.Duration(0)
	switch {
	case wait != "":
		var err error
		d, err = time.ParseDuration(wait)
		if wait == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			return usageError("give a duration such as 30s or 5m, or 0 to fail at once", "--lock-wait %q is not a duration", wait)
		}
	case f.IO.CanPrompt():
		d = lockWaitAtTerminal
	}
	p := keyring.LockPolicy{Wait: d, Owner: f.Verb}
	p.OnWait = func(dir, holder string) {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: waiting up to %s for the lock of %s, held by %s\n", d, dir, holder)
	}
	cmd.SetContext(keyring.WithLockPolicy(cmd.Context(), p))
	return nil
}
