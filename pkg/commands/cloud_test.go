package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/cloud"
	"github.com/cmekctl/cmekctl/pkg/cloud/cloudtest"
	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

// stubKMS stands in for AWS KMS behind the registry's aws-kms scheme: the
// Cloud plane only describes keys, so a key is its ID and a state the test
// sets. It is no KMS fake: Wrap and Unwrap fail.
type stubKMS struct {
	mu     sync.Mutex
	states map[string]provider.State // key ARN → state; absent: NOT_FOUND
	opened []string                  // URIs opened, in order
}

type stubKey struct {
	kms *stubKMS
	id  string
	uri string
}

var _ provider.Key = (*stubKey)(nil)

func (k *stubKey) URI() string { return k.uri }
func (k *stubKey) Wrap(context.Context, []byte, []byte) (provider.Wrapped, error) {
	return provider.Wrapped{}, errors.New("stub kms: no wrap")
}
func (k *stubKey) Unwrap(context.Context, provider.Wrapped, []byte) ([]byte, error) {
	return nil, errors.New("stub kms: no unwrap")
}
func (k *stubKey) Describe(context.Context) (provider.KeyState, error) {
	k.kms.mu.Lock()
	defer k.kms.mu.Unlock()
	st, ok := k.kms.states[k.id]
	if !ok {
		st = provider.StateNotFound
	}
	return provider.KeyState{URI: k.uri, Provider: "stub", State: st}, nil
}

func (s *stubKMS) set(arn string, st provider.State) {
	s.mu.Lock()
	s.states[arn] = st
	s.mu.Unlock()
}

func (s *stubKMS) registry() provider.Registry {
	return provider.Registry{"aws-kms": func(u *url.URL) (provider.Key, error) {
		s.mu.Lock()
		s.opened = append(s.opened, u.String())
		s.mu.Unlock()
		return &stubKey{kms: s, id: strings.TrimPrefix(u.Path, "/"), uri: u.String()}, nil
	}}
}

const (
	arn1 = "arn:aws:kms:us-east-1:111122223333:key/11111111-1111-1111-1111-111111111111"
	arn2 = "arn:aws:kms:us-east-1:111122223333:key/22222222-2222-2222-2222-222222222222"
	role = "arn:aws:iam::111122223333:role/cmek"
)

type cloudEnv struct {
	srv      *cloudtest.Server
	kms      *stubKMS
	f        *Factory
	in       *bytes.Buffer
	out, err *bytes.Buffer
	env      map[string]string
}

func newCloudEnv(t *testing.T, regions ...string) *cloudEnv {
	t.Helper()
	srv := cloudtest.New(t, cloudtest.Cluster{ID: "c1", Regions: regions})
	io, in, out, errOut := iostreams.Test()
	e := &cloudEnv{srv: srv, kms: &stubKMS{states: map[string]provider.State{arn1: provider.StateEnabled, arn2: provider.StateEnabled}}, in: in, out: out, err: errOut,
		env: map[string]string{envCloudServer: srv.URL(), envCloudAPIKey: srv.APIKey(), envCloudPollScale: "0.001"}}
	e.f = &Factory{IO: io, Registry: e.kms.registry, Now: time.Now, Getenv: func(k string) string { return e.env[k] }}
	return e
}

func (e *cloudEnv) json() printer { return printer{io: e.f.IO, format: OutputJSON} }

func (e *cloudEnv) cloudOpts() CloudOptions {
	return CloudOptions{Cloud: true, ClusterID: "c1", Wait: true, Timeout: time.Hour}
}

// decode reads the JSON the last command printed and resets the buffers.
func (e *cloudEnv) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(e.out.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", e.out.String(), err)
	}
}

func (e *cloudEnv) reset() { e.out.Reset(); e.err.Reset() }

func (e *cloudEnv) noKey(t *testing.T) {
	t.Helper()
	if k := e.srv.APIKey(); strings.Contains(e.out.String(), k) || strings.Contains(e.err.String(), k) {
		t.Fatalf("the API key was printed:\nstdout: %s\nstderr: %s", e.out, e.err)
	}
}

