package gcpkms_test

import (
	"context"
	"testing"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
)

func newKeyNamed(t testing.TB, srv *gcpkmsfake.Server, name string) *gcpkms.Key {
	return gcpkms.New(srv.Client(ctxT(t)), name, "gcp-kms:///"+name+"?AUTH=implicit").WithRetry(fastRetry)
}

func disableVersion(ctx context.Context, c *kms.KeyManagementClient, name string) error {
	_, err := c.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
		CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: name, State: kmspb.CryptoKeyVersion_DISABLED},
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	})
	return err
}
