package commands

import (
	"context"
	"strconv"
	"time"
)

type cloudStatusReport struct {
	ClusterID string        `json:"cluster_id"`
	Server    string        `json:"server"`
	Status    string        `json:"status"`
	EnabledAt time.Time     `json:"enabled_at,omitzero"`
	Regions   []cloudRegion `json:"regions"`
	APICalls  APICalls      `json:"api_calls"`
}

// cloudStatusRun: status --cloud.
func cloudStatusRun(ctx context.Context, f *Factory, p printer, o *CloudOptions) error {
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	info, err := s.c.GetCMEK(ctx, s.id)
	if err != nil {
		return err
	}
	rep := cloudStatusReport{ClusterID: s.id, Server: s.c.Server(), Status: string(info.Status), EnabledAt: info.EnabledAt(),
		Regions: cloudRegions(info), APICalls: s.calls.counts()}
	head := table{Title: "Cluster", Headers: []string{"cluster", "cmek status", "regions", "enabled at"}}
	head.Rows = [][]string{{s.id, rep.Status, strconv.Itoa(len(rep.Regions)), p.when(rep.EnabledAt)}}
	return p.print(rep, head, cloudRegionTable(p, rep.Regions))
}
