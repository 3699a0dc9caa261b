package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/verify"
)

type cloudVerifyReport struct {
	ClusterID string `json:"cluster_id"`
	Server    string `json:"server"`
	verify.Report
	APICalls APICalls `json:"api_calls"`
	KMSCalls KMSCalls `json:"kms_calls"`
}

// cloudVerifyRun: verify-destroyed --cloud. Every region's API status must
// be REVOKED (else its check is ACCESSIBLE; INCONCLUSIVE when the API does
// not answer), and each region's current and past keys are described
// through their providers, judged as standalone judges them.
func cloudVerifyRun(ctx context.Context, f *Factory, p printer, o *CloudOptions, accept string) error {
	if accept != "" && accept != "revoked" {
		return usageError("use --accept revoked", "unknown --accept %q", accept)
	}
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	now := func() time.Time { return f.Now() }
	rep := verify.Report{StartedAt: f.Now().UTC()}
	add := func(c verify.Check) { rep.Checks = append(rep.Checks, c) }
	info, err := s.c.GetCMEK(ctx, s.id)
	switch {
	case err == nil:
	case errors.Is(err, cloud.ErrUnavailable):
		add(verify.Check{Target: "cluster " + s.id, Check: "cloud api cmek status", Result: "the API did not answer (not proof): " + oneLine(err.Error()),
			Outcome: verify.OutInconclusive, Class: string(provider.Transient), At: f.Now().UTC()})
	default:
		return err // auth, not found, rejected: not evidence of anything
	}
	if info != nil {
		if len(info.RegionInfos) == 0 {
			add(verify.Check{Target: "cluster " + s.id, Check: "cloud api cmek status", Result: "the API lists no region (cluster status " + string(info.Status) + ")",
				Outcome: verify.OutInconclusive, At: f.Now().UTC()})
		}
		for _, r := range info.RegionInfos {
			c := verify.Check{Target: "region " + r.Region, Check: "cloud api cmek status", Result: "API says " + string(r.Status), At: f.Now().UTC()}
			if r.Status == cloud.StatusRevoked {
				c.Outcome = verify.OutPass
			} else {
				c.Outcome = verify.OutAccessible
				c.Result += ": the cluster's access to its keys is not revoked"
			}
			add(c)
		}
		seen := map[string]bool{}
		for _, r := range info.RegionInfos {
			for _, k := range r.KeyInfos {
				uri := providerURI(k.Spec)
				if seen[uri] {
					continue
				}
				seen[uri] = true
				target := fmt.Sprintf("region %s key %s (API: %s)", r.Region, redact(cloud.URIFromSpec(k.Spec)), k.Status)
				if k.Spec.Type != cloud.KeyTypeAWSKMS && k.Spec.Type != cloud.KeyTypeGCPCloudKMS {
					add(verify.Check{Target: target, Check: "describe CMEK key", Outcome: verify.OutInconclusive, At: f.Now().UTC(),
						Result: "cmekctl has no provider for key type " + string(k.Spec.Type) + ": check it with its KMS's tools"})
					continue
				}
				key, err := s.kms.Open(uri)
				if err != nil {
					add(verify.ErrorCheck(target, "describe CMEK key", err, f.Now().UTC()))
					continue
				}
				add(verify.DescribeCheck(ctx, key, target, now))
			}
		}
	}
	rep.FinishedAt = f.Now().UTC()
	rep.Verdict, rep.Reason = verify.Decide(rep.Checks)
	out := cloudVerifyReport{ClusterID: s.id, Server: s.c.Server(), Report: rep, APICalls: s.calls.counts(), KMSCalls: s.kms.Counts()}
	if err := p.print(out, verifyTables(p, rep)...); err != nil {
		return err
	}
	if p.text() {
		fmt.Fprintf(f.IO.ErrOut, "verdict: %s (%s)\n", rep.Verdict, rep.Reason)
	}
	return verdictExit(rep.Verdict, accept)
}
