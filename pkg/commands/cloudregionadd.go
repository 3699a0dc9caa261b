package commands

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

// regionAddBody is the PATCH body of region add --cloud, for reports; its
// String is one line for the table.
type regionAddBody struct {
	Dedicated regionAddDedicated `json:"dedicated"`
}

type regionAddDedicated struct {
	RegionNodes     map[string]int32   `json:"region_nodes"`
	CMEKRegionSpecs []cloud.RegionSpec `json:"cmek_region_specs,omitempty"`
}

func (b regionAddBody) String() string {
	var names []string
	for r := range b.Dedicated.RegionNodes {
		names = append(names, r)
	}
	sort.Strings(names)
	var parts []string
	for _, r := range names {
		parts = append(parts, fmt.Sprintf("%s:%d", r, b.Dedicated.RegionNodes[r]))
	}
	out := "region_nodes " + strings.Join(parts, ",")
	if len(b.Dedicated.CMEKRegionSpecs) > 0 {
		out += " cmek " + specsBody{b.Dedicated.CMEKRegionSpecs}.String()
	}
	return out
}

func clusterPath(id string) string { return "/api/v1/clusters/" + url.PathEscape(id) }

// cloudRegionAddRun: region add --cloud. Everything that can be checked
// locally is, before any write: the flags, the cluster (the region must be
// new), CMEK's state (on: the new region needs its key; off: no key), and
// the key through its KMS. Then one PATCH, never retried, and the wait:
// the cluster ready again, then every region settled, the new one ENABLED.
func cloudRegionAddRun(ctx context.Context, f *Factory, p printer, o *CloudOptions, region, principal string) error {
	region = strings.TrimSpace(region)
	if region == "" {
		return usageError("name the region to add: --region R", "region add --cloud needs --region")
	}
	if o.Nodes < 1 {
		return usageError("give the new region's node count: --nodes N (at least 1)", "region add --cloud needs --nodes N, at least 1")
	}
	_, uris, err := regionPairs("region-key", o.RegionKeys, false)
	if err != nil {
		return err
	}
	for r := range uris {
		if r != region {
			return usageError("give --region-key "+region+"=URI for the region this command adds, and add one region at a time",
				"--region-key for region %s, which this command does not add (it adds %s); nothing was sent", r, region)
		}
	}
	if pr, p2, ok := strings.Cut(principal, "="); ok {
		if strings.TrimSpace(pr) != region {
			return usageError("give --auth-principal "+region+"=PRINCIPAL, for the region this command adds",
				"--auth-principal for region %s, which this command does not add (it adds %s); nothing was sent", pr, region)
		}
		principal = p2
	}
	if principal != "" && uris[region] == "" {
		return usageError("give --region-key "+region+"=URI with it, or drop the principal", "--auth-principal without --region-key; nothing was sent")
	}
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	rep := s.opReport("region-add", cloudRequest{Method: "PATCH", Path: clusterPath(s.id)})
	rep.DryRun = o.DryRun
	cur, err := s.c.GetCMEK(ctx, s.id)
	if err != nil {
		return s.finish(p, rep, nil, err)
	}
	cl, err := s.c.GetCluster(ctx, s.id)
	if err != nil {
		return s.finish(p, rep, cur, err)
	}
	var names []string
	nodes := map[string]int32{}
	for _, r := range cl.Regions {
		names = append(names, r.Name)
		nodes[r.Name] = r.NodeCount
	}
	if cl.Region(region) != nil || cur.Region(region) != nil {
		return s.finish(p, rep, cur, usageError("the cluster's regions: "+strings.Join(names, ", ")+"; change a region's key with cmekctl rotate cmek --cloud",
			"region add --cloud: %s is already a region of cluster %s; nothing was sent", region, s.id))
	}
	nodes[region] = int32(o.Nodes)
	body := regionAddBody{Dedicated: regionAddDedicated{RegionNodes: nodes}}
	var on []string
	for _, r := range cur.RegionInfos {
		if r.Status != cloud.StatusDisabled {
			on = append(on, r.Region)
		}
	}
	switch {
	case len(on) > 0 && uris[region] == "":
		return s.finish(p, rep, cur, usageError("give --region-key "+region+"=URI (and --auth-principal "+region+"=PRINCIPAL): the API refuses a new region without its key while CMEK is on",
			"region add --cloud: CMEK is enabled on cluster %s (%s), so region %s needs its key; nothing was sent", s.id, strings.Join(on, ", "), region))
	case len(on) == 0 && uris[region] != "":
		return s.finish(p, rep, cur, usageError("drop --region-key to add the region, then cmekctl enable --cloud with a key for every region",
			"region add --cloud: CMEK is not enabled on cluster %s: the API takes a new region's key only while CMEK is on; nothing was sent", s.id))
	}
	if uris[region] != "" {
		if principal == "" {
			principal = sharedPrincipal(cur)
		}
		spec, check, err := resolveSpec(ctx, region, uris[region], principal)
		if err != nil {
			return s.finish(p, rep, cur, err)
		}
		body.Dedicated.CMEKRegionSpecs = []cloud.RegionSpec{{Region: region, KeySpec: spec}}
		rep.Request.Body = body
		if rep.KeyChecks, err = s.checkKeys(ctx, map[string]string{region: check}, []string{region}); err != nil {
			return s.finish(p, rep, cur, err)
		}
	}
	rep.Request.Body = body
	if o.DryRun {
		return s.finish(p, rep, cur, nil)
	}
	if _, err := s.c.AddRegions(ctx, s.id, nodes, body.Dedicated.CMEKRegionSpecs); err != nil {
		return s.finish(p, rep, cur, err)
	}
	if !s.wantWait() {
		return s.finish(p, rep, cur, nil)
	}
	rep.Waited = true
	if _, err := s.c.WaitClusterReady(ctx, s.id, cloud.WaitOptions{Timeout: s.o.Timeout}); err != nil {
		return s.finish(p, rep, cur, err)
	}
	info, err := s.wait(ctx)
	if info == nil {
		info = cur
	}
	if err == nil && len(on) > 0 {
		if ri := info.Region(region); ri == nil || ri.Status != cloud.StatusEnabled {
			got := "absent"
			if ri != nil {
				got = string(ri.Status)
			}
			err = &ExitError{Code: ExitCloudFailed, Hint: "check the region with cmekctl status --cloud --cluster-id " + s.id,
				Err: fmt.Errorf("cloud api: region %s of cluster %s is %s after the region add, not ENABLED", region, s.id, got)}
		}
	}
	return s.finish(p, rep, info, err)
}

// sharedPrincipal is the auth principal that every region's current key
// uses, or "" when they differ or there is none.
func sharedPrincipal(info *cloud.ClusterInfo) string {
	out := ""
	for i := range info.RegionInfos {
		k := info.RegionInfos[i].Current()
		if k == nil || k.Spec.AuthPrincipal == "" {
			continue
		}
		if out != "" && out != k.Spec.AuthPrincipal {
			return ""
		}
		out = k.Spec.AuthPrincipal
	}
	return out
}
