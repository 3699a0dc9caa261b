package commands

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
	"github.com/cmekctl/cmekctl/pkg/verify"
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
	// polling, the 10-minute IAM-propagation and busy windows and --timeout
	// keep their meaning while a test script waits milliseconds instead of
	// seconds. Any other value is ignored.
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
	}
	var cloudOnly []string
	if set != cloudRefused {
		fl.StringVar(&o.Server, "server", "", "Cloud API base URL (default $"+envCloudServer+", else "+cloud.DefaultServer+")")
		fl.StringVar(&o.APIKeyFile, "api-key-file", "", "file holding the service account API key (default $"+envCloudAPIKey+")")
		cloudOnly = append(cloudOnly, "server", "api-key-file")
	}
	if set == cloudWrite || set == cloudSpecs {
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
	if help != "" {
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

// APICalls counts the HTTP requests made to the Cloud API, retries
// included, by method.
type APICalls struct {
	GET   int64 `json:"get"`
	POST  int64 `json:"post"`
	PUT   int64 `json:"put"`
	PATCH int64 `json:"patch"`
	Total int64 `json:"total"`
}

type apiCounter struct {
	base                       http.RoundTripper
	get, post, put, patch, all atomic.Int64
}

func (c *apiCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.Method {
	case http.MethodGet:
		c.get.Add(1)
	case http.MethodPost:
		c.post.Add(1)
	case http.MethodPut:
		c.put.Add(1)
	case http.MethodPatch:
		c.patch.Add(1)
	}
	c.all.Add(1)
	return c.base.RoundTrip(r)
}

func (c *apiCounter) counts() APICalls {
	return APICalls{GET: c.get.Load(), POST: c.post.Load(), PUT: c.put.Load(), PATCH: c.patch.Load(), Total: c.all.Load()}
}

// cloudSession is one command's Cloud API client, its call counts and its
// KMS session (for the keys checked through their providers).
type cloudSession struct {
	f     *Factory
	o     *CloudOptions
	id    string
	c     *cloud.Client
	calls *apiCounter
	kms   *kmsSession
}

// newCloudSession checks the options and builds the client. The API key
// comes from --api-key-file or COCKROACH_API_KEY and is held in a
// cloud.Secret from then on: it never reaches output, errors or argv.
func newCloudSession(f *Factory, o *CloudOptions) (*cloudSession, error) {
	id := strings.TrimSpace(o.ClusterID)
	if id == "" {
		return nil, usageError("find it with the Cloud console or ccloud cluster list", "--cloud needs --cluster-id ID")
	}
	key, err := cloudAPIKey(f, o)
	if err != nil {
		return nil, err
	}
	server := o.Server
	if server == "" {
		server = f.Getenv(envCloudServer)
	}
	counter := &apiCounter{base: http.DefaultTransport}
	now, sleep := cloudClock(f)
	c, err := cloud.New(cloud.Options{
		Server:     server,
		APIKey:     key,
		HTTPClient: &http.Client{Timeout: 60 * time.Second, Transport: counter},
		Now:        now,
		Sleep:      sleep,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(f.IO.ErrOut, "cmekctl: "+format+"\n", args...)
		},
	})
	if err != nil {
		return nil, usageError("set --server or "+envCloudServer+" to https://HOST", "%v", err)
	}
	return &cloudSession{f: f, o: o, id: id, c: c, calls: counter, kms: f.newSession()}, nil
}

func cloudAPIKey(f *Factory, o *CloudOptions) (cloud.Secret, error) {
	if o.APIKeyFile != "" {
		b, err := os.ReadFile(o.APIKeyFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named once, below
			}
			return cloud.Secret{}, usageError("give a file that holds the service account API key", "cloud api: read --api-key-file %s: %v", o.APIKeyFile, err)
		}
		k := strings.TrimSpace(string(b))
		clear(b)
		if k == "" {
			return cloud.Secret{}, usageError("give a file that holds the service account API key", "cloud api: --api-key-file %s is empty", o.APIKeyFile)
		}
		return cloud.NewSecret(k), nil
	}
	if k := strings.TrimSpace(f.Getenv(envCloudAPIKey)); k != "" {
		return cloud.NewSecret(k), nil
	}
	return cloud.Secret{}, usageError("set "+envCloudAPIKey+" to a service account API key, or pass --api-key-file FILE",
		"cloud api: no API key: %s is not set and no --api-key-file was given", envCloudAPIKey)
}

