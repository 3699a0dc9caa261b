package commands

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

// cloudKey is one key_info of a region, for reports.
type cloudKey struct {
	URI           string    `json:"uri"`
	Type          string    `json:"type"`
	AuthPrincipal string    `json:"auth_principal,omitempty"`
	Status        string    `json:"status"`
	Current       bool      `json:"current"`
	UserMessage   string    `json:"user_message,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}

// cloudRegion is a region's CMEK status and every key, current and past.
type cloudRegion struct {
	Region string     `json:"region"`
	Status string     `json:"status"`
	Keys   []cloudKey `json:"keys"`
}

func cloudRegions(info *cloud.ClusterInfo) []cloudRegion {
	out := []cloudRegion{}
	if info == nil {
		return out
	}
	for i := range info.RegionInfos {
		r := &info.RegionInfos[i]
		cur := r.Current()
		cr := cloudRegion{Region: r.Region, Status: string(r.Status), Keys: []cloudKey{}}
		for j := range r.KeyInfos {
			k := &r.KeyInfos[j]
			cr.Keys = append(cr.Keys, cloudKey{URI: redact(cloud.URIFromSpec(k.Spec)), Type: string(k.Spec.Type), AuthPrincipal: k.Spec.AuthPrincipal,
				Status: string(k.Status), Current: k == cur, UserMessage: k.UserMessage, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt})
		}
		out = append(out, cr)
	}
	return out
}

func cloudRegionTable(p printer, regions []cloudRegion) table {
	t := table{Title: "Regions", Headers: []string{"region", "region status", "key", "key status", "current", "created", "updated", "message"}}
	for _, r := range regions {
		if len(r.Keys) == 0 {
			t.Rows = append(t.Rows, []string{r.Region, r.Status, "-", "-", "-", "-", "-", ""})
		}
		for _, k := range r.Keys {
			cur := "past"
			if k.Current {
				cur = "current"
			}
			t.Rows = append(t.Rows, []string{r.Region, r.Status, k.URI, k.Status, cur, p.when(k.CreatedAt), p.when(k.UpdatedAt), k.UserMessage})
		}
	}
	return t
}

// cloudRequest is the mutating call a command made, or would make.
type cloudRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   any    `json:"body"`
}

// cloudOpReport is what enable, rotate cmek and revoke with --cloud print.
type cloudOpReport struct {
	Op        string        `json:"op"`
	ClusterID string        `json:"cluster_id"`
	Server    string        `json:"server"`
	DryRun    bool          `json:"dry_run"`
	Request   cloudRequest  `json:"request"`
	Waited    bool          `json:"waited"`
	Status    string        `json:"status"`
	Regions   []cloudRegion `json:"regions"`
	KeyChecks []kmsView     `json:"key_checks"`
	APICalls  APICalls      `json:"api_calls"`
	KMSCalls  KMSCalls      `json:"kms_calls"`
	// Notes say what the report cannot show, e.g. that a same-URI rotation's
	// re-wrap is the API's documented behaviour, not observed.
	Notes []string `json:"notes,omitempty"`
}

func (s *cloudSession) opReport(op string, req cloudRequest) cloudOpReport {
	return cloudOpReport{Op: op, ClusterID: s.id, Server: s.c.Server(), Request: req, Regions: []cloudRegion{}, KeyChecks: []kmsView{}}
}

func cmekPath(id string) string { return "/api/v1/clusters/" + url.PathEscape(id) + "/cmek" }

// finish fills the report from the last status read, prints it and
// returns err: a report is printed even when the operation failed, so the
// regions' user_message is on record.
func (s *cloudSession) finish(p printer, rep cloudOpReport, info *cloud.ClusterInfo, err error) error {
	if info != nil {
		rep.Status = string(info.Status)
		rep.Regions = cloudRegions(info)
	}
	rep.APICalls = s.calls.counts()
	rep.KMSCalls = s.kms.Counts()
	result := "accepted"
	switch {
	case rep.DryRun:
		result = "not sent (--dry-run)"
	case err != nil:
		result = "failed"
	case rep.Waited:
		result = "done: " + rep.Status
	}
	body := ""
	if rep.Request.Body != nil {
		body = fmt.Sprint(rep.Request.Body)
	}
	call := table{Title: "Cloud API", Headers: []string{"cluster", "call", "body", "result", "api calls"}}
	call.Rows = [][]string{{s.id, rep.Request.Method + " " + rep.Request.Path, body, result, apiCallsText(rep.APICalls)}}
	tables := []table{call, cloudRegionTable(p, rep.Regions)}
	if len(rep.KeyChecks) > 0 {
		tables = append(tables, kmsTable(p, rep.KeyChecks))
	}
	if perr := p.print(rep, tables...); perr != nil {
		return perr
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(s.f.IO.ErrOut, "cmekctl: note: %s\n", n)
	}
	return err
}

func apiCallsText(c APICalls) string {
	var parts []string
	for _, m := range []struct {
		name string
		n    int64
	}{{"GET", c.GET}, {"POST", c.POST}, {"PUT", c.PUT}, {"PATCH", c.PATCH}} {
		if m.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m.n, m.name))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// specsBody is the body of POST and PUT, for reports; its String is one
// line per region for the table.
type specsBody struct {
	RegionSpecs []cloud.RegionSpec `json:"region_specs"`
}

func (b specsBody) String() string {
	var parts []string
	for _, s := range b.RegionSpecs {
		parts = append(parts, s.Region+"="+string(s.KeySpec.Type)+":"+s.KeySpec.URI)
	}
	return strings.Join(parts, " ")
}

type actionBody struct {
	Action string `json:"action"`
}

func (b actionBody) String() string { return `{"action":"` + b.Action + `"}` }
