package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func cmekPath(clusterID string) string {
	return "/api/v1/clusters/" + url.PathEscape(clusterID) + "/cmek"
}

func checkCluster(op, clusterID string) error {
	if strings.TrimSpace(clusterID) == "" {
		return fmt.Errorf("cloud api: %s: empty cluster ID", op)
	}
	return nil
}

// GetCMEK returns the cluster's CMEK status (GET .../cmek). 429, 5xx (but
// 501) and network errors are retried (GETAttempts in all).
func (c *Client) GetCMEK(ctx context.Context, clusterID string) (*ClusterInfo, error) {
	const op = "get cmek"
	if err := checkCluster(op, clusterID); err != nil {
		return nil, err
	}
	var info ClusterInfo
	err := c.do(ctx, call{op: op, method: "GET", path: cmekPath(clusterID), out: &info, policy: retryRead})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// EnableCMEK enables CMEK with a spec for every region of the cluster
// (POST .../cmek) and returns at once; call Wait to see it through. 400,
// 401 and 403 are retried for IAMPropagationWindow from the first of them
// (IAM grants propagate slowly); on 503 (the cluster is busy) it waits for
// the cluster to be ready (WaitClusterReady) and tries again; each retry is
// reported through Logf. Since a 400 is retried too, check with GetCMEK
// first that CMEK is not enabled already.
func (c *Client) EnableCMEK(ctx context.Context, clusterID string, specs []RegionSpec) (*ClusterInfo, error) {
	return c.putSpecs(ctx, "enable cmek", "POST", retryEnable, clusterID, specs)
}

// UpdateCMEK rotates the listed regions only (PUT .../cmek): a new URI, or
// the same URI (see docs/cloud.md on what the API is known to do then).
// Never retried.
func (c *Client) UpdateCMEK(ctx context.Context, clusterID string, specs []RegionSpec) (*ClusterInfo, error) {
	return c.putSpecs(ctx, "update cmek", "PUT", retryNone, clusterID, specs)
}

func (c *Client) putSpecs(ctx context.Context, op, method string, p policy, clusterID string, specs []RegionSpec) (*ClusterInfo, error) {
	if err := checkCluster(op, clusterID); err != nil {
		return nil, err
	}
	if err := checkSpecs(specs); err != nil {
		return nil, fmt.Errorf("cloud api: %s on cluster %s: %w", op, clusterID, err)
	}
	body := struct {
		RegionSpecs []RegionSpec `json:"region_specs"`
	}{specs}
	var info ClusterInfo
	err := c.do(ctx, call{op: op, method: method, path: cmekPath(clusterID), body: body, out: &info, policy: p, cluster: clusterID})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

func checkSpecs(specs []RegionSpec) error {
	if len(specs) == 0 {
		return errors.New("no region specs")
	}
	seen := map[string]bool{}
	for _, s := range specs {
		switch {
		case s.Region == "":
			return errors.New("a region spec has no region")
		case seen[s.Region]:
			return fmt.Errorf("region %s given twice", s.Region)
		case s.KeySpec.Type == "" || s.KeySpec.URI == "":
			return fmt.Errorf("region %s: key spec needs a type and a uri", s.Region)
		}
		seen[s.Region] = true
	}
	return nil
}

// RevokeCMEK revokes the cluster's access to its CMEK keys (PATCH .../cmek
// {"action":"REVOKE"}). Undoing it needs the vendor's support. Never
// retried.
func (c *Client) RevokeCMEK(ctx context.Context, clusterID string) (*ClusterInfo, error) {
	const op = "revoke cmek"
	if err := checkCluster(op, clusterID); err != nil {
		return nil, err
	}
	body := struct {
		Action string `json:"action"`
	}{"REVOKE"}
	var info ClusterInfo
	err := c.do(ctx, call{op: op, method: "PATCH", path: cmekPath(clusterID), body: body, out: &info, policy: retryNone})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// WaitOptions tune Wait.
type WaitOptions struct {
	// Timeout bounds the whole wait; default DefaultWaitTimeout (2h).
	Timeout time.Duration
	// Progress, if set, is called with every status read.
	Progress func(*ClusterInfo)
}

// Wait polls GetCMEK, backing off from 0.5 s doubling to 10 s, until every
// region is ENABLED, DISABLED or REVOKED, and returns the last status. A
// *_FAILED status ends it with a *FailedError (ErrFailed) carrying the
// region and its user_message; a GET that still fails with 429, 5xx or a
// network error after its own retries is logged and polled again (after at
// least what its Retry-After asked for); any other GET error ends it. When the timeout passes first, the error is ErrTimeout and
// the last status read is returned with it.
func (c *Client) Wait(ctx context.Context, clusterID string, opts WaitOptions) (*ClusterInfo, error) {
	var last *ClusterInfo
	err := c.poll(ctx, opts.Timeout, DefaultWaitTimeout, "wait for cmek on cluster "+clusterID, func() (bool, error) {
		info, err := c.GetCMEK(ctx, clusterID)
		if err != nil {
			return false, err
		}
		last = info
		if opts.Progress != nil {
			opts.Progress(info)
		}
		if f := info.Failure(clusterID); f != nil {
			return true, f
		}
		return info.Settled(), nil
	}, func() string { return unsettled(last) })
	return last, err
}

// poll calls read, backing off from 0.5 s doubling to 10 s, until it says
// done or fails, for up to timeout (def when timeout <= 0). A read that
// fails with ErrUnavailable (after its own retries) is logged and read
// again, after at least what its Retry-After asked; any other error ends
// the poll. When the time is up the error is ErrTimeout, what the poll was
// for and tail() (what was last seen).
func (c *Client) poll(ctx context.Context, timeout, def time.Duration, what string, read func() (bool, error), tail func() string) error {
	if timeout <= 0 {
		timeout = def
	}
	deadline := c.now().Add(timeout)
	delay := firstDelay
	for {
		done, err := read()
		next := delay
		switch {
		case err == nil && done:
			return nil
		case err == nil:
		case errors.Is(err, ErrUnavailable) && ctx.Err() == nil:
			c.log("%v; polling again", err)
			next = max(next, retryAfterOf(err))
		default:
			return err
		}
		remaining := deadline.Sub(c.now())
		if remaining <= 0 {
			return &kindError{err: fmt.Errorf("cloud api: %s: timed out after %s%s", what, timeout, tail()), kind: ErrTimeout}
		}
		if err := c.sleep(ctx, min(next, remaining)); err != nil {
			return fmt.Errorf("cloud api: %s: %w", what, err)
		}
		delay = min(2*delay, maxDelay)
	}
}

func unsettled(info *ClusterInfo) string {
	if info == nil {
		return ": no status read"
	}
	var parts []string
	for _, r := range info.RegionInfos {
		if !r.Status.Settled() {
			parts = append(parts, r.Region+" "+string(r.Status))
		}
	}
	if len(parts) == 0 {
		return ": cluster " + string(info.Status)
	}
	return ": still " + strings.Join(parts, ", ")
}

// BackupsPageLimit is the page size ListBackups asks for.
const BackupsPageLimit = 100

// ListBackups lists the cluster's managed backups whose as_of_time is in
// [start, end) (a zero time leaves that side open), following every page.
func (c *Client) ListBackups(ctx context.Context, clusterID string, start, end time.Time) ([]Backup, error) {
	const op = "list backups"
	if err := checkCluster(op, clusterID); err != nil {
		return nil, err
	}
	path := "/api/v1/clusters/" + url.PathEscape(clusterID) + "/backups"
	var all []Backup
	seen := map[string]bool{}
	page := ""
	for {
		q := url.Values{"pagination.limit": {strconv.Itoa(BackupsPageLimit)}}
		if page != "" {
			q.Set("pagination.page", page)
		}
		if !start.IsZero() {
			q.Set("start_time", start.UTC().Format(time.RFC3339Nano))
		}
		if !end.IsZero() {
			q.Set("end_time", end.UTC().Format(time.RFC3339Nano))
		}
		var resp struct {
			Backups    []Backup `json:"backups"`
			Pagination *struct {
				NextPage string `json:"next_page"`
			} `json:"pagination"`
		}
		if err := c.do(ctx, call{op: op, method: "GET", path: path, query: q, out: &resp, policy: retryRead}); err != nil {
			return nil, err
		}
		all = append(all, resp.Backups...)
		if resp.Pagination == nil || resp.Pagination.NextPage == "" {
			return all, nil
		}
		page = resp.Pagination.NextPage
		if seen[page] {
			return nil, &kindError{err: fmt.Errorf("cloud api: %s on cluster %s: the API returned page token %q twice", op, clusterID, page), kind: ErrUnavailable}
		}
		seen[page] = true
	}
}