func (e *cloudEnv) enable(t *testing.T) {
	t.Helper()
	o := &EnableOptions{ClusterID: "c1", Cloud: e.cloudOpts()}
	for _, r := range []string{"us-east-1", "eu-west-2"} {
		if e.srv.RegionStatus(r) == "" {
			continue
		}
		o.Cloud.RegionKeys = append(o.Cloud.RegionKeys, r+"=aws-kms:///"+arn1)
		o.Cloud.Principals = append(o.Cloud.Principals, r+"="+role)
	}
	if err := enableRun(context.Background(), e.f, e.json(), o); err != nil {
		t.Fatalf("enable: %v\n%s", err, e.err)
	}
}

// The whole life of CMEK on a cluster, through the run functions: enable,
// rotate, revoke, verify-destroyed, with the calls counted on both sides.
func TestCloudLifecycle(t *testing.T) {
	e := newCloudEnv(t, "us-east-1", "eu-west-2")
	e.srv.IAMDenied(1)
	e.enable(t)
	var rep cloudOpReport
	e.decode(t, &rep)
	if rep.Status != "ENABLED" || !rep.Waited || len(rep.Regions) != 2 {
		t.Fatalf("enable report: %+v", rep)
	}
	if got, want := rep.APICalls.POST, int64(e.srv.Count("POST", 0)); got != want || got != 2 {
		t.Fatalf("enable counted %d POST, the server saw %d, want 2 (one 403, one accepted)", got, want)
	}
	if rep.APICalls.Total != int64(e.srv.Count("", 0)) {
		t.Fatalf("enable counted %d calls, the server saw %d", rep.APICalls.Total, e.srv.Count("", 0))
	}
	if rep.KMSCalls.Describe != 1 { // one key for both regions: described once
		t.Fatalf("kms calls %+v, want one describe", rep.KMSCalls)
	}
	if !strings.Contains(e.err.String(), "IAM grants can take minutes to propagate") {
		t.Fatalf("no IAM-propagation message on stderr: %s", e.err)
	}
	e.noKey(t)
	e.reset()

	// Rotate one region to a new key: only it is in the PUT.
	ro := &RotateOptions{Op: "rotate cmek", Cloud: e.cloudOpts()}
	ro.Cloud.RegionKeys = []string{"eu-west-2=aws-kms:///" + arn2}
	if err := rotateRun(context.Background(), e.f, e.json(), ro); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	reqs := e.srv.Requests()
	var put cloudtest.Request
	for _, r := range reqs {
		if r.Method == "PUT" {
			put = r
		}
	}
	if !strings.Contains(put.Body, arn2) || strings.Contains(put.Body, `"region":"us-east-1"`) {
		t.Fatalf("PUT body %s: want eu-west-2 only, with the new key", put.Body)
	}
	if got := e.srv.KeyStatuses("eu-west-2"); strings.Join(got, ",") != "DISABLED,ENABLED" {
		t.Fatalf("eu-west-2 keys after rotation: %v", got)
	}
	e.noKey(t)
	e.reset()

	// verify-destroyed before the revocation: ACCESSIBLE.
	vo := &VerifyOptions{Cloud: e.cloudOpts()}
	err := verifyRun(context.Background(), e.f, e.json(), vo)
	if ExitCode(err) != ExitAccessible {
		t.Fatalf("verify before revoke: exit %d (%v), want %d", ExitCode(err), err, ExitAccessible)
	}
	e.reset()

	// Revoke, then verify: REVOKED while the keys are enabled in the KMS ...
	if err := revokeRun(context.Background(), e.f, e.json(), &RevokeOptions{Yes: true, Cloud: e.cloudOpts()}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for _, r := range []string{"us-east-1", "eu-west-2"} {
		if st := e.srv.RegionStatus(r); st != "REVOKED" {
			t.Fatalf("region %s is %s after revoke", r, st)
		}
	}
	e.reset()
	err = verifyRun(context.Background(), e.f, e.json(), vo)
	if ExitCode(err) != ExitVerdictRevoked {
		t.Fatalf("verify after revoke: exit %d (%v), want %d", ExitCode(err), err, ExitVerdictRevoked)
	}
	var vr cloudVerifyReport
	e.decode(t, &vr)
	// 2 region checks + 3 keys (arn1 shared by both regions, arn2 in eu-west-2).
	if len(vr.Checks) != 4 || vr.KMSCalls.Describe != 2 || vr.APICalls.GET != 1 {
		t.Fatalf("verify report: %d checks, %+v, %+v", len(vr.Checks), vr.KMSCalls, vr.APICalls)
	}
	for _, u := range e.kms.opened {
		if !strings.Contains(u, "REGION=us-east-1") || !strings.Contains(u, "AUTH=implicit") {
			t.Fatalf("key opened as %s: want REGION from the ARN and AUTH=implicit", u)
		}
	}
	e.reset()
	// ... and DESTROYED once the KMS says every key (current and past) is destroyed.
	e.kms.set(arn1, provider.StateDestroyed)
	err = verifyRun(context.Background(), e.f, e.json(), vo)
	if ExitCode(err) != ExitVerdictRevoked {
		t.Fatalf("verify with one key left: exit %d, want %d", ExitCode(err), ExitVerdictRevoked)
	}
	e.reset()
	e.kms.set(arn2, provider.StateDestroyed)
	if err := verifyRun(context.Background(), e.f, e.json(), vo); err != nil {
		t.Fatalf("verify with every key destroyed: %v (exit %d)", err, ExitCode(err))
	}
	e.decode(t, &vr)
	if vr.Verdict != "DESTROYED" {
		t.Fatalf("verdict %s (%s)", vr.Verdict, vr.Reason)
	}
	e.noKey(t)
}

func TestCloudRevokeConfirmation(t *testing.T) {
	e := newCloudEnv(t, "us-east-1")
	e.enable(t)
	e.f.IO.SetTTY(true, true, true)
	o := &RevokeOptions{Cloud: e.cloudOpts()}

	e.in.WriteString("c2\n")
	err := revokeRun(context.Background(), e.f, e.json(), o)
	if ExitCode(err) != ExitUsage || e.srv.Count("PATCH", 0) != 0 {
		t.Fatalf("a wrong confirmation: exit %d (%v), %d PATCH", ExitCode(err), err, e.srv.Count("PATCH", 0))
	}
	if !strings.Contains(e.err.String(), `Type "c1" to confirm`) {
		t.Fatalf("no prompt for the cluster ID: %s", e.err)
	}
	e.reset()
	e.in.WriteString("c1\n")
	if err := revokeRun(context.Background(), e.f, e.json(), o); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if e.srv.Count("PATCH", 200) != 1 || e.srv.RegionStatus("us-east-1") != "REVOKED" {
		t.Fatalf("after a confirmed revoke: %d PATCH, region %s", e.srv.Count("PATCH", 200), e.srv.RegionStatus("us-east-1"))
	}
}

// Progress goes to stderr on a terminal only.
func TestCloudProgressOnTerminalOnly(t *testing.T) {
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprint("tty=", tty), func(t *testing.T) {
			e := newCloudEnv(t, "us-east-1")
			e.f.IO.SetTTY(false, false, tty)
			e.enable(t)
			got := strings.Contains(e.err.String(), "cluster c1: us-east-1 ENABLING")
			if got != tty {
				t.Fatalf("progress on stderr %v, want %v: %q", got, tty, e.err)
			}
		})
	}
}

