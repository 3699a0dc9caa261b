package commands

import (
	"context"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// cloudRotateRun: rotate cmek|store-key|data-key --cloud.
func cloudRotateRun(ctx context.Context, f *Factory, p printer, op string, o *CloudOptions) error {
	switch op {
	case keyring.OpRotateStoreKey:
		return usageError("rotate the CMEK key instead: cmekctl rotate cmek --cloud --cluster-id ID",
			"rotate store-key --cloud: the CockroachDB Cloud does not offer store-key rotation through its API")
	case keyring.OpRotateDataKey:
		return usageError("nothing to do: the Cloud rotates data keys itself",
			"rotate data-key --cloud: the CockroachDB Cloud does not offer data-key rotation: it rotates data keys monthly by itself")
	}
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	order, uris, err := regionPairs("region-key", o.RegionKeys, true)
	if err != nil {
		return err
	}
	_, principals, err := regionPairs("auth-principal", o.Principals, false)
	if err != nil {
		return err
	}
	for r := range principals {
		if uris[r] == "" {
			return usageError("give --region-key "+r+"=NEW_URI with it, or drop the principal (the current key keeps its principal)",
				"--auth-principal for region %s, which has no new key URI", r)
		}
	}
	rep := s.opReport("rotate-cmek", cloudRequest{Method: "PUT", Path: cmekPath(s.id)})
	cur, err := s.c.GetCMEK(ctx, s.id)
	if err != nil {
		return s.finish(p, rep, nil, err)
	}
	if len(order) == 0 { // every region, each to its key's current version
		order = regionNames(cur)
	}
	var same []string
	specs := make([]cloud.RegionSpec, 0, len(order))
	check := map[string]string{}
	for _, r := range order {
		ri := cur.Region(r)
		if ri == nil {
			return s.finish(p, rep, cur, usageError("the cluster's regions: "+strings.Join(regionNames(cur), ", "), "rotate cmek --cloud: %s is not a region of cluster %s; nothing was sent", r, s.id))
		}
		k := ri.Current()
		if k == nil || ri.Status == cloud.StatusDisabled {
			return s.finish(p, rep, cur, usageError(notEnabledHint(cur), "rotate cmek --cloud: cmek is not enabled in region %s of cluster %s (%s); nothing was sent", r, s.id, ri.Status))
		}
		if uris[r] == "" { // same URI: the key's new version, as the vendor documents
			same = append(same, r)
			specs = append(specs, cloud.RegionSpec{Region: r, KeySpec: cloud.KeySpec{Type: k.Spec.Type, URI: k.Spec.URI, AuthPrincipal: k.Spec.AuthPrincipal}})
			check[r] = providerURI(k.Spec)
			continue
		}
		principal := principals[r]
		if principal == "" {
			principal = k.Spec.AuthPrincipal
		}
		spec, c, err := resolveSpec(ctx, r, uris[r], principal)
		if err != nil {
			return s.finish(p, rep, cur, err)
		}
		specs = append(specs, cloud.RegionSpec{Region: r, KeySpec: spec})
		check[r] = c
	}
	rep.Request.Body = specsBody{specs}
	if len(same) > 0 {
		rep.Notes = append(rep.Notes, "region "+strings.Join(same, ", ")+" kept its key URI: the Cloud documents that such a rotation re-wraps the store key under the key's current version (https://www.cockroachlabs.com/docs/cockroachcloud/cmek-faq); the API does not report which version wraps it, so cmekctl cannot confirm it")
	}
	if rep.KeyChecks, err = s.checkKeys(ctx, check, order); err != nil {
		return s.finish(p, rep, cur, err)
	}
	info, err := s.settle(ctx, &rep)(s.c.UpdateCMEK(ctx, s.id, specs))
	if info == nil {
		info = cur
	}
	return s.finish(p, rep, info, err)
}

// notEnabledHint: with CMEK off everywhere, enable it; with CMEK on in other
// regions, a new region gets its key as it is added (region add --cloud),
// and enable --cloud, which covers every region, does not apply.
func notEnabledHint(cur *cloud.ClusterInfo) string {
	for _, r := range cur.RegionInfos {
		if r.Status != cloud.StatusDisabled {
			return "CMEK is on in other regions: a region gets its key when it is added (cmekctl region add --cloud --region R --nodes N --region-key R=URI); ask Cockroach Labs support about a region left without one"
		}
	}
	return "enable it first: cmekctl enable --cloud"
}
