package awskmstest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/nsmithuk/local-kms/src/cmk"
)

func code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// TestVerifySignatures: with VerifySignatures on, a request signed with the
// test credentials passes, and one signed with another secret or access key
// gets AWS's error codes; with it off, local-kms accepts anything.
func TestVerifySignatures(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	with := func(akid, secret string) *kms.Client {
		return kms.New(kms.Options{Region: Region, BaseEndpoint: aws.String(s.URL),
			Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	}
	s.VerifySignatures(true)
	if _, err := s.CreateKey(ctx); err != nil {
		t.Fatalf("correctly signed CreateKey: %v", err)
	}
	if _, err := with(AccessKeyID, "another-secret").ListKeys(ctx, &kms.ListKeysInput{}); code(err) != "InvalidSignatureException" {
		t.Fatalf("wrong secret: %v, want InvalidSignatureException", err)
	}
	if _, err := with("AKIAOTHER", SecretKey).ListKeys(ctx, &kms.ListKeysInput{}); code(err) != "UnrecognizedClientException" {
		t.Fatalf("other access key: %v, want UnrecognizedClientException", err)
	}
	s.VerifySignatures(false)
	if _, err := with(AccessKeyID, "another-secret").ListKeys(ctx, &kms.ListKeysInput{}); err != nil {
		t.Fatalf("local-kms without the check: %v", err)
	}
}

// TestRotateOnDemand: the front's RotateKeyOnDemand adds key material behind
// the same ARN; older ciphertexts still decrypt; a disabled key is refused.
func TestRotateOnDemand(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := s.Client()
	arn, err := s.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("before")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(arn)})
	if err != nil || aws.ToString(out.KeyId) != arn {
		t.Fatalf("rotate: %v, key %v", err, out)
	}
	k, err := s.DB.LoadKey(arn)
	if err != nil || len(k.(*cmk.AesKey).BackingKeys) != 2 {
		t.Fatalf("backing keys after rotation: %v", err)
	}
	pt, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(arn), CiphertextBlob: old.CiphertextBlob})
	if err != nil || !bytes.Equal(pt.Plaintext, []byte("before")) {
		t.Fatalf("decrypt an older ciphertext: %v", err)
	}
	if _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(arn)}); code(err) != "DisabledException" {
		t.Fatalf("rotate a disabled key: %v", err)
	}
}

// TestFaults: DenyAccess, Throttle, ExpireDeletion and Stop.
func TestFaults(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Client()
	arn, err := s.CreateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.DenyAccess(true)
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); code(err) != "AccessDeniedException" {
		t.Fatalf("denied: %v", err)
	}
	s.DenyAccess(false)
	s.Throttle(true)
	before := s.Calls("DescribeKey")
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); code(err) != "ThrottlingException" {
		t.Fatalf("throttled: %v", err)
	}
	if n := s.Calls("DescribeKey") - before; n != 3 {
		t.Fatalf("throttled DescribeKey: %d attempts, want the client's 3", n)
	}
	s.Throttle(false)
	if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ExpireDeletion(arn); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); code(err) != "NotFoundException" {
		t.Fatalf("after the deletion window: %v", err)
	}
	s.Stop()
	if _, err := c.ListKeys(ctx, &kms.ListKeysInput{}); err == nil || code(err) != "" {
		t.Fatalf("stopped server answered: %v", err)
	}
}
