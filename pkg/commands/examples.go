package commands

import (
	"strings"

	"github.com/spf13/cobra"
)

// examples are the Example sections of the verbs that do not set their own,
// by command path without "cmekctl " (examples_test.go checks that every
// verb has one). K is a node's keyring directory.
var examples = map[string]string{
	"audit show":       "  cmekctl audit show --since 24h\n  cmekctl audit show -o json | jq '.entries[] | select(.result != \"ok\")'",
	"audit verify":     "  cmekctl audit verify && echo 'audit log intact'\n  cmekctl audit verify --key /media/auditor/cmekctl-audit-start.key --checkpoint /mnt/worm/cmekctl-audit.checkpoint.json",
	"audit init":       "  cmekctl audit init --export-key /media/auditor/cmekctl-audit-start.key",
	"audit checkpoint": "  cmekctl audit checkpoint --key /etc/cmekctl/audit-checkpoint.key --out /mnt/worm/cmekctl-audit.checkpoint.json",
	"backup encrypt": "  set -o pipefail\n  pg_dump db | cmekctl backup encrypt --keyring /var/lib/cockroach/n1/cmek - backup.cmek\n" +
		"  cmekctl backup encrypt --keyring K1 --keyring K2 --expect-bytes $(stat -c %s dump.sql) dump.sql full.cmek\n" +
		"  cmekctl backup encrypt --keyring K1 --incremental-of full.cmek incr.sql incr.cmek\n" +
		"  cmekctl backup encrypt --keyring K1 --keyring K2 --backup-key ID dump.sql full.cmek   # ID: what backup-keys create printed",
	"backup decrypt":        "  cmekctl backup decrypt --keyring K1 --keyring K2 backup.cmek restored.sql\n  cmekctl backup decrypt --keyring K1 < backup.cmek | psql db",
	"backup verify":         "  cmekctl backup verify --keyring K1 --keyring K2 /backups/*.cmek",
	"backup-keys create":    "  cmekctl backup-keys create --keyring K1 --keyring K2 --label nightly\n  cmekctl backup-keys export --keyring K1 --keyring K2 --out escrow.json   # escrow it before any backup uses it\n  cmekctl backup encrypt --keyring K1 --keyring K2 --backup-key ID dump.sql full.cmek\n  cmekctl backup-keys create --keyring K1 --keyring K2 --dry-run",
	"backup-keys list":      "  cmekctl backup-keys list --keyring K1\n  cmekctl backup-keys list --cloud --cluster-id ID",
	"backup-keys verify":    "  cmekctl backup-keys verify --keyring K1 --keyring K2 --all-regions",
	"backup-keys rewrap":    "  cmekctl backup-keys rewrap --keyring K1 --keyring K2 --dry-run\n  cmekctl backup-keys rewrap --keyring K1 --keyring K2",
	"backup-keys export":    "  cmekctl backup-keys export --keyring K1 --keyring K2 --out escrow.json",
	"backup-keys import":    "  cmekctl backup-keys import --keyring K3 escrow.json",
	"data encrypt":          "  cmekctl data encrypt --keyring K1 plain.bin sealed.bin\n  producer | cmekctl data encrypt --keyring K1 --expect-bytes 1048576 > sealed.bin",
	"data decrypt":          "  cmekctl data decrypt --keyring K1 sealed.bin plain.bin",
	"drill":                 "  cmekctl drill\n  cmekctl drill --dir /tmp/cmek-drill -o json",
	"kms create":            "  cmekctl kms create file-kms:///var/lib/cmekctl/kms/east\n  cmekctl kms create 'aws-kms:///alias/crdb-east?REGION=us-east-1&AUTH=implicit'",
	"kms describe":          "  cmekctl kms describe file-kms:///var/lib/cmekctl/kms/east",
	"kms rotate":            "  cmekctl kms rotate file-kms:///var/lib/cmekctl/kms/east && cmekctl rotate cmek",
	"kms disable":           "  cmekctl kms disable file-kms:///var/lib/cmekctl/kms/east",
	"kms enable":            "  cmekctl kms enable file-kms:///var/lib/cmekctl/kms/east",
	"kms schedule-deletion": "  cmekctl kms schedule-deletion --pending-days 30 file-kms:///var/lib/cmekctl/kms/old",
	"kms cancel-deletion":   "  cmekctl kms cancel-deletion file-kms:///var/lib/cmekctl/kms/old",
	"kms destroy":           "  cmekctl kms destroy --yes file-kms:///tmp/drill/kms/test",
	"node add":              "  cmekctl node add --region us-east1 --node n4 --keyring /var/lib/cockroach/n4/cmek\n  cmekctl node add --region us-east1 --node n4 --keyring K4 --from K1 --dry-run",
	"node agent":            "  cmekctl node agent --store s3://bucket/cmek?AUTH=implicit --cluster-id c1 --region us-east1 --node n1 --keyring /var/lib/cockroach/n1/cmek",
	"region add":            "  cmekctl region add --region eu-west1 --cmek file-kms:///var/lib/cmekctl/kms/eu --node n5 --keyring /var/lib/cockroach/n5/cmek\n  cmekctl enable --region eu-west1",
	"revoke":                "  cmekctl revoke --dry-run\n  cmekctl revoke --keyring K1 --keyring K2 --kms-action disable --yes",
	"rotate store-key":      "  cmekctl rotate store-key --dry-run\n  cmekctl rotate store-key --keyring K1 --keyring K2 --keyring K3",
	"rotate cmek":           "  cmekctl kms rotate URI && cmekctl rotate cmek\n  cmekctl rotate cmek --cmek 'aws-kms:///alias/crdb-new?REGION=us-east-1&AUTH=implicit'",
	"status":                "  cmekctl status\n  cmekctl status --keyring K1 --no-kms -o json",
	"store unlock":          "  cmekctl store unlock --store s3://bucket/cmek?AUTH=implicit --cluster-id c1 --force TOKEN",
	"verify-destroyed":      "  cmekctl verify-destroyed --keyring K1 --keyring K2 --sample sealed.bin -o json > evidence.json",
	"exit-codes":            "  cmekctl exit-codes",
	"rotate data-key":       "  cmekctl rotate data-key --if-older-than 30d",
	"enable":                "  cmekctl enable --cluster-id c1 --region us-east1 --cmek URI --keyring K1 --node n1 --keyring K2 --node n2\n  cmekctl enable   # every region of the cluster config",
	"unlock":                "  cmekctl unlock --keyring /var/lib/cockroach/n1/cmek --out /run/cockroach/cmek",
	"config view":           "  cmekctl config view",
}

// addExamples gives every verb without an Example the one above.
func addExamples(c *cobra.Command) {
	for _, s := range c.Commands() {
		addExamples(s)
	}
	if c.Example != "" {
		return
	}
	if ex, ok := examples[strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")]; ok {
		c.Example = ex
	}
}

// exitStatusPointer ends every help: one line pointing to the table, which
// cmekctl exit-codes (and docs/exit-codes.md) prints once.
const exitStatusPointer = "\nExit status: 0 ok, 1 error, 2 usage; every code and its meaning: cmekctl exit-codes\n"