// A table on a terminal, tab-separated lines (a header per table) when
// piped (the root command picks tsv for a pipe).
func TestCloudStatusOutput(t *testing.T) {
	e := newCloudEnv(t, "us-east-1")
	e.enable(t)
	e.reset()
	o := &StatusOptions{Cloud: e.cloudOpts()}
	if err := statusRun(context.Background(), e.f, printer{io: e.f.IO, format: OutputTSV}, o); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.out.String(), "cluster\tcmek status\tregions\tenabled at\nc1\tENABLED\t1\t") || strings.Contains(e.out.String(), "REGION STATUS") {
		t.Fatalf("piped output: %q", e.out)
	}
	e.reset()
	e.f.IO.SetTTY(false, true, false)
	if err := statusRun(context.Background(), e.f, printer{io: e.f.IO, format: OutputTable}, o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.out.String(), "REGION STATUS") || !strings.Contains(e.out.String(), "aws-kms:///"+arn1) {
		t.Fatalf("terminal output: %s", e.out)
	}
}

func TestCloudErrors(t *testing.T) {
	e := newCloudEnv(t, "us-east-1")
	ctx := context.Background()
	status := func() error { return statusRun(ctx, e.f, e.json(), &StatusOptions{Cloud: e.cloudOpts()}) }

	e.env[envCloudAPIKey] = ""
	if err := status(); ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "no API key") || e.srv.Count("", 0) != 0 {
		t.Fatalf("no key: exit %d, %v, %d calls", ExitCode(err), err, e.srv.Count("", 0))
	}
	e.env[envCloudAPIKey] = "CCDB1_not_the_key"
	if err := status(); ExitCode(err) != ExitCloudAuth {
		t.Fatalf("wrong key: exit %d, %v", ExitCode(err), err)
	}
	e.env[envCloudAPIKey] = e.srv.APIKey()
	o := e.cloudOpts()
	o.ClusterID = "nope"
	err := statusRun(ctx, e.f, e.json(), &StatusOptions{Cloud: o})
	if !errors.Is(err, cloud.ErrNotFound) || ExitCode(err) != ExitFailure || !strings.Contains(hintFor(err), "--cluster-id") {
		t.Fatalf("unknown cluster: exit %d, %v, hint %q", ExitCode(err), err, hintFor(err))
	}
	e.srv.GETErrors(2)
	if err := status(); err != nil {
		t.Fatalf("two 500s on GET are retried: %v", err)
	}

	// The kinds of pkg/cloud, mapped in ExitCode.
	for _, c := range []struct {
		err  error
		want int
	}{
		{&cloud.FailedError{ClusterID: "c1", Region: "r", Status: cloud.StatusEnableFailed}, ExitCloudFailed},
		{fmt.Errorf("wait: %w", cloud.ErrTimeout), ExitCloudTimeout},
		{&cloud.APIError{Status: 403}, ExitCloudAuth},
		{&cloud.APIError{Status: 401}, ExitCloudAuth},
		{&cloud.APIError{Status: 404}, ExitFailure},
		{&cloud.APIError{Status: 503}, ExitFailure},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}

	// rotate store-key and data-key: a usage error that says why, no call.
	before := e.srv.Count("", 0)
	for _, op := range []string{"rotate store-key", "rotate data-key"} {
		err := rotateRun(ctx, e.f, e.json(), &RotateOptions{Op: op, Cloud: e.cloudOpts()})
		if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "does not offer") {
			t.Fatalf("%s --cloud: exit %d, %v", op, ExitCode(err), err)
		}
	}
	if e.srv.Count("", 0) != before {
		t.Fatal("rotate store-key/data-key --cloud called the API")
	}
}

