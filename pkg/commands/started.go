package commands

import (
	"context"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// NodeStartedOptions are node started's options.
type NodeStartedOptions struct {
	Keyring     string
	StorePaths  []string
	ActiveKeyID string
}

func newCmdNodeStarted(f *Factory, p func() printer) *cobra.Command {
	o := &NodeStartedOptions{}
	cmd := &cobra.Command{
		Use:   "started --keyring DIR [--store-path P]... [--active-key-id ID|-]",
		Short: "Confirm that a node's stores started on the keys unlock handed them",
		Long: `Run once the database is up (systemd ExecStartPost, a Kubernetes
postStart hook or readiness step): it records that each store now runs on the
store key unlock last handed it. Until a start is confirmed cmekctl counts the
store as possibly on either its old or its new key, keeps both, and hands it a
pair that starts it whichever it is on; rotate store-key retires a key only
once every store has moved off it.

--active-key-id takes what cockroach debug encryption-active-key STORE prints
(TYPE:ID, or "-" to read it from standard input): CockroachDB's own word on
which key the store runs on, for one store. A key ID this keyring does not
hold is refused, and nothing changes. No KMS call.

With --store URI --cluster-id C --region R --node N it then copies the stores'
records into the node's status in the shared store, and for each old store key
of the node's bundle that none of its stores may run on any more writes the
marker C/retired/R/KEY/N (create-only; docs/multihost.md), so a store-key
rotation needs not read this node's status.`,
		Example: `  cmekctl node started --keyring /var/lib/cockroach/cmek
  cockroach debug encryption-active-key /mnt/data1 | cmekctl node started --keyring /var/lib/cockroach/cmek --store-path /mnt/data1 --active-key-id -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := nodeStartedRun(cmd.Context(), f, p(), o); err != nil || storeMode(cmd) == "" {
				return err
			}
			return publishStartedRun(cmd, f, o.Keyring)
		},
	}
	cmd.Flags().StringVar(&o.Keyring, "keyring", "", "the node's keyring directory")
	cmd.Flags().StringArrayVar(&o.StorePaths, "store-path", nil, "a store that started (repeat; default: every store unlock handed keys to)")
	cmd.Flags().StringVar(&o.ActiveKeyID, "active-key-id", "", "the store's active key as cockroach debug encryption-active-key prints it, or - for standard input")
	_ = cmd.MarkFlagRequired("keyring")
	_ = cmd.MarkFlagDirname("keyring")
	addStoreFlags(cmd)
	cmd.Flags().String("region", "", "with --store: the node's region")
	cmd.Flags().String("node", "", "with --store: the node's name")
	return cmd
}

type startedStore struct {
	Path     string `json:"path"`
	KeyID    string `json:"store_key_id"`
	Format   string `json:"format,omitempty"`
	Replaced int    `json:"keys_replaced"`
}

type startedReport struct {
	Keyring string         `json:"keyring"`
	Stores  []startedStore `json:"stores"`
}

func nodeStartedRun(ctx context.Context, f *Factory, p printer, o *NodeStartedOptions) error {
	id := o.ActiveKeyID
	if id == "-" {
		b, err := io.ReadAll(io.LimitReader(f.IO.In, 4096))
		if err != nil {
			return err
		}
		id = strings.TrimSpace(string(b))
		if id == "" {
			return usageError("pipe cockroach debug encryption-active-key STORE into it", "--active-key-id -: standard input is empty")
		}
	}
	sts, err := keyring.NodeStarted(ctx, f.env(f.newSession()), f.store(o.Keyring), keyring.StartedOptions{StorePaths: o.StorePaths, ActiveKeyID: id})
	if err != nil {
		return err
	}
	rep := startedReport{Keyring: o.Keyring, Stores: []startedStore{}}
	t := table{Headers: []string{"store", "runs on", "format"}}
	for _, st := range sts {
		id := st.On.ID
		if st.On.Plain() {
			id = "plain"
		}
		rep.Stores = append(rep.Stores, startedStore{Path: st.Path, KeyID: id, Format: st.On.Format, Replaced: len(st.Replaced)})
		t.Rows = append(t.Rows, []string{st.Path, keyring.Short(id), st.On.Format})
	}
	return p.print(rep, t)
}
