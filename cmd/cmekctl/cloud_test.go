package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	localkms "github.com/nsmithuk/local-kms/src"
	lkconfig "github.com/nsmithuk/local-kms/src/config"
	lkdata "github.com/nsmithuk/local-kms/src/data"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cmekctl/cmekctl/pkg/cloud/cloudtest"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
)

// The Cloud plane's scripts (testdata/cloud_*.txtar) run cmekctl as a
// subprocess against two servers that live in this test process, on
// 127.0.0.1: the Cloud API fake (pkg/cloud/cloudtest) and local-kms
// (github.com/nsmithuk/local-kms, an independent AWS KMS emulator) for the
// keys that cmekctl describes through the AWS provider. `cloudfake start`
// starts both and exports what cmekctl needs into the script's
// environment; the other subcommands drive the fakes' fault hooks and
// check their state from the server's side.

const (
	cloudTestRegion  = "eu-west-2"
	cloudTestAccount = "111122223333"
	// Made-up credentials; local-kms does not check them.
	cloudTestAccessKey = "AKIACMEKCTLSCRIPTONLY"
	cloudTestSecretKey = "cmekctl-script-secret-not-a-real-key"
)

type cloudFakes struct {
	api *cloudtest.Server
	kms string // local-kms URL
}

var (
	cloudMu         sync.Mutex
	cloudByScript   = map[*testscript.TestScript]*cloudFakes{}
	localKMSConfig  sync.Once
	cloudScriptHelp = `usage: cloudfake start CLUSTER REGION... | cluster CLUSTER REGION... | key NAME |
  fail REGION MESSAGE... | busy N | lock N | rate-limit N SECONDS | iam-denied N | get-errors N |
  polls N | echo-auth on|off | status REGION WANT | nodes REGION WANT | count METHOD|any N`
)

// cloudCmds returns the script commands; t is the test that owns the
// servers (they stop when it ends).
func cloudCmds(t *testing.T) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		// gcpkmsfake: the in-house Cloud KMS fake, reached through ENDPOINT.
		"gcpkmsfake": gcpFakeCmd(t),
		"cloudfake": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg {
				ts.Fatalf("cloudfake does not take !")
			}
			if len(args) == 0 {
				ts.Fatalf("%s", cloudScriptHelp)
			}
			if args[0] == "start" {
				cloudStart(t, ts, args[1:])
				return
			}
			cloudMu.Lock()
			fk := cloudByScript[ts]
			cloudMu.Unlock()
			if fk == nil {
				ts.Fatalf("cloudfake %s: run cloudfake start first", args[0])
			}
			cloudDo(ts, fk, args)
		},
	}
}

func cloudStart(t *testing.T, ts *testscript.TestScript, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: cloudfake start CLUSTER REGION...")
	}
	api := cloudtest.New(t, cloudtest.Cluster{ID: args[0], Regions: args[1:]})
	localKMSConfig.Do(func() {
		lkconfig.AWSRegion = cloudTestRegion
		lkconfig.AWSAccountId = cloudTestAccount
	})
	db := lkdata.NewDatabase(t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		localkms.HandleRequest(w, r, db)
	})}}
	srv.Start()
	t.Cleanup(func() { srv.Close(); db.Close() })
	cloudMu.Lock()
	cloudByScript[ts] = &cloudFakes{api: api, kms: srv.URL}
	cloudMu.Unlock()

	work := ts.Getenv("WORK")
	for k, v := range map[string]string{
		"COCKROACH_SERVER":            api.URL(),
		"COCKROACH_API_KEY":           api.APIKey(),
		"CMEKCTL_CLOUD_POLL_SCALE":    "0.001", // test-only: a 2 h wait is 7 s, a 0.5 s poll 0.5 ms
		"AWS_ENDPOINT_URL_KMS":        srv.URL,
		"AWS_ACCESS_KEY_ID":           cloudTestAccessKey,
		"AWS_SECRET_ACCESS_KEY":       cloudTestSecretKey,
		"AWS_REGION":                  cloudTestRegion,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             filepath.Join(work, ".aws-none", "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(work, ".aws-none", "credentials"),
		"ROLE":                        "arn:aws:iam::" + cloudTestAccount + ":role/cockroach-cmek",
	} {
		ts.Setenv(k, v)
	}
}

