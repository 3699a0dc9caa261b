package cloudtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Wire types of the cluster endpoint, written from the spec (Cluster,
// Region, ClusterConfig, UpdateClusterSpecification).
type clusterJSON struct {
	ID                     string            `json:"id"`
	Name                   string            `json:"name"`
	CockroachVersion       string            `json:"cockroach_version"`
	UpgradeStatus          string            `json:"upgrade_status"`
	Plan                   string            `json:"plan"`
	CloudProvider          string            `json:"cloud_provider"`
	State                  string            `json:"state"`
	CreatorID              string            `json:"creator_id"`
	OperationStatus        string            `json:"operation_status"`
	Config                 clusterConfig     `json:"config"`
	Regions                []clusterRegion   `json:"regions"`
	CidrRange              string            `json:"cidr_range"`
	Labels                 map[string]string `json:"labels"`
	IsCustomerCloudAccount bool              `json:"is_customer_cloud_account"`
}

type clusterConfig struct {
	Dedicated struct {
		MachineType    string  `json:"machine_type"`
		NumVirtualCPUs int     `json:"num_virtual_cpus"`
		StorageGiB     int     `json:"storage_gib"`
		MemoryGiB      float64 `json:"memory_gib"`
		DiskIOPS       int     `json:"disk_iops"`
	} `json:"dedicated"`
}

type clusterRegion struct {
	Name               string `json:"name"`
	SQLDNS             string `json:"sql_dns"`
	UIDNS              string `json:"ui_dns"`
	NodeCount          int    `json:"node_count"`
	InternalDNS        string `json:"internal_dns"`
	PrivateEndpointDNS string `json:"private_endpoint_dns"`
}

type updateCluster struct {
	Dedicated *struct {
		RegionNodes     map[string]int `json:"region_nodes"`
		CMEKRegionSpecs []regionSpec   `json:"cmek_region_specs"`
	} `json:"dedicated"`
}

// ClusterState returns the primary cluster's state as GET cluster shows it,
// without counting as a GET.
func (s *Server) ClusterState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clusters[s.primary].clusterState()
}

// NodeCount returns a region's node count on the primary cluster (0: no
// such region).
func (s *Server) NodeCount(region string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clusters[s.primary].nodes[region]
}

func (cl *cluster) clusterState() string {
	if cl.locked > 0 || cl.busy() {
		return "LOCKED"
	}
	return "CREATED"
}

func (cl *cluster) json() clusterJSON {
	out := clusterJSON{ID: cl.id, Name: "cloudtest-" + cl.id, CockroachVersion: "v24.3.0", UpgradeStatus: "FINALIZED",
		Plan: "ADVANCED", CloudProvider: cl.provider, State: cl.clusterState(), CreatorID: "cloudtest",
		OperationStatus: "UNSPECIFIED", Regions: []clusterRegion{}, Labels: map[string]string{}}
	switch {
	case cl.busy():
		out.OperationStatus = "CRDB_CMEK_OPERATION_RUNNING"
	case cl.locked > 0:
		out.OperationStatus = "CRDB_EDIT_CLUSTER_RUNNING"
	}
	out.Config.Dedicated.MachineType, out.Config.Dedicated.NumVirtualCPUs = "m6i.xlarge", 4
	out.Config.Dedicated.StorageGiB, out.Config.Dedicated.MemoryGiB = 150, 16
	for _, r := range cl.regions {
		dns := fmt.Sprintf("%s.%s.cloudtest.invalid", cl.id, r)
		out.Regions = append(out.Regions, clusterRegion{Name: r, SQLDNS: dns, UIDNS: "admin-" + dns, NodeCount: cl.nodes[r],
			InternalDNS: "internal-" + dns, PrivateEndpointDNS: ""})
	}
	return out
}

