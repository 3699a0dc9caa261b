package awskms

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

var _ provider.Prover = (*Key)(nil)

// Identity entries of an AWS KMS key.
const (
	IDArn      = "arn"
	IDAccount  = "account"
	IDRegion   = "region"
	IDEndpoint = "endpoint"       // AWS_ENDPOINT or the SDK's resolved base endpoint; "" for AWS's own
	IDCaller   = "caller_account" // the caller's account, by STS GetCallerIdentity at pin time
)

// callerAccount asks STS GetCallerIdentity for the account of the
// credentials in use.
func (k *Key) callerAccount(ctx context.Context, op string) (string, error) {
	if k.sts == nil {
		return "", provider.Errorf(providerName, op, provider.Misuse, "", "no STS client: the caller's account cannot be checked")
	}
	out, err := k.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", newError(op+": sts GetCallerIdentity", classOf(err), err)
	}
	return aws.ToString(out.Account), nil
}

// parseKeyARN splits arn:PARTITION:kms:REGION:ACCOUNT:key/ID.
func parseKeyARN(arn string) (partition, region, account, keyID string, ok bool) {
	p := strings.SplitN(arn, ":", 6)
	if len(p) != 6 || p[0] != "arn" || p[2] != "kms" || p[3] == "" || p[4] == "" || !strings.HasPrefix(p[5], "key/") {
		return "", "", "", "", false
	}
	return p[1], p[3], p[4], strings.TrimPrefix(p[5], "key/"), true
}

// place is where this client asks: its region and endpoint.
func (k *Key) place() provider.KeyIdentity {
	o := k.client.Options()
	return provider.KeyIdentity{IDRegion: o.Region, IDEndpoint: aws.ToString(o.BaseEndpoint)}
}

// Pin records the key ARN that Encrypt returned (w.KeyVersion), with the
// account and region it names, the endpoint asked, and the caller's account
// as STS GetCallerIdentity gives it (a key of another account is pinned, and
// Prove will never take AWS's word about it as proof).
func (k *Key) Pin(ctx context.Context, w provider.Wrapped) (provider.KeyIdentity, error) {
	_, region, account, _, ok := parseKeyARN(w.KeyVersion)
	if !ok {
		return nil, provider.Errorf(providerName, "pin", provider.Misuse, "", "Encrypt returned %q, not a key ARN", w.KeyVersion)
	}
	id := k.place()
	if id[IDRegion] != region {
		return nil, provider.Errorf(providerName, "pin", provider.Misuse, "", "the key ARN is in region %s, the client in %s", region, id[IDRegion])
	}
	caller, err := k.callerAccount(ctx, "pin")
	if err != nil {
		return nil, err
	}
	id[IDArn], id[IDAccount], id[IDCaller] = w.KeyVersion, account, caller
	return id, nil
}

// Prove describes the pinned key ARN (never an alias, which proves nothing
// about the key it named). It is proof of destruction only when the client
// asks the pinned region at the pinned endpoint and AWS does not find the
// ARN, and the key is not multi-region (a replica or primary elsewhere may
// hold the same material). A key pending deletion is not deleted, whatever
// its date; its date is judged by AWS's clock (the Date header).
func (k *Key) Prove(ctx context.Context, pin provider.KeyIdentity) (provider.Proof, error) {
	p := provider.Proof{State: provider.KeyState{URI: k.uri, Provider: providerName, State: provider.StateUnknown}}
	_, region, _, keyID, ok := parseKeyARN(pin[IDArn])
	if !ok || region != pin[IDRegion] {
		p.Reason = "no key ARN was pinned when the key wrapped: nothing AWS says can be tied to the key"
		return p, nil
	}
	if d := provider.SamePlace(pin, k.place(), IDRegion, IDEndpoint); d != "" {
		p.Mismatch = "asked in the wrong place: " + d
		return p, nil
	}
	// The caller's account, by STS: AWS answers NotFound about a key of
	// another account the caller may not see, so only a caller in the
	// key's own account (and the one pinned, where one was) gets proof.
	caller, err := k.callerAccount(ctx, "prove")
	if err != nil {
		if k.sts == nil {
			p.Mismatch = "the caller's account cannot be checked (no STS client)"
			return p, nil
		}
		return p, err
	}
	switch {
	case caller != pin[IDAccount]:
		p.Mismatch = "the caller is in account " + caller + ", the pinned key in account " + pin[IDAccount] + " (STS GetCallerIdentity)"
		return p, nil
	case pin[IDCaller] != "" && caller != pin[IDCaller]:
		p.Mismatch = "the caller is in account " + caller + ", pinned " + pin[IDCaller] + " (STS GetCallerIdentity)"
		return p, nil
	}
	st, server, err := k.describeAt(ctx, pin[IDArn])
	p.State, p.ServerTime = st, server
	if err != nil {
		return p, err
	}
	switch {
	case st.State == provider.StateNotFound && strings.HasPrefix(keyID, "mrk-"):
		p.Reason = "AWS does not find the multi-region key in " + region + ", but a primary or replica in another region may hold the same material"
	case st.State == provider.StateNotFound:
		p.Destroyed = true
		p.Reason = "AWS, asked in the pinned region at the pinned endpoint, does not find the pinned key ARN: deleted"
	case st.State == provider.StatePendingDeletion:
		p.Reason = "AWS still holds the key (pending deletion on " + st.DeletionDate.UTC().Format(time.RFC3339) + ")"
		if !server.IsZero() {
			p.Reason += "; AWS's clock says " + server.UTC().Format(time.RFC3339)
		}
	default:
		p.Reason = "AWS still holds the key (" + string(st.State) + ")"
	}
	return p, nil
}

// serverTimeOfError is AWS's clock from an error response's Date header.
func serverTimeOfError(err error) time.Time {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if t, perr := http.ParseTime(re.Response.Header.Get("Date")); perr == nil {
			return t
		}
	}
	return time.Time{}
}
