package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ClusterState is the spec's ClusterState.Type.
type ClusterState string

const (
	ClusterCreating       ClusterState = "CREATING"
	ClusterCreated        ClusterState = "CREATED"
	ClusterCreationFailed ClusterState = "CREATION_FAILED"
	ClusterDeleted        ClusterState = "DELETED"
	// ClusterLocked: an exclusive operation is running on the cluster;
	// others should wait (the API answers them 503).
	ClusterLocked ClusterState = "LOCKED"
)

// Cluster is the part of the spec's Cluster that cmekctl reads.
type Cluster struct {
	ID              string          `json:"id"`
	Name            string          `json:"name,omitempty"`
	CloudProvider   string          `json:"cloud_provider,omitempty"` // GCP, AWS, AZURE
	State           ClusterState    `json:"state,omitempty"`
	OperationStatus string          `json:"operation_status,omitempty"`
	Regions         []ClusterRegion `json:"regions,omitempty"`
}

// ClusterRegion is the part of the spec's Region that cmekctl reads.
type ClusterRegion struct {
	Name      string `json:"name"`
	NodeCount int32  `json:"node_count"`
}

// Region returns the named region, or nil.
func (c *Cluster) Region(name string) *ClusterRegion {
	if c == nil {
		return nil
	}
	for i := range c.Regions {
		if c.Regions[i].Name == name {
			return &c.Regions[i]
		}
	}
	return nil
}

func clusterPath(clusterID string) string { return "/api/v1/clusters/" + url.PathEscape(clusterID) }

// GetCluster reads the cluster (GET /api/v1/clusters/{id}), retried as
// every GET.
func (c *Client) GetCluster(ctx context.Context, clusterID string) (*Cluster, error) {
	const op = "get cluster"
	if err := checkCluster(op, clusterID); err != nil {
		return nil, err
	}
	var cl Cluster
	if err := c.do(ctx, call{op: op, method: "GET", path: clusterPath(clusterID), out: &cl, policy: retryRead}); err != nil {
		return nil, err
	}
	return &cl, nil
}

// WaitClusterReady polls GetCluster, 0.5 s doubling to 10 s, until the
// cluster's state is CREATED (so that it takes another operation), for up
// to opts.Timeout (default ClusterReadyTimeout). CREATION_FAILED or DELETED
// end it (ErrFailed); a GET that still fails with 429, 5xx or a network
// error after its retries is polled again; any other GET error ends it.
func (c *Client) WaitClusterReady(ctx context.Context, clusterID string, opts WaitOptions) (*Cluster, error) {
	var last *Cluster
	err := c.poll(ctx, opts.Timeout, ClusterReadyTimeout, "wait for cluster "+clusterID+" to be ready", func() (bool, error) {
		cl, err := c.GetCluster(ctx, clusterID)
		if err != nil {
			return false, err
		}
		last = cl
		switch cl.State {
		case ClusterCreated:
			return true, nil
		case ClusterCreationFailed, ClusterDeleted:
			return true, &FailedError{ClusterID: clusterID, Status: Status(cl.State), UserMessage: "the cluster is " + string(cl.State)}
		}
		return false, nil
	}, func() string {
		if last == nil {
			return ": no state read"
		}
		return ": still " + string(last.State)
	})
	return last, err
}

// retryAfterOf is the Retry-After an error's API answer asked for, or 0.
func retryAfterOf(err error) (d time.Duration) {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// AddRegions adds regions to a dedicated cluster (PATCH
// /api/v1/clusters/{id} with dedicated.region_nodes and
// dedicated.cmek_region_specs: DedicatedClusterUpdateSpecification).
// regionNodes must name every region the cluster keeps, with its node
// count, plus the new ones: a region left out is removed. specs holds the
// CMEK spec of each new region and of no other (the API refuses a spec for
// an existing region, and, while CMEK is enabled, a new region without
// one). Never retried: wait with WaitClusterReady, then Wait.
func (c *Client) AddRegions(ctx context.Context, clusterID string, regionNodes map[string]int32, specs []RegionSpec) (*Cluster, error) {
	const op = "update cluster"
	if err := checkCluster(op, clusterID); err != nil {
		return nil, err
	}
	if len(regionNodes) == 0 {
		return nil, fmt.Errorf("cloud api: %s on cluster %s: no region_nodes", op, clusterID)
	}
	for r, n := range regionNodes {
		if strings.TrimSpace(r) == "" || n <= 0 {
			return nil, fmt.Errorf("cloud api: %s on cluster %s: region %q with %d nodes", op, clusterID, r, n)
		}
	}
	if len(specs) > 0 {
		if err := checkSpecs(specs); err != nil {
			return nil, fmt.Errorf("cloud api: %s on cluster %s: %w", op, clusterID, err)
		}
	}
	body := UpdateClusterBody{Dedicated: &DedicatedUpdate{RegionNodes: regionNodes, CMEKRegionSpecs: specs}}
	var cl Cluster
	if err := c.do(ctx, call{op: op, method: "PATCH", path: clusterPath(clusterID), body: body, out: &cl, policy: retryNone}); err != nil {
		return nil, err
	}
	return &cl, nil
}

// UpdateClusterBody is the spec's UpdateClusterSpecification, the part
// that adds regions.
type UpdateClusterBody struct {
	Dedicated *DedicatedUpdate `json:"dedicated,omitempty"`
}

// DedicatedUpdate is the spec's DedicatedClusterUpdateSpecification.
type DedicatedUpdate struct {
	RegionNodes     map[string]int32 `json:"region_nodes,omitempty"`
	CMEKRegionSpecs []RegionSpec     `json:"cmek_region_specs,omitempty"`
}
