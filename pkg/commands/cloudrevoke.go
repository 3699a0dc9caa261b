package commands

import (
	"context"
	"fmt"
)

// cloudRevokeRun: revoke --cloud. Destructive: typed confirmation of the
// cluster ID on a terminal, --yes in scripts; --dry-run reads the status
// and prints the call without making it.
func cloudRevokeRun(ctx context.Context, f *Factory, p printer, o *CloudOptions, dryRun, yes bool) error {
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	rep := s.opReport("revoke", cloudRequest{Method: "PATCH", Path: cmekPath(s.id), Body: actionBody{"REVOKE"}})
	if dryRun {
		rep.DryRun = true
		cur, err := s.c.GetCMEK(ctx, s.id)
		return s.finish(p, rep, cur, err)
	}
	if err := confirm(f, fmt.Sprintf("revoke the CMEK access of Cloud cluster %q: its nodes stop being able to read their data, and undoing it needs Cockroach Labs support", s.id), s.id, yes); err != nil {
		return err
	}
	info, err := s.settle(ctx, &rep)(s.c.RevokeCMEK(ctx, s.id))
	return s.finish(p, rep, info, err)
}