// cloudClock is the Cloud client's clock: the real one, or one that runs
// faster by the test-only factor in CMEKCTL_CLOUD_POLL_SCALE.
func cloudClock(f *Factory) (func() time.Time, func(context.Context, time.Duration) error) {
	scale, err := strconv.ParseFloat(f.Getenv(envCloudPollScale), 64)
	if err != nil || scale <= 0 || scale >= 1 {
		return nil, nil // the client's defaults: real time
	}
	start := time.Now()
	now := func() time.Time { return start.Add(time.Duration(float64(time.Since(start)) / scale)) }
	sleep := func(ctx context.Context, d time.Duration) error {
		t := time.NewTimer(time.Duration(float64(d) * scale))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	return now, sleep
}

func (s *cloudSession) wantWait() bool { return s.o.Wait && !s.o.NoWait }

// wait polls until every region settles, with progress on a terminal.
// settle takes a mutating call's answer and, unless --no-wait, waits for
// every region to settle, returning the last state seen.
func (s *cloudSession) settle(ctx context.Context, rep *cloudOpReport) func(*cloud.ClusterInfo, error) (*cloud.ClusterInfo, error) {
	return func(info *cloud.ClusterInfo, err error) (*cloud.ClusterInfo, error) {
		if err != nil || !s.wantWait() {
			return info, err
		}
		rep.Waited = true
		w, err := s.wait(ctx)
		if w != nil {
			info = w
		}
		return info, err
	}
}

func (s *cloudSession) wait(ctx context.Context) (*cloud.ClusterInfo, error) {
	var progress func(*cloud.ClusterInfo)
	if s.f.IO.IsStderrTTY() {
		start := time.Now()
		progress = func(info *cloud.ClusterInfo) {
			fmt.Fprintf(s.f.IO.ErrOut, "cluster %s: %s (%s)\n", s.id, regionSummary(info), time.Since(start).Truncate(time.Second))
		}
	}
	return s.c.Wait(ctx, s.id, cloud.WaitOptions{Timeout: s.o.Timeout, Progress: progress})
}

func regionSummary(info *cloud.ClusterInfo) string {
	if info == nil {
		return "no status"
	}
	var parts []string
	for _, r := range info.RegionInfos {
		parts = append(parts, r.Region+" "+string(r.Status))
	}
	if len(parts) == 0 {
		return string(info.Status)
	}
	return strings.Join(parts, ", ")
}

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

// regionPairs parses repeated REGION=VALUE flags, in order. bare allows a
// REGION without a value (its value is "").
func regionPairs(flag string, vals []string, bare bool) ([]string, map[string]string, error) {
	var order []string
	m := map[string]string{}
	for _, v := range vals {
		r, val, ok := strings.Cut(v, "=")
		r = strings.TrimSpace(r)
		if r == "" || (!ok && !bare) || (ok && val == "") {
			return nil, nil, usageError("use --"+flag+" REGION=VALUE, once per region", "--%s %q: expected REGION=VALUE", flag, redact(v))
		}
		if _, dup := m[r]; dup {
			return nil, nil, usageError("give each region once", "--%s: region %s is given twice", flag, r)
		}
		order = append(order, r)
		m[r] = val
	}
	return order, m, nil
}

// resolveSpec turns a region's URI into the API's key spec, resolving a
// vault-keymgmt:// URI to its AWS or GCP key first, and returns the URI to
// check the key through its provider.
func resolveSpec(ctx context.Context, region, uri, principal string) (cloud.KeySpec, string, error) {
	u, err := url.Parse(uri)
	if err == nil && u.Scheme == vaulttransit.KeyMgmtScheme {
		resolved, rerr := vaulttransit.ResolveKeyMgmt(ctx, u, nil)
		if rerr != nil {
			return cloud.KeySpec{}, "", fmt.Errorf("region %s: resolve %s: %w", region, redact(uri), rerr)
		}
		uri = resolved
		u, err = url.Parse(uri)
	}
	spec, serr := cloud.SpecFromURI(uri, principal)
	if serr != nil {
		hint := "give --region-key REGION=aws-kms:///arn:aws:kms:R:ACCOUNT:key/ID or gcp-kms:///projects/P/locations/L/keyRings/K/cryptoKeys/C"
		if strings.Contains(serr.Error(), "auth principal") {
			hint = "give --auth-principal " + region + "=arn:aws:iam::ACCOUNT:role/NAME (AWS) or a service account email (GCP)"
		}
		return cloud.KeySpec{}, "", usageError(hint, "region %s: %v", region, serr)
	}
	check := uri
	if err != nil || u.RawQuery == "" {
		check = providerURI(spec)
	}
	return spec, check, nil
}

// providerURI is the URI to describe a key the API names through its
// provider: cloud.URIFromSpec (REGION= from an AWS ARN), with AUTH=implicit
// for AWS so that credentials come from the environment's chain.
func providerURI(spec cloud.KeySpec) string {
	u := cloud.URIFromSpec(spec)
	if spec.Type == cloud.KeyTypeAWSKMS {
		if strings.Contains(u, "?") {
			return u + "&AUTH=implicit"
		}
		return u + "?AUTH=implicit"
	}
	return u
}

// checkKeys describes each key through its provider before any Cloud call:
// each must be ENABLED, so that a typo or a disabled key fails here, not
// after minutes of polling.
func (s *cloudSession) checkKeys(ctx context.Context, uris map[string]string, order []string) ([]kmsView, error) {
	views := []kmsView{}
	done := map[string]bool{}
	for _, region := range order {
		uri := uris[region]
		if done[uri] {
			continue
		}
		done[uri] = true
		v := describeView(ctx, s.kms, uri)
		views = append(views, v)
		if v.State == nil {
			k, err := s.kms.Open(uri)
			if err == nil {
				_, err = k.Describe(ctx)
			}
			return views, &ExitError{Err: fmt.Errorf("region %s: check key %s before the Cloud API call: %w (nothing was sent to the Cloud API)", region, redact(uri), err),
				Hint: "check the key URI, and that this identity may describe the key: cmekctl kms describe URI"}
		}
		if v.State.State != provider.StateEnabled {
			code, what, hint := ExitKeyRevoked, "is "+string(v.State.State)+" in its KMS", "name an enabled key, or enable this one (cmekctl kms enable URI)"
			switch v.State.State {
			case provider.StateNotFound:
				code, what, hint = ExitKeyDestroyed, "does not exist in its KMS (or this identity cannot see it)", "check the key ARN or name for a typo"
			case provider.StateDestroyed:
				code, hint = ExitKeyDestroyed, "name another key: this one's material is gone"
			}
			return views, &ExitError{Code: code, Hint: hint,
				Err: fmt.Errorf("region %s: key %s %s (nothing was sent to the Cloud API)", region, redact(uri), what)}
		}
	}
	return views, nil
}

// cloudEnableRun: enable --cloud.
func cloudEnableRun(ctx context.Context, f *Factory, p printer, o *CloudOptions) error {
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	order, uris, err := regionPairs("region-key", o.RegionKeys, false)
	if err != nil {
		return err
	}
	if len(order) == 0 {
		return usageError("give --region-key REGION=URI for every region of the cluster", "enable --cloud needs a key for every region")
	}
	_, principals, err := regionPairs("auth-principal", o.Principals, false)
	if err != nil {
		return err
	}
	for r := range principals {
		if _, ok := uris[r]; !ok {
			return usageError("give --region-key "+r+"=URI too, or drop the principal", "--auth-principal for region %s, which has no --region-key", r)
		}
	}
	specs := make([]cloud.RegionSpec, 0, len(order))
	check := map[string]string{}
	for _, r := range order {
		spec, c, err := resolveSpec(ctx, r, uris[r], principals[r])
		if err != nil {
			return err
		}
		specs = append(specs, cloud.RegionSpec{Region: r, KeySpec: spec})
		check[r] = c
	}
	rep := s.opReport("enable", cloudRequest{Method: "POST", Path: cmekPath(s.id), Body: specsBody{specs}})
	if rep.KeyChecks, err = s.checkKeys(ctx, check, order); err != nil {
		return s.finish(p, rep, nil, err)
	}
	// A second POST is answered 400, which enable retries for 10 minutes
	// (IAM propagation): refuse here instead. The regions are checked here
	// for the same reason.
	cur, err := s.c.GetCMEK(ctx, s.id)
	if err != nil {
		return s.finish(p, rep, nil, err)
	}
	var on []string
	for _, r := range cur.RegionInfos {
		if r.Status != cloud.StatusDisabled {
			on = append(on, r.Region+" "+string(r.Status))
		}
	}
	if len(on) > 0 {
		return s.finish(p, rep, cur, &ExitError{Code: ExitAlreadyEnabled,
			Err:  fmt.Errorf("cloud api: cmek is already enabled on cluster %s (%s); nothing was sent", s.id, strings.Join(on, ", ")),
			Hint: "change keys with cmekctl rotate cmek --cloud; see cmekctl status --cloud --cluster-id " + s.id})
	}
	if len(cur.RegionInfos) > 0 {
		var missing, unknown []string
		for _, r := range cur.RegionInfos {
			if _, ok := uris[r.Region]; !ok {
				missing = append(missing, r.Region)
			}
		}
		for _, r := range order {
			if cur.Region(r) == nil {
				unknown = append(unknown, r)
			}
		}
		if len(missing) > 0 || len(unknown) > 0 {
			var why []string
			if len(missing) > 0 {
				why = append(why, "no --region-key for "+strings.Join(missing, ", "))
			}
			if len(unknown) > 0 {
				why = append(why, "not a region of the cluster: "+strings.Join(unknown, ", "))
			}
			return s.finish(p, rep, cur, usageError("give one --region-key per region of the cluster: "+strings.Join(regionNames(cur), ", "),
				"enable --cloud on cluster %s: %s; nothing was sent", s.id, strings.Join(why, "; ")))
		}
	}
	info, err := s.settle(ctx, &rep)(s.c.EnableCMEK(ctx, s.id, specs))
	return s.finish(p, rep, info, err)
}

func regionNames(info *cloud.ClusterInfo) []string {
	var out []string
	for _, r := range info.RegionInfos {
		out = append(out, r.Region)
	}
	return out
}

// cloudRotateRun: rotate cmek|store-key|data-key --cloud.
func cloudRotateRun(ctx context.Context, f *Factory, p printer, op string, o *CloudOptions) error {
	switch op {
	case keyring.OpRotateStoreKey:
		return usageError("rotate the CMEK key instead: cmekctl rotate cmek --cloud --cluster-id ID",
			"rotate store-key --cloud: the CockroachDB Cloud does not offer store-key rotation through its API")
	case keyring.OpRotateDataKey:
		return usageError("nothing to do: the Cloud rotates data keys itself",
			"rotate data-key --cloud: the CockroachDB Cloud does not offer data-key rotation: it rotates data keys monthly by itself")
	}
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	order, uris, err := regionPairs("region-key", o.RegionKeys, true)
	if err != nil {
		return err
	}
	_, principals, err := regionPairs("auth-principal", o.Principals, false)
	if err != nil {
		return err
	}
	for r := range principals {
		if uris[r] == "" {
			return usageError("give --region-key "+r+"=NEW_URI with it, or drop the principal (the current key keeps its principal)",
				"--auth-principal for region %s, which has no new key URI", r)
		}
	}
	rep := s.opReport("rotate-cmek", cloudRequest{Method: "PUT", Path: cmekPath(s.id)})
	cur, err := s.c.GetCMEK(ctx, s.id)
	if err != nil {
		return s.finish(p, rep, nil, err)
	}
	if len(order) == 0 { // every region, each to its key's current version
		order = regionNames(cur)
	}
	specs := make([]cloud.RegionSpec, 0, len(order))
	check := map[string]string{}
	for _, r := range order {
		ri := cur.Region(r)
		if ri == nil {
			return s.finish(p, rep, cur, usageError("the cluster's regions: "+strings.Join(regionNames(cur), ", "), "rotate cmek --cloud: %s is not a region of cluster %s; nothing was sent", r, s.id))
		}
		k := ri.Current()
		if k == nil || ri.Status == cloud.StatusDisabled {
			return s.finish(p, rep, cur, usageError("enable it first: cmekctl enable --cloud", "rotate cmek --cloud: cmek is not enabled in region %s of cluster %s (%s); nothing was sent", r, s.id, ri.Status))
		}
		if uris[r] == "" { // same URI: the key's new version
			specs = append(specs, cloud.RegionSpec{Region: r, KeySpec: cloud.KeySpec{Type: k.Spec.Type, URI: k.Spec.URI, AuthPrincipal: k.Spec.AuthPrincipal}})
			check[r] = providerURI(k.Spec)
			continue
		}
		principal := principals[r]
		if principal == "" {
			principal = k.Spec.AuthPrincipal
		}
		spec, c, err := resolveSpec(ctx, r, uris[r], principal)
		if err != nil {
			return s.finish(p, rep, cur, err)
		}
		specs = append(specs, cloud.RegionSpec{Region: r, KeySpec: spec})
		check[r] = c
	}
	rep.Request.Body = specsBody{specs}
	if rep.KeyChecks, err = s.checkKeys(ctx, check, order); err != nil {
		return s.finish(p, rep, cur, err)
	}
	info, err := s.settle(ctx, &rep)(s.c.UpdateCMEK(ctx, s.id, specs))
	if info == nil {
		info = cur
	}
	return s.finish(p, rep, info, err)
}

// cloudRevokeRun: revoke --cloud. Destructive: typed confirmation of the
// cluster ID on a terminal, --yes in scripts; --dry-run reads the status
// and prints the call without making it.
func cloudRevokeRun(ctx context.Context, f *Factory, p printer, o *CloudOptions, dryRun, yes bool) error {
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	rep := s.opReport("revoke", cloudRequest{Method: "PATCH", Path: cmekPath(s.id), Body: actionBody{"REVOKE"}})
	if dryRun {
		rep.DryRun = true
		cur, err := s.c.GetCMEK(ctx, s.id)
		return s.finish(p, rep, cur, err)
	}
	if err := confirm(f, fmt.Sprintf("revoke the CMEK access of Cloud cluster %q: its nodes stop being able to read their data, and undoing it needs Cockroach Labs support", s.id), s.id, yes); err != nil {
		return err
	}
	info, err := s.settle(ctx, &rep)(s.c.RevokeCMEK(ctx, s.id))
	return s.finish(p, rep, info, err)
}

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

type cloudVerifyReport struct {
	ClusterID string `json:"cluster_id"`
	Server    string `json:"server"`
	verify.Report
	APICalls APICalls `json:"api_calls"`
	KMSCalls KMSCalls `json:"kms_calls"`
}

// cloudVerifyRun: verify-destroyed --cloud. Every region's API status must
// be REVOKED (else its check is ACCESSIBLE; INCONCLUSIVE when the API does
// not answer), and each region's current and past keys are described
// through their providers, judged as standalone judges them.
func cloudVerifyRun(ctx context.Context, f *Factory, p printer, o *CloudOptions, accept string) error {
	if accept != "" && accept != "revoked" {
		return usageError("use --accept revoked", "unknown --accept %q", accept)
	}
	s, err := newCloudSession(f, o)
	if err != nil {
		return err
	}
	now := func() time.Time { return f.Now() }
	rep := verify.Report{StartedAt: f.Now().UTC()}
	add := func(c verify.Check) { rep.Checks = append(rep.Checks, c) }
	info, err := s.c.GetCMEK(ctx, s.id)
	switch {
	case err == nil:
	case errors.Is(err, cloud.ErrUnavailable):
		add(verify.Check{Target: "cluster " + s.id, Check: "cloud api cmek status", Result: "the API did not answer (not proof): " + oneLine(err.Error()),
			Outcome: verify.OutInconclusive, Class: string(provider.Transient), At: f.Now().UTC()})
	default:
		return err // auth, not found, rejected: not evidence of anything
	}
	if info != nil {
		if len(info.RegionInfos) == 0 {
			add(verify.Check{Target: "cluster " + s.id, Check: "cloud api cmek status", Result: "the API lists no region (cluster status " + string(info.Status) + ")",
				Outcome: verify.OutInconclusive, At: f.Now().UTC()})
		}
		for _, r := range info.RegionInfos {
			c := verify.Check{Target: "region " + r.Region, Check: "cloud api cmek status", Result: "API says " + string(r.Status), At: f.Now().UTC()}
			if r.Status == cloud.StatusRevoked {
				c.Outcome = verify.OutPass
			} else {
				c.Outcome = verify.OutAccessible
				c.Result += ": the cluster's access to its keys is not revoked"
			}
			add(c)
		}
		seen := map[string]bool{}
		for _, r := range info.RegionInfos {
			for _, k := range r.KeyInfos {
				uri := providerURI(k.Spec)
				if seen[uri] {
					continue
				}
				seen[uri] = true
				target := fmt.Sprintf("region %s key %s (API: %s)", r.Region, redact(cloud.URIFromSpec(k.Spec)), k.Status)
				if k.Spec.Type != cloud.KeyTypeAWSKMS && k.Spec.Type != cloud.KeyTypeGCPCloudKMS {
					add(verify.Check{Target: target, Check: "describe CMEK key", Outcome: verify.OutInconclusive, At: f.Now().UTC(),
						Result: "cmekctl has no provider for key type " + string(k.Spec.Type) + ": check it with its KMS's tools"})
					continue
				}
				key, err := s.kms.Open(uri)
				if err != nil {
					add(verify.ErrorCheck(target, "describe CMEK key", err, f.Now().UTC()))
					continue
				}
				add(verify.DescribeCheck(ctx, key, target, now))
			}
		}
	}
	rep.FinishedAt = f.Now().UTC()
	rep.Verdict, rep.Reason = verify.Decide(rep.Checks)
	out := cloudVerifyReport{ClusterID: s.id, Server: s.c.Server(), Report: rep, APICalls: s.calls.counts(), KMSCalls: s.kms.Counts()}
	if err := p.print(out, verifyTables(p, rep)...); err != nil {
		return err
	}
	if p.format == OutputTable {
		fmt.Fprintf(f.IO.ErrOut, "verdict: %s (%s)\n", rep.Verdict, rep.Reason)
	}
	return verdictExit(rep.Verdict, accept)
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
(or no --region-key: every region) moves it to its key's current version.
Then wait until every region is ENABLED again.`,
	"rotate-refused": `With --cloud: refused (exit 2): the CockroachDB Cloud does not offer this
rotation through its API; it rotates data keys monthly by itself.`,
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
