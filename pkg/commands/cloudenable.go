package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

// cloudEnableRun: enable --cloud.
func cloudEnableRun(ctx context.Context, f *Factory, p printer, o *CloudOptions) error {
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	order, uris, err := regionPairs("region-key", o.RegionKeys, false)
	if err != nil {
		return err
	}
	if len(order) == 0 {
		return usageError("give --region-key REGION=URI for every region of the cluster", "enable --cloud needs a key for every region")
	}
	_, principals, err := regionPairs("auth-principal", o.Principals, false)
	if err != nil {
		return err
	}
	for r := range principals {
		if _, ok := uris[r]; !ok {
			return usageError("give --region-key "+r+"=URI too, or drop the principal", "--auth-principal for region %s, which has no --region-key", r)
		}
	}
	specs := make([]cloud.RegionSpec, 0, len(order))
	check := map[string]string{}
	for _, r := range order {
		spec, c, err := resolveSpec(ctx, r, uris[r], principals[r])
		if err != nil {
			return err
		}
		specs = append(specs, cloud.RegionSpec{Region: r, KeySpec: spec})
		check[r] = c
	}
	rep := s.opReport("enable", cloudRequest{Method: "POST", Path: cmekPath(s.id), Body: specsBody{specs}})
	if rep.KeyChecks, err = s.checkKeys(ctx, check, order); err != nil {
		return s.finish(p, rep, nil, err)
	}
	// A second POST is answered 400, which enable retries for 10 minutes
	// (IAM propagation): refuse here instead. The regions are checked here
	// for the same reason.
	cur, err := s.c.GetCMEK(ctx, s.id)
	if err != nil {
		return s.finish(p, rep, nil, err)
	}
	var on []string
	for _, r := range cur.RegionInfos {
		if r.Status != cloud.StatusDisabled {
			on = append(on, r.Region+" "+string(r.Status))
		}
	}
	if len(on) > 0 {
		return s.finish(p, rep, cur, &ExitError{Code: ExitAlreadyEnabled,
			Err:  fmt.Errorf("cloud api: cmek is already enabled on cluster %s (%s); nothing was sent", s.id, strings.Join(on, ", ")),
			Hint: "change keys with cmekctl rotate cmek --cloud, add a region with cmekctl region add --cloud; see cmekctl status --cloud --cluster-id " + s.id})
	}
	if len(cur.RegionInfos) > 0 {
		var missing, unknown []string
		for _, r := range cur.RegionInfos {
			if _, ok := uris[r.Region]; !ok {
				missing = append(missing, r.Region)
			}
		}
		for _, r := range order {
			if cur.Region(r) == nil {
				unknown = append(unknown, r)
			}
		}
		if len(missing) > 0 || len(unknown) > 0 {
			var why []string
			if len(missing) > 0 {
				why = append(why, "no --region-key for "+strings.Join(missing, ", "))
			}
			if len(unknown) > 0 {
				why = append(why, "not a region of the cluster: "+strings.Join(unknown, ", "))
			}
			return s.finish(p, rep, cur, usageError("give one --region-key per region of the cluster: "+strings.Join(regionNames(cur), ", "),
				"enable --cloud on cluster %s: %s; nothing was sent", s.id, strings.Join(why, "; ")))
		}
	}
	info, err := s.settle(ctx, &rep)(s.c.EnableCMEK(ctx, s.id, specs))
	return s.finish(p, rep, info, err)
}
