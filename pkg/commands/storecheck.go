package commands

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/store"
)

type storeCheckOptions struct {
	URI string
}

type storeCheckReport struct {
	Store  string              `json:"store"`
	Passed bool                `json:"passed"`
	Steps  []store.CheckResult `json:"steps"`
}

func newCmdStoreCheck(f *Factory, p func() printer) *cobra.Command {
	o := &storeCheckOptions{}
	return &cobra.Command{
		Use:   "check URI",
		Short: "Prove that a store enforces conditional writes and reads its own writes",
		Long: `store check proves, before first use, that a store enforces create-only and
replace-if-unchanged writes (8 racing writers: exactly one wins) and reads its
own writes. Some "S3-compatible" servers accept the conditional headers and
ignore them; such a store is refused (exit 71), since the cluster's safety
rests on its compare-and-swap.

It writes a few small documents under PREFIX/_check/ and leaves them there
(the store interface has no delete).`,
		Example: `  cmekctl store check 's3://acme-keyrings/prod?AUTH=implicit&AWS_REGION=us-east-1'
  cmekctl store check etcd://127.0.0.1:2379/cmekctl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.URI = args[0]
			s, err := openStore(cmd.Context(), f, o.URI)
			if err != nil {
				return err
			}
			defer s.Close()
			steps, err := store.Check(cmd.Context(), s)
			rep := storeCheckReport{Store: s.String(), Passed: err == nil, Steps: steps}
			t := table{Headers: []string{"step", "result", "detail"}}
			for _, st := range steps {
				r := "ok"
				if !st.OK {
					r = "FAILED"
				}
				t.Rows = append(t.Rows, []string{st.Step, r, st.Detail})
			}
			if perr := p().print(rep, t); perr != nil {
				return perr
			}
			if err != nil {
				return fmt.Errorf("store check: %w", err)
			}
			return nil
		},
	}
}
