package ststest

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// TestOfficialClient: the official STS client gets the account, and a
// changed one, through the query protocol; another action gets STS's
// error, parsed by the client as an API error.
func TestOfficialClient(t *testing.T) {
	s := Start(t, "111122223333")
	c := s.Client("us-east-1")
	ctx := context.Background()
	out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(out.Account) != "111122223333" || aws.ToString(out.Arn) != "arn:aws:iam::111122223333:user/cmekctl-test" {
		t.Fatalf("GetCallerIdentity: %+v %v", out, err)
	}
	s.SetAccount("999988887777")
	if out, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil || aws.ToString(out.Account) != "999988887777" {
		t.Fatalf("after SetAccount: %+v %v", out, err)
	}
	_, err = c.GetSessionToken(ctx, &sts.GetSessionTokenInput{})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidAction" {
		t.Fatalf("another action: %v", err)
	}
	if s.Calls() != 2 {
		t.Fatalf("calls %d", s.Calls())
	}
}
