package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/provider"
)

// backup-keys list --cloud: the cluster's managed backups, each classified
// as restorable or not. The backup-keys command itself lives elsewhere; it
// hooks the Cloud plane in with two calls:
//
//	addCloudBackupFlags(f, listCmd, &opts.Cloud, "keyring")  // its standalone-only flags
//	...
//	if opts.Cloud.Cloud { // at the top of its run function
//		return cloudBackupsRun(ctx, f, p, opts.Cloud.ClusterID, &opts.Cloud)
//	}

// addCloudBackupFlags adds --cloud, --cluster-id, --server, --api-key-file,
// --since and --until to backup-keys list. standalone names its flags of
// the standalone plane (no longer required with --cloud, refused with it).
func addCloudBackupFlags(f *Factory, cmd *cobra.Command, o *CloudOptions, standalone ...string) {
	addCloudFlags(f, cmd, o, cloudRead, `With --cloud --cluster-id ID: the cluster's managed backups (GET
.../backups, every page), each classified: taken before CMEK was enabled,
not restorable; after, restorable only while a region's CMEK key that was
current then is enabled in its KMS (described through its provider) and the
region is not revoked.`, standalone...)
	cmd.Flags().Var(timeFlag{&o.Since}, "since", "only backups as of this time or later (RFC 3339)")
	cmd.Flags().Var(timeFlag{&o.Until}, "until", "only backups as of before this time (RFC 3339)")
	markPlane(cmd, planeCloud, "since", "until")
	check := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if err := checkPlaneFlags(f, c.Flags(), o.Cloud, []string{"since", "until"}, nil); err != nil {
			return err
		}
		return check(c, args)
	}
}

// timeFlag is an RFC 3339 time flag; empty is the zero time.
type timeFlag struct{ t *time.Time }

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.UTC().Format(time.RFC3339)
}