// clusterCall serves GET and PATCH /api/v1/clusters/{id}; it runs with s.mu
// held.
func (s *Server) clusterCall(w http.ResponseWriter, r *http.Request, cl *cluster, body []byte, fail func(int, int, string, ...any)) {
	if r.Method == "GET" {
		if cl.locked > 0 {
			cl.locked--
		}
		s.poll(cl)
		writeJSON(w, http.StatusOK, cl.json())
		return
	}
	var req updateCluster
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(http.StatusBadRequest, codeInvalidArgument, "invalid request body (cloudtest serves dedicated.region_nodes and dedicated.cmek_region_specs): %v", err)
		return
	}
	if req.Dedicated == nil || len(req.Dedicated.RegionNodes) == 0 {
		fail(http.StatusBadRequest, codeInvalidArgument, "dedicated.region_nodes is required")
		return
	}
	if cl.clusterState() != "CREATED" {
		fail(http.StatusServiceUnavailable, codeUnavailable, "cluster %s is %s: another operation is in progress; wait until its state is CREATED", cl.id, cl.clusterState())
		return
	}
	if status, msg := s.addRegions(cl, req.Dedicated.RegionNodes, req.Dedicated.CMEKRegionSpecs); status != 0 {
		code := codeInvalidArgument
		if status == http.StatusServiceUnavailable {
			code = codeUnavailable
		}
		fail(status, code, "%s", msg)
		return
	}
	writeJSON(w, http.StatusOK, cl.json())
}

// addRegions applies region_nodes and cmek_region_specs with the spec's
// rules, or returns a non-zero status and why.
func (s *Server) addRegions(cl *cluster, nodes map[string]int, specs []regionSpec) (int, string) {
	for _, r := range cl.regions {
		if _, ok := nodes[r]; !ok {
			return http.StatusBadRequest, fmt.Sprintf("region_nodes lacks region %s: a region left out is removed, which cloudtest does not serve", r)
		}
	}
	var added []string
	for r, n := range nodes {
		if n <= 0 {
			return http.StatusBadRequest, fmt.Sprintf("region %s: node count %d: must be at least 1", r, n)
		}
		if _, ok := cl.state[r]; !ok {
			added = append(added, r)
		}
	}
	slices.Sort(added)
	cmekOn := false
	for _, st := range cl.state {
		cmekOn = cmekOn || st.status != "DISABLED"
	}
	spec := map[string]*keySpec{}
	for _, sp := range specs {
		switch {
		case cl.state[sp.Region] != nil:
			return http.StatusBadRequest, fmt.Sprintf("cmek_region_specs holds region %s, which the cluster has: a CMEK spec for an existing region makes the request invalid", sp.Region)
		case !slices.Contains(added, sp.Region):
			return http.StatusBadRequest, fmt.Sprintf("cmek_region_specs holds region %s, which region_nodes does not add", sp.Region)
		case spec[sp.Region] != nil:
			return http.StatusBadRequest, fmt.Sprintf("cmek_region_specs holds region %s twice", sp.Region)
		}
		if msg := checkKeySpec(sp.Region, sp.KeySpec); msg != "" {
			return http.StatusBadRequest, msg
		}
		spec[sp.Region] = sp.KeySpec
	}
	if !cmekOn && len(specs) > 0 {
		return http.StatusBadRequest, fmt.Sprintf("CMEK is not enabled for cluster %s: enable it before giving cmek_region_specs", cl.id)
	}
	if cmekOn {
		for _, r := range added {
			if spec[r] == nil {
				return http.StatusBadRequest, fmt.Sprintf("CMEK is enabled for cluster %s: the new region %s needs its key in cmek_region_specs", cl.id, r)
			}
		}
	}
	now := s.now().UTC().Format(time.RFC3339Nano)
	for r, n := range nodes {
		cl.nodes[r] = n
	}
	for _, r := range added {
		cl.regions = append(cl.regions, r)
		st := &regionState{status: "DISABLED"}
		if k := spec[r]; k != nil {
			st.status = "ENABLING"
			st.keys = []keyInfo{{Spec: *k, Status: "ENABLING", CreatedAt: now, UpdatedAt: now}}
		}
		cl.state[r] = st
	}
	cl.pending = s.polls
	cl.locked = max(cl.locked, s.polls)
	return 0, ""
}
