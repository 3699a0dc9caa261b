package commands

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// regionPairs parses repeated REGION=VALUE flags, in order. bare allows a
// REGION without a value (its value is "").
func regionPairs(flag string, vals []string, bare bool) ([]string, map[string]string, error) {
	var order []string
	m := map[string]string{}
	for _, v := range vals {
		r, val, ok := strings.Cut(v, "=")
		r = strings.TrimSpace(r)
		if r == "" || (!ok && !bare) || (ok && val == "") {
			return nil, nil, usageError("use --"+flag+" REGION=VALUE, once per region", "--%s %q: expected REGION=VALUE", flag, redact(v))
		}
		if _, dup := m[r]; dup {
			return nil, nil, usageError("give each region once", "--%s: region %s is given twice", flag, r)
		}
		order = append(order, r)
		m[r] = val
	}
	return order, m, nil
}

// resolveSpec turns a region's URI into the API's key spec, resolving a
// vault-keymgmt:// URI to its AWS or GCP key first, and returns the URI to
// check the key through its provider.
func resolveSpec(ctx context.Context, region, uri, principal string) (cloud.KeySpec, string, error) {
	u, err := url.Parse(uri)
	if err == nil && u.Scheme == vaulttransit.KeyMgmtScheme {
		resolved, rerr := vaulttransit.ResolveKeyMgmt(ctx, u, nil)
		if rerr != nil {
			return cloud.KeySpec{}, "", fmt.Errorf("region %s: resolve %s: %w", region, redact(uri), rerr)
		}
		uri = resolved
		u, err = url.Parse(uri)
	}
	spec, serr := cloud.SpecFromURI(uri, principal)
	if serr != nil {
		hint := "give --region-key REGION=aws-kms:///arn:aws:kms:R:ACCOUNT:key/ID or gcp-kms:///projects/P/locations/L/keyRings/K/cryptoKeys/C"
		if strings.Contains(serr.Error(), "auth principal") {
			hint = "give --auth-principal " + region + "=arn:aws:iam::ACCOUNT:role/NAME (AWS) or a service account email (GCP)"
		}
		return cloud.KeySpec{}, "", usageError(hint, "region %s: %v", region, serr)
	}
	check := uri
	if err != nil || u.RawQuery == "" {
		check = providerURI(spec)
	}
	return spec, check, nil
}

// providerURI is the URI to describe a key the API names through its
// provider: cloud.URIFromSpec (REGION= from an AWS ARN), with AUTH=implicit
// for AWS and GCP so that credentials come from the environment (AWS's
// chain, Google's Application Default Credentials): without it a gcp-kms
// URI means AUTH=specified, as in CockroachDB, and needs CREDENTIALS.
func providerURI(spec cloud.KeySpec) string {
	u := cloud.URIFromSpec(spec)
	if spec.Type == cloud.KeyTypeAWSKMS || spec.Type == cloud.KeyTypeGCPCloudKMS {
		if strings.Contains(u, "?") {
			return u + "&AUTH=implicit"
		}
		return u + "?AUTH=implicit"
	}
	return u
}

// checkKeys describes each key through its provider before any Cloud call:
// each must be ENABLED, so that a typo or a disabled key fails here, not
// after minutes of polling.
func (s *cloudSession) checkKeys(ctx context.Context, uris map[string]string, order []string) ([]kmsView, error) {
	views := []kmsView{}
	done := map[string]bool{}
	for _, region := range order {
		uri := uris[region]
		if done[uri] {
			continue
		}
		done[uri] = true
		v := describeView(ctx, s.kms, uri)
		views = append(views, v)
		if v.State == nil {
			k, err := s.kms.Open(uri)
			if err == nil {
				_, err = k.Describe(ctx)
			}
			return views, &ExitError{Err: fmt.Errorf("region %s: check key %s before the Cloud API call: %w (nothing was sent to the Cloud API)", region, redact(uri), err),
				Hint: "check the key URI, and that this identity may describe the key: cmekctl kms describe URI"}
		}
		if v.State.State != provider.StateEnabled {
			code, what, hint := ExitKeyRevoked, "is "+string(v.State.State)+" in its KMS", "name an enabled key, or enable this one (cmekctl kms enable URI)"
			switch v.State.State {
			case provider.StateNotFound:
				code, what, hint = ExitKeyDestroyed, "does not exist in its KMS (or this identity cannot see it)", "check the key ARN or name for a typo"
			case provider.StateDestroyed:
				code, hint = ExitKeyDestroyed, "name another key: this one's material is gone"
			}
			return views, &ExitError{Code: code, Hint: hint,
				Err: fmt.Errorf("region %s: key %s %s (nothing was sent to the Cloud API)", region, redact(uri), what)}
		}
	}
	return views, nil
}

func regionNames(info *cloud.ClusterInfo) []string {
	var out []string
	for _, r := range info.RegionInfos {
		out = append(out, r.Region)
	}
	return out
}
