package commands

import (
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

// The Cloud API plane: with --cloud --cluster-id ID the verbs act through
// the CockroachDB Cloud API (pkg/cloud) instead of on node disks. Each
// verb's run function dispatches here at its top; the standalone code
// paths are untouched.

// Environment variables of the Cloud plane.
const (
	envCloudAPIKey = "COCKROACH_API_KEY"
	envCloudServer = "COCKROACH_SERVER"
	// envCloudPollScale is for tests only and deliberately undocumented in
	// --help: a factor in (0, 1] that runs the Cloud client's clock faster
	// (sleeps are multiplied by it, elapsed time divided by it), so that
	// polling, the 10-minute IAM-propagation window, the 2-hour wait for a
	// busy cluster and --timeout keep their meaning while a test script
	// waits milliseconds instead of seconds. Any other value is ignored.
	envCloudPollScale = "CMEKCTL_CLOUD_POLL_SCALE"
)

// CloudOptions select the Cloud API plane and configure it. Every verb
// with --cloud embeds one.
type CloudOptions struct {
	Cloud      bool
	ClusterID  string
	Server     string
	APIKeyFile string
	Wait       bool
	NoWait     bool
	Timeout    time.Duration
	// RegionKeys are --region-key REGION=URI (enable, rotate cmek); for
	// rotate cmek a bare REGION rotates that region to its key's current
	// version.
	RegionKeys []string
	// Principals are --auth-principal REGION=PRINCIPAL.
	Principals []string
	// Since and Until bound backup-keys list --cloud (as_of_time in
	// [Since, Until)); zero leaves a side open.
	Since, Until time.Time
	// Nodes is region add --cloud's --nodes: the new region's node count.
	Nodes int
	// DryRun is region add --cloud's --dry-run.
	DryRun bool
}

// cloudFlagSet says which Cloud flags a verb takes.
type cloudFlagSet int

const (
	// cloudRead: --cloud, --cluster-id, --server, --api-key-file (status,
	// verify-destroyed, backup-keys list).
	cloudRead cloudFlagSet = iota
	// cloudWrite: cloudRead plus --wait, --no-wait, --timeout (revoke).
	cloudWrite
	// cloudSpecs: cloudWrite plus --region-key and --auth-principal
	// (enable, rotate cmek).
	cloudSpecs
	// cloudRefused: only --cloud and --cluster-id, so that the verb can say
	// plainly that the Cloud does not offer it (rotate store-key, data-key).
	cloudRefused
	// cloudRegionAdd: cloudWrite plus --region-key, --nodes and --dry-run
	// (region add; its --region and --auth-principal serve both planes).
	cloudRegionAdd
)

// addCloudFlags adds the Cloud plane's flags to cmd. standalone names the
// flags that belong to the standalone plane: with --cloud they are no
// longer required, and giving one is a usage error; the Cloud-only flags
// without --cloud are a usage error too; only flags given on the command
// line count: values from CMEKCTL_* or the config file for the other plane
// are ignored. help is appended to cmd.Long.
func addCloudFlags(f *Factory, cmd *cobra.Command, o *CloudOptions, set cloudFlagSet, help string, standalone ...string) {
	fl := cmd.Flags()
	fl.BoolVar(&o.Cloud, "cloud", false, "act through the CockroachDB Cloud API (with --cluster-id)")
	if fl.Lookup("cluster-id") == nil {
		fl.StringVar(&o.ClusterID, "cluster-id", "", "cluster ID (with --cloud: the Cloud cluster's ID)")
		markPlane(cmd, planeCloud, "cluster-id") // help only: the config may set it for both planes
	}
	var cloudOnly []string
	if set != cloudRefused {
		fl.StringVar(&o.Server, "server", "", "Cloud API base URL (default $"+envCloudServer+", else "+cloud.DefaultServer+")")
		fl.StringVar(&o.APIKeyFile, "api-key-file", "", "file holding the service account API key (default $"+envCloudAPIKey+")")
		cloudOnly = append(cloudOnly, "server", "api-key-file")
	}
	if set == cloudWrite || set == cloudSpecs || set == cloudRegionAdd {
		fl.BoolVar(&o.Wait, "wait", true, "wait until every region is ENABLED, DISABLED or REVOKED")
		fl.BoolVar(&o.NoWait, "no-wait", false, "return as soon as the API accepted the call")
		fl.DurationVar(&o.Timeout, "timeout", cloud.DefaultWaitTimeout, "how long to wait in all")
		cloudOnly = append(cloudOnly, "wait", "no-wait", "timeout")
	}
	if set == cloudSpecs {
		fl.StringArrayVar(&o.RegionKeys, "region-key", nil, "REGION=URI: the region's CMEK key, aws-kms:///ARN or gcp-kms:///projects/... (repeat)")
		fl.StringArrayVar(&o.Principals, "auth-principal", nil, "REGION=PRINCIPAL: IAM role ARN (AWS) or service account email (GCP) the cluster uses (repeat)")
		cloudOnly = append(cloudOnly, "region-key", "auth-principal")
	}
	if set == cloudRegionAdd {
		fl.StringArrayVar(&o.RegionKeys, "region-key", nil, "REGION=URI: the new region's CMEK key (required while CMEK is enabled on the cluster)")
		fl.IntVar(&o.Nodes, "nodes", 0, "the new region's node count")
		fl.BoolVar(&o.DryRun, "dry-run", false, "check the key and the cluster, print the PATCH, send nothing")
		cloudOnly = append(cloudOnly, "region-key", "nodes", "dry-run")
	}
	markPlane(cmd, planeCloud, cloudOnly...)
	markPlane(cmd, planeStandalone, standalone...)
	if help != "" {
		if cmd.Annotations == nil {
			cmd.Annotations = map[string]string{}
		}
		cmd.Annotations[cloudHelpAnnoKey] = help
		long := cmd.Long
		if long == "" {
			long = cmd.Short + "."
		}
		cmd.Long = strings.TrimRight(long, "\n") + "\n\n" + help
	}
	cmd.PreRunE = func(c *cobra.Command, _ []string) error {
		return checkPlaneFlags(f, c.Flags(), o.Cloud, cloudOnly, standalone)
	}
}

// checkPlaneFlags relaxes the standalone plane's required flags under
// --cloud and refuses flags of the other plane.
func checkPlaneFlags(f *Factory, fl *pflag.FlagSet, onCloud bool, cloudOnly, standalone []string) error {
	given := func(n string) bool {
		if !fl.Changed(n) {
			return false
		}
		src, ok := f.flagSources[n] // set by the config layer before PreRunE
		return !ok || src == srcFlag
	}
	if !onCloud {
		for _, n := range cloudOnly {
			if given(n) {
				return usageError("add --cloud --cluster-id ID to act through the Cloud API", "--%s is a flag of the Cloud plane: it needs --cloud", n)
			}
		}
		return nil
	}
	for _, n := range standalone {
		if fl.Lookup(n) == nil {
			continue
		}
		_ = fl.SetAnnotation(n, cobra.BashCompOneRequiredFlag, []string{"false"})
		if given(n) {
			return usageError("drop --"+n+", or drop --cloud to act on node disks", "--%s is a flag of the standalone plane (node disks); with --cloud the Cloud API holds the keys", n)
		}
	}
	return nil
}

// cloudHelp is the --cloud paragraph of each verb's help.
var cloudHelp = map[string]string{
	"enable": `With --cloud --cluster-id ID: enable CMEK through the CockroachDB Cloud API
(POST .../cmek) with --region-key REGION=URI and --auth-principal
REGION=PRINCIPAL for every region of the cluster, then wait until every
region is ENABLED. Each key is described through its KMS first (it must be
ENABLED), and a cluster whose CMEK is already on is refused (exit 7).
API key: $COCKROACH_API_KEY or --api-key-file; server: $COCKROACH_SERVER or
--server.`,
	"rotate-cmek": `With --cloud --cluster-id ID: PUT .../cmek with only the rotated regions:
--region-key REGION=NEW_URI moves a region to a new key; --region-key REGION
(or no --region-key: every region) keeps the URI, which the vendor documents
as re-wrapping the store key under the key's current version (the API does
not report the version, so a note says so). Then wait until every region is
ENABLED again.`,
	"rotate-refused": `With --cloud: refused (exit 2): the CockroachDB Cloud does not offer this
rotation through its API; it rotates data keys monthly by itself.`,
	"region-add": `With --cloud --cluster-id ID: add region R with N nodes to a Cloud cluster,
with its CMEK key: --region R --nodes N --region-key R=URI [--auth-principal
R=PRINCIPAL] (the principal defaults to the one of the cluster's current
keys). The key is described through its KMS first (it must be ENABLED);
then PATCH /api/v1/clusters/{id} with dedicated.region_nodes (every region,
its node count kept, plus R) and dedicated.cmek_region_specs (R only), then
wait until the cluster is ready and R is ENABLED. A region the cluster has
already, or a --region-key for another region, is refused before any call.
--dry-run prints the PATCH without sending it.`,
	"revoke": `With --cloud --cluster-id ID: PATCH .../cmek {"action":"REVOKE"}, then wait
until every region is REVOKED. Undoing it needs Cockroach Labs support.
Typed confirmation of the cluster ID on a terminal, --yes in scripts;
--dry-run reads the status and prints the call without making it.`,
	"status": `With --cloud --cluster-id ID: the Cloud API's view (GET .../cmek): cluster
and region status, and every key, current and past, with its status,
user_message and times.`,
	"verify": `With --cloud --cluster-id ID: every region's API status must be REVOKED
(otherwise ACCESSIBLE; INCONCLUSIVE when the API does not answer), and each
region's current and past keys are described through their KMS, with the
credentials of the environment (same verdicts and exit codes).`,
}
