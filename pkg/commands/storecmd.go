package commands

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/store"
)

// newCmdStore is the shared keyring store's command group.
func newCmdStore(f *Factory, p func() printer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Check the shared keyring store of a cluster that runs on many hosts",
		Long: `A shared keyring store (S3, GCS, etcd, or a directory) holds the keyrings of a
cluster whose nodes run on separate hosts. See docs/multihost.md.

Store URIs:
  s3://BUCKET/PREFIX?AUTH=implicit&AWS_REGION=R[&AWS_ENDPOINT=URL][&ASSUME_ROLE=ARN]
  gs://BUCKET/PREFIX?AUTH=implicit            (honours STORAGE_EMULATOR_HOST)
  etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?CA_CERT=F&CLIENT_CERT=F&CLIENT_KEY=F&SERVER_NAME=N&TLS=true]
  file:///ABS/DIR, or an absolute path

Credentials never go in a URI: each SDK's own chain supplies them.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCmdStoreCheck(f, p))
	return cmd
}

// openStore opens a store URI through the factory (tests may replace it).
func openStore(ctx context.Context, f *Factory, uri string) (store.Store, error) {
	if f.OpenStore != nil {
		return f.OpenStore(ctx, uri)
	}
	return store.Open(ctx, uri)
}