func (f timeFlag) Set(s string) error {
	if s == "" {
		*f.t = time.Time{}
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("expected an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	*f.t = t
	return nil
}

func (f timeFlag) Type() string { return "time" }

// cloudBackup is one managed backup and whether it can be restored.
type cloudBackup struct {
	ID         string    `json:"id"`
	AsOfTime   time.Time `json:"as_of_time"`
	Restorable bool      `json:"restorable"`
	Reason     string    `json:"reason"`
	// Keys are the CMEK keys that were current in each region at as_of_time.
	Keys []cloudBackupKey `json:"keys"`
}

type cloudBackupKey struct {
	Region       string `json:"region"`
	RegionStatus string `json:"region_status"`
	URI          string `json:"uri"`
	KMSState     string `json:"kms_state"`
	KMSError     string `json:"kms_error,omitempty"`
}

type cloudBackupsReport struct {
	ClusterID     string        `json:"cluster_id"`
	Server        string        `json:"server"`
	CMEKEnabledAt time.Time     `json:"cmek_enabled_at,omitzero"`
	Backups       []cloudBackup `json:"backups"`
	Restorable    int           `json:"restorable"`
	NotRestorable int           `json:"not_restorable"`
	APICalls      APICalls      `json:"api_calls"`
	KMSCalls      KMSCalls      `json:"kms_calls"`
}

// cloudBackupsRun lists the cluster's managed backups (every page, as of
// [o.Since, o.Until)) and classifies each: with CMEK off, restorable as
// ever; taken before CMEK was enabled (the earliest created_at of the
// cluster's keys), not restorable; after, restorable while at least one
// region whose key was current at the backup's as_of_time is not revoked
// and that key is ENABLED in its KMS (one Describe per distinct key). An
// empty list is not an error, nor is a backup that cannot be restored.
func cloudBackupsRun(ctx context.Context, f *Factory, p printer, clusterID string, o *CloudOptions) error {
	oc := *o
	oc.ClusterID = clusterID
	s, err := newCloudSession(f, &oc)
	if err != nil {
		return err
	}
	info, err := s.c.GetCMEK(ctx, s.id)
	if err != nil {
		return err
	}
	backups, err := s.c.ListBackups(ctx, s.id, o.Since, o.Until)
	if err != nil {
		return err
	}
	rep := cloudBackupsReport{ClusterID: s.id, Server: s.c.Server(), CMEKEnabledAt: info.EnabledAt(), Backups: []cloudBackup{}}
	described := map[string]kmsView{}
	describe := func(uri string) kmsView {
		if v, ok := described[uri]; ok {
			return v
		}
		v := describeView(ctx, s.kms, uri)
		described[uri] = v
		return v
	}
	for _, b := range backups {
		cb := cloudBackup{ID: b.ID, AsOfTime: b.AsOfTime, Keys: []cloudBackupKey{}}
		switch {
		case rep.CMEKEnabledAt.IsZero():
			cb.Restorable, cb.Reason = true, "not protected by CMEK: CMEK is not enabled on the cluster"
		case b.AsOfTime.Before(rep.CMEKEnabledAt):
			cb.Reason = "taken before CMEK was enabled (" + rep.CMEKEnabledAt.UTC().Format(time.RFC3339) + "): backups without CMEK cannot be restored once it is on"
		default:
			cb.Restorable, cb.Reason, cb.Keys = classifyBackup(info, b.AsOfTime, describe)
		}
		if cb.Restorable {
			rep.Restorable++
		} else {
			rep.NotRestorable++
		}
		rep.Backups = append(rep.Backups, cb)
	}
	rep.APICalls, rep.KMSCalls = s.calls.counts(), s.kms.Counts()
	t := table{Title: "Backups", Headers: []string{"backup", "as of", "restorable", "reason"}}
	for _, b := range rep.Backups {
		t.Rows = append(t.Rows, []string{b.ID, p.when(b.AsOfTime), yesNo(b.Restorable), b.Reason})
	}
	return p.print(rep, t)
}

// classifyBackup judges a backup taken with CMEK on: the key current in
// each region at asOf, and whether any of them can still unwrap it.
func classifyBackup(info *cloud.ClusterInfo, asOf time.Time, describe func(string) kmsView) (bool, string, []cloudBackupKey) {
	keys := []cloudBackupKey{}
	var ok, why []string
	for i := range info.RegionInfos {
		r := &info.RegionInfos[i]
		var cur *cloud.KeyInfo
		for j := range r.KeyInfos {
			k := &r.KeyInfos[j]
			if !k.CreatedAt.After(asOf) && (cur == nil || !k.CreatedAt.Before(cur.CreatedAt)) {
				cur = k
			}
		}
		if cur == nil {
			why = append(why, r.Region+": no CMEK key yet at that time")
			continue
		}
		uri := providerURI(cur.Spec)
		v := describe(uri)
		bk := cloudBackupKey{Region: r.Region, RegionStatus: string(r.Status), URI: redact(cloud.URIFromSpec(cur.Spec))}
		if v.State != nil {
			bk.KMSState = string(v.State.State)
		} else {
			bk.KMSState, bk.KMSError = "ERROR ("+string(v.Class)+")", v.KMSError
		}
		keys = append(keys, bk)
		switch {
		case r.Status == cloud.StatusRevoked || r.Status == cloud.StatusRevoking:
			why = append(why, r.Region+": CMEK access "+strings.ToLower(string(r.Status)))
		case v.State == nil:
			why = append(why, r.Region+": key "+bk.URI+" could not be described ("+string(v.Class)+")")
		case v.State.State != provider.StateEnabled:
			why = append(why, r.Region+": key "+bk.URI+" is "+string(v.State.State))
		default:
			ok = append(ok, r.Region)
		}
	}
	if len(ok) > 0 {
		return true, "the CMEK key of " + strings.Join(ok, ", ") + " is enabled", keys
	}
	if len(why) == 0 {
		why = append(why, "no region had a CMEK key at that time")
	}
	return false, strings.Join(why, "; "), keys
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
