package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cmekctl/cmekctl/pkg/cluster"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

// TestStoreScripts runs the shared-store scripts (testdata/store): every
// "host" is its own cmekctl process with its own home, cache and --out,
// sharing only a store URI and the KMS. `storefake KIND` starts a store
// server in this test process on 127.0.0.1 and exports its URI:
//
//	storefake s3        gofakes3                         -> $S3_URI
//	storefake s3-blind  gofakes3 behind a proxy that
//	                    drops If-Match/If-None-Match     -> $S3_BLIND_URI
//	storefake gcs       fake-gcs-server                  -> $GCS_URI (and STORAGE_EMULATOR_HOST)
//	storefake etcd      the etcd server                  -> $ETCD_URI
//
// `treesum DIR FILE` writes to FILE one line per entry under DIR (path,
// mode, size, SHA-256 of a file's bytes), so `cmp` shows a store directory
// byte-identical before and after a command.
func TestStoreScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:  "testdata/store",
		Cmds: mergeCmds(map[string]func(ts *testscript.TestScript, neg bool, args []string){"storefake": storeFake(t), "treesum": treeSum, "holdlease": holdLease}, schemaCmds()),
		Setup: func(e *testscript.Env) error {
			e.Setenv("NO_COLOR", "1")
			e.Setenv("XDG_STATE_HOME", e.WorkDir+"/state")
			return nil
		},
	})
}

func storeFake(t *testing.T) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: storefake s3|s3-blind|gcs|etcd")
		}
		switch args[0] {
		case "s3", "s3-blind":
			srv := storetest.StartS3(t, "keyrings")
			ts.Setenv("AWS_ACCESS_KEY_ID", "AKIDTESTSTORE")
			ts.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-not-real")
			ts.Setenv("AWS_REGION", "us-east-1")
			ts.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			ts.Setenv("AWS_CONFIG_FILE", ts.Getenv("WORK")+"/no-aws-config")
			ts.Setenv("AWS_SHARED_CREDENTIALS_FILE", ts.Getenv("WORK")+"/no-aws-credentials")
			if args[0] == "s3" {
				ts.Setenv("S3_URI", srv.URI(srv.URL, "prod"))
				return
			}
			target, _ := url.Parse(srv.URL)
			rp := httputil.NewSingleHostReverseProxy(target)
			blind := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Del("If-Match")
				r.Header.Del("If-None-Match")
				rp.ServeHTTP(w, r)
			}))
			t.Cleanup(blind.Close)
			ts.Setenv("S3_BLIND_URI", srv.URI(blind.URL, "prod"))
		case "gcs":
			srv := storetest.StartGCS(t, "keyrings")
			ts.Setenv("STORAGE_EMULATOR_HOST", srv.URL[len("http://"):])
			ts.Setenv("GCS_URI", "gs://keyrings/prod?AUTH=implicit")
		case "etcd":
			ts.Setenv("ETCD_URI", "etcd://"+storetest.StartEtcd(t)+"/cmekctl")
		default:
			ts.Fatalf("storefake: unknown kind %q", args[0])
		}
	}
}

func treeSum(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: treesum DIR FILE")
	}
	var out strings.Builder
	root := ts.MkAbs(args[0])
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := ""
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		fmt.Fprintf(&out, "%s %v %d %s\n", rel, info.Mode(), info.Size(), sum)
		return nil
	})
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out.String()), 0o600))
}

// holdlease URI CLUSTER takes the cluster's operator lease in the store as a
// run that then died would have (never released), and sets $LEASE to its
// token, for store unlock --force.
func holdLease(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: holdlease URI CLUSTER")
	}
	s, err := store.Open(context.Background(), args[0])
	ts.Check(err)
	h, err := cluster.AcquireLease(context.Background(), s, args[1], "rotate store-key", cluster.LeaseOptions{})
	ts.Check(err)
	ts.Setenv("LEASE", h.Token())
}
