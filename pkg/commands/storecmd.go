package commands

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cluster"
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
	cmd.AddCommand(newCmdStoreCheck(f, p), newCmdStoreUnlock(f, p))
	return cmd
}

// openStore opens a store URI through the factory (tests may replace it).
func openStore(ctx context.Context, f *Factory, uri string) (store.Store, error) {
	if f.OpenStore != nil {
		return f.OpenStore(ctx, uri)
	}
	return store.Open(ctx, uri)
}

// addStoreFlags gives a verb its store form: --store (also store: in the
// config file and CMEKCTL_STORE), and --cluster-id where the verb has none.
func addStoreFlags(cmd *cobra.Command) {
	cmd.Flags().String("store", "", "the cluster's shared keyring store URI (s3://, gs://, etcd://, file:///); see cmekctl store --help")
	if cmd.Flags().Lookup("cluster-id") == nil {
		cmd.Flags().String("cluster-id", "", "with --store: the cluster ID")
	}
}

// storeMode returns the --store URI given to cmd, if any.
func storeMode(cmd *cobra.Command) string {
	uri, _ := cmd.Flags().GetString("store")
	return uri
}

// storeTarget is the store, cluster and node selection of a store-form verb.
type storeTarget struct {
	URI     string
	Cluster string
	Regions []string
	Nodes   []string
}

func storeTargetOf(cmd *cobra.Command) (storeTarget, error) {
	t := storeTarget{URI: storeMode(cmd)}
	t.Cluster, _ = cmd.Flags().GetString("cluster-id")
	if fl := cmd.Flags().Lookup("region"); fl != nil {
		if fl.Value.Type() == "string" {
			if r := fl.Value.String(); r != "" {
				t.Regions = []string{r}
			}
		} else {
			t.Regions, _ = cmd.Flags().GetStringSlice("region")
		}
	}
	if fl := cmd.Flags().Lookup("node"); fl != nil {
		switch fl.Value.Type() {
		case "stringArray":
			t.Nodes, _ = cmd.Flags().GetStringArray("node")
		case "string":
			if n := fl.Value.String(); n != "" {
				t.Nodes = []string{n}
			}
		default:
			t.Nodes, _ = cmd.Flags().GetStringSlice("node")
		}
	}
	if t.Cluster == "" {
		return t, usageError("name the cluster: --cluster-id C (or cluster_id: in the config file)", "--store needs --cluster-id")
	}
	return t, nil
}

// operator names this process in leases and intents.
func operator() string {
	u := os.Getenv("USER")
	if u == "" {
		u = fmt.Sprintf("uid %d", os.Getuid())
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s@%s pid %d", u, h, os.Getpid())
}

// publishStartedRun is node started --store: the stores' records, as the
// local cache (--keyring) now holds them, copied into the node's status.
func publishStartedRun(cmd *cobra.Command, f *Factory, cache string) error {
	t, err := storeTargetOf(cmd)
	if err != nil {
		return err
	}
	if len(t.Regions) != 1 || len(t.Nodes) != 1 {
		return usageError("name the node: --region R --node N", "node started --store confirms one node")
	}
	s, err := openStore(cmd.Context(), f, t.URI)
	if err != nil {
		return err
	}
	defer s.Close()
	return cluster.PublishStores(cmd.Context(), s, cluster.UnlockOptions{Cluster: t.Cluster, Region: t.Regions[0], Node: t.Nodes[0], Cache: cache, Now: f.Now})
}