// ENABLE_FAILED ends with the region's user_message, exit 40, and the
// report still printed.
func TestCloudEnableFailed(t *testing.T) {
	e := newCloudEnv(t, "us-east-1")
	e.srv.FailRegion("us-east-1", "the role cannot use the key")
	o := &EnableOptions{ClusterID: "c1", Cloud: e.cloudOpts()}
	o.Cloud.RegionKeys = []string{"us-east-1=aws-kms:///" + arn1}
	o.Cloud.Principals = []string{"us-east-1=" + role}
	err := enableRun(context.Background(), e.f, e.json(), o)
	if ExitCode(err) != ExitCloudFailed || !strings.Contains(err.Error(), "ENABLE_FAILED: the role cannot use the key") {
		t.Fatalf("exit %d, %v", ExitCode(err), err)
	}
	var rep cloudOpReport
	e.decode(t, &rep)
	if rep.Status != "ENABLE_FAILED" || rep.Regions[0].Keys[0].UserMessage != "the role cannot use the key" {
		t.Fatalf("report: %+v", rep)
	}
}

// Backups: before CMEK → not restorable; after → restorable while the key
// current then is enabled. Every page is read.
func TestCloudBackups(t *testing.T) {
	e := newCloudEnv(t, "us-east-1")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := t0
	var mu sync.Mutex
	e.srv.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	e.srv.SetPageSize(2)
	for i, h := range []int{-2, -1, 1, 2, 4} {
		e.srv.AddBackup(fmt.Sprintf("b%d", i), t0.Add(time.Duration(h)*time.Hour))
	}
	run := func() cloudBackupsReport {
		t.Helper()
		e.reset()
		o := e.cloudOpts()
		if err := cloudBackupsRun(context.Background(), e.f, e.json(), "c1", &o); err != nil {
			t.Fatalf("backups: %v", err)
		}
		var rep cloudBackupsReport
		e.decode(t, &rep)
		return rep
	}
	restorable := func(rep cloudBackupsReport) string {
		var s []string
		for _, b := range rep.Backups {
			s = append(s, b.ID+"="+yesNo(b.Restorable))
		}
		return strings.Join(s, " ")
	}

	rep := run() // CMEK off: every backup restorable as ever
	if got := restorable(rep); got != "b0=yes b1=yes b2=yes b3=yes b4=yes" {
		t.Fatalf("without CMEK: %s", got)
	}
	if rep.APICalls.GET != 4 { // 1 cmek + 3 pages of 2
		t.Fatalf("GETs %d, want 4 (status and three pages)", rep.APICalls.GET)
	}

	e.enable(t) // key arn1 from t0
	mu.Lock()
	clock = t0.Add(3 * time.Hour)
	mu.Unlock()
	ro := &RotateOptions{Op: "rotate cmek", Cloud: e.cloudOpts()}
	ro.Cloud.RegionKeys = []string{"us-east-1=aws-kms:///" + arn2}
	if err := rotateRun(context.Background(), e.f, e.json(), ro); err != nil {
		t.Fatal(err)
	}
	if got := restorable(run()); got != "b0=no b1=no b2=yes b3=yes b4=yes" {
		t.Fatalf("with CMEK: %s", got)
	}
	e.kms.set(arn1, provider.StateDisabled) // the key of b2 and b3
	rep = run()
	if got := restorable(rep); got != "b0=no b1=no b2=no b3=no b4=yes" {
		t.Fatalf("with the first key disabled: %s", got)
	}
	if !strings.Contains(rep.Backups[0].Reason, "before CMEK was enabled") || !strings.Contains(rep.Backups[2].Reason, "is DISABLED") {
		t.Fatalf("reasons: %q, %q", rep.Backups[0].Reason, rep.Backups[2].Reason)
	}
	if rep.KMSCalls.Describe != 2 || rep.Restorable != 1 || rep.NotRestorable != 4 {
		t.Fatalf("counts: %+v restorable %d not %d", rep.KMSCalls, rep.Restorable, rep.NotRestorable)
	}
}

// A key the Cloud API names is described through its provider with the
// environment's credentials: the URI must open as it is (a gcp-kms URI
// without AUTH means AUTH=specified and needs CREDENTIALS).
func TestProviderURIOpens(t *testing.T) {
	reg := registry.Default()
	for _, spec := range []cloud.KeySpec{
		{Type: cloud.KeyTypeAWSKMS, URI: arn1, AuthPrincipal: role},
		{Type: cloud.KeyTypeGCPCloudKMS, URI: "projects/p/locations/us-east1/keyRings/r/cryptoKeys/k", AuthPrincipal: "sa@p.iam.gserviceaccount.com"},
	} {
		uri := providerURI(spec)
		if _, err := reg.Open(uri); err != nil {
			t.Errorf("%s: %s does not open: %v", spec.Type, uri, err)
		}
		if !strings.Contains(uri, "AUTH=implicit") {
			t.Errorf("%s: %s: want AUTH=implicit", spec.Type, uri)
		}
	}
}