func cloudDo(ts *testscript.TestScript, fk *cloudFakes, args []string) {
	n := func(i int) int {
		if len(args) <= i {
			ts.Fatalf("cloudfake %s: missing a number", args[0])
		}
		v, err := strconv.Atoi(args[i])
		ts.Check(err)
		return v
	}
	switch args[0] {
	case "cluster":
		if len(args) < 3 {
			ts.Fatalf("usage: cloudfake cluster CLUSTER REGION...")
		}
		ts.Check(fk.api.AddCluster(cloudtest.Cluster{ID: args[1], Regions: args[2:]}))
	case "key":
		if len(args) != 2 {
			ts.Fatalf("usage: cloudfake key NAME")
		}
		ts.Setenv(args[1], cloudCreateKey(ts, fk.kms))
	case "fail":
		if len(args) < 3 {
			ts.Fatalf("usage: cloudfake fail REGION MESSAGE...")
		}
		fk.api.FailRegion(args[1], strings.Join(args[2:], " "))
	case "busy":
		fk.api.Busy(n(1))
	case "lock":
		fk.api.Lock(n(1))
	case "rate-limit":
		fk.api.RateLimit(n(1), time.Duration(n(2))*time.Second)
	case "nodes":
		if got, want := fk.api.NodeCount(args[1]), n(2); got != want {
			ts.Fatalf("cloudfake: region %s has %d nodes on the server, want %d", args[1], got, want)
		}
	case "iam-denied":
		fk.api.IAMDenied(n(1))
	case "get-errors":
		fk.api.GETErrors(n(1))
	case "polls":
		fk.api.SetPolls(n(1))
	case "backup":
		if len(args) != 2 {
			ts.Fatalf("usage: cloudfake backup ID (as of now)")
		}
		fk.api.AddBackup(args[1], time.Now().UTC())
	case "echo-auth":
		fk.api.EchoAuth(len(args) > 1 && args[1] == "on")
	case "status":
		if len(args) != 3 {
			ts.Fatalf("usage: cloudfake status REGION WANT")
		}
		if got := fk.api.RegionStatus(args[1]); got != args[2] {
			ts.Fatalf("cloudfake: region %s is %s on the server, want %s", args[1], got, args[2])
		}
	case "count":
		if len(args) != 3 {
			ts.Fatalf("usage: cloudfake count METHOD|any N")
		}
		method := args[1]
		if method == "any" {
			method = ""
		}
		if got, want := fk.api.Count(method, 0), n(2); got != want {
			ts.Fatalf("cloudfake: the server saw %d %s request(s), want %d", got, args[1], want)
		}
	default:
		ts.Fatalf("%s", cloudScriptHelp)
	}
}

// cloudCreateKey creates a symmetric key on local-kms through the AWS
// provider's Admin.Create and returns its ARN.
func cloudCreateKey(ts *testscript.TestScript, endpoint string) string {
	q := url.Values{
		"REGION": {cloudTestRegion}, "AUTH": {"specified"}, "AWS_ENDPOINT": {endpoint},
		"AWS_ACCESS_KEY_ID": {cloudTestAccessKey}, "AWS_SECRET_ACCESS_KEY": {cloudTestSecretKey},
	}
	u, err := url.Parse("aws-kms:///?" + q.Encode())
	ts.Check(err)
	k, err := awskms.Open(u)
	ts.Check(err)
	a, ok := provider.AsAdmin(k)
	if !ok {
		ts.Fatalf("cloudfake key: the aws provider has no Admin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := a.Create(ctx)
	ts.Check(err)
	arn := st.Details["arn"]
	if arn == "" {
		ts.Fatalf("cloudfake key: local-kms returned no ARN")
	}
	return arn
}
