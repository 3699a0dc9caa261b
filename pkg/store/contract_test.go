package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/cmekctl/cmekctl/internal/faultproxy"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

// opener opens uri through store.Open, as the command line does.
func opener(uri string) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store {
		t.Helper()
		s, err := store.Open(context.Background(), uri)
		if err != nil {
			t.Fatalf("open %s: %v", uri, err)
		}
		return s
	}
}

func TestContractDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	storetest.Run(t, opener("file://"+dir))
}

// The benchmarks' in-memory store keeps the same contract.
func TestContractMem(t *testing.T) {
	m := storetest.NewMem()
	storetest.Run(t, func(t *testing.T) store.Store { return m })
}

func TestContractS3Gofakes3(t *testing.T) {
	srv := storetest.StartS3(t, "keyrings")
	storetest.SetAWSTestEnv(t)
	storetest.Run(t, opener(srv.URI(srv.URL, "clusters-prod")))
}

// versitygw: a real S3 gateway, a separate process, SigV4 checked.
func TestContractS3Versity(t *testing.T) {
	srv := storetest.StartVersity(t, "keyrings")
	storetest.SetAWSTestEnv(t)
	storetest.Run(t, opener(srv.URI(srv.URL, "clusters-prod")))
}

func TestLostAnswerS3Versity(t *testing.T) {
	srv := storetest.StartVersity(t, "keyrings")
	storetest.SetAWSTestEnv(t)
	p := faultproxy.Start(t, srv.URL)
	storetest.RunLostAnswer(t, opener(srv.URI(p.URL, "p")), p, http.MethodPut)
}

// versitygw checks signatures: a wrong secret is refused, never read as
// "no such document".
func TestVersityChecksSignatures(t *testing.T) {
	srv := storetest.StartVersity(t, "keyrings")
	storetest.SetAWSTestEnv(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	_, _, err := opener(srv.URI(srv.URL, "p"))(t).Get(context.Background(), "x")
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get with a wrong secret: %v, want a refusal", err)
	}
}

func TestContractGCSFake(t *testing.T) {
	srv := storetest.StartGCS(t, "keyrings")
	storetest.SetEmulator(t, srv.URL)
	storetest.Run(t, opener(fmt.Sprintf("gs://%s/prod?AUTH=implicit", srv.Bucket)))
}

func TestContractEtcd(t *testing.T) {
	ep := storetest.StartEtcd(t)
	storetest.Run(t, opener(fmt.Sprintf("etcd://%s/cmekctl", ep)))
}

func TestLostAnswerS3(t *testing.T) {
	srv := storetest.StartS3(t, "keyrings")
	storetest.SetAWSTestEnv(t)
	p := faultproxy.Start(t, srv.URL)
	storetest.RunLostAnswer(t, opener(srv.URI(p.URL, "p")), p, http.MethodPut)
}

func TestLostAnswerGCS(t *testing.T) {
	srv := storetest.StartGCS(t, "keyrings")
	p := faultproxy.Start(t, srv.URL)
	storetest.SetEmulator(t, p.URL)
	storetest.RunLostAnswer(t, opener(fmt.Sprintf("gs://%s/p", srv.Bucket)), p, http.MethodPost)
}

// An "S3-compatible" server that accepts the conditional headers and
// ignores them (here: a proxy that strips them before gofakes3 sees them)
// is refused by store check, and nothing reports success.
func TestCheckRefusesIgnoredConditions(t *testing.T) {
	srv := storetest.StartS3(t, "keyrings")
	storetest.SetAWSTestEnv(t)
	target, _ := url.Parse(srv.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("If-Match")
		r.Header.Del("If-None-Match")
		rp.ServeHTTP(w, r)
	}))
	defer strip.Close()
	s := opener(srv.URI(strip.URL, "p"))(t)
	res, err := store.Check(context.Background(), s)
	if !errors.Is(err, store.ErrNotEnforced) {
		t.Fatalf("store check of a server that ignores conditions: %v (%+v), want ErrNotEnforced", err, res)
	}
	if last := res[len(res)-1]; last.OK || last.Step != "create-only" {
		t.Fatalf("last step %+v, want a failed create-only", last)
	}
	// The same server, honest: passes.
	if _, err := store.Check(context.Background(), opener(srv.URI(srv.URL, "p"))(t)); err != nil {
		t.Fatalf("store check of gofakes3 itself: %v", err)
	}
}

// A store that answers create-only honestly but lets stale replaces
// through is refused at the replace step.
func TestCheckRefusesIgnoredReplaceCondition(t *testing.T) {
	dir, err := store.OpenDir(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Check(context.Background(), blindReplace{dir})
	if !errors.Is(err, store.ErrNotEnforced) || res[len(res)-1].Step != "replace-if-unchanged" {
		t.Fatalf("check: %v %+v, want ErrNotEnforced at replace-if-unchanged", err, res)
	}
}

// blindReplace replaces whatever the version given.
type blindReplace struct{ *store.Dir }

func (b blindReplace) ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev store.Version) (store.Version, error) {
	_, cur, err := b.Dir.Get(ctx, key)
	if err != nil {
		return store.Version{}, err
	}
	return b.Dir.ReplaceIfUnchanged(ctx, key, body, cur)
}

// A conditional read of an unchanged document is one request answered 304
// with no body, on gofakes3 and on versitygw; a changed one reads the body.
func TestGetIfChangedSendsNoBodyS3(t *testing.T) {
	for name, start := range map[string]func(testing.TB, string) *storetest.S3Server{
		"gofakes3": storetest.StartS3, "versitygw": storetest.StartVersity,
	} {
		t.Run(name, func(t *testing.T) {
			srv := start(t, "keyrings")
			storetest.SetAWSTestEnv(t)
			p := faultproxy.Start(t, srv.URL)
			s := opener(srv.URI(p.URL, "p"))(t)
			checkConditionalPolls(t, s, p)
		})
	}
}

// checkConditionalPolls writes a document through p and checks that five
// conditional reads of it unchanged are five requests answered 304 with no
// body, and that once replaced one read answers 200 with the new body. It
// returns the document's first version.
func checkConditionalPolls(t *testing.T, s store.Store, p *faultproxy.Proxy) store.Version {
	t.Helper()
	ctx := context.Background()
	doc := bytes.Repeat([]byte("k"), 4096)
	v1, err := s.CreateOnly(ctx, "c/keyring.json", doc)
	if err != nil {
		t.Fatal(err)
	}
	p.Reset()
	for range 5 {
		body, got, changed, err := store.GetIfChanged(ctx, s, "c/keyring.json", v1)
		if err != nil || changed || body != nil || got != v1 {
			t.Fatalf("unchanged: %d bytes %+v changed=%v %v", len(body), got, changed, err)
		}
	}
	statuses, n := p.Answers()
	if p.Requests() != 5 || statuses[http.StatusNotModified] != 5 || n != 0 {
		t.Fatalf("5 polls of an unchanged document: %d requests, answers %v, %d body bytes; want 5 requests answered 304 with no body",
			p.Requests(), statuses, n)
	}
	v2, err := s.ReplaceIfUnchanged(ctx, "c/keyring.json", doc, v1)
	if err != nil {
		t.Fatal(err)
	}
	p.Reset()
	body, got, changed, err := store.GetIfChanged(ctx, s, "c/keyring.json", v1)
	statuses, n = p.Answers()
	if err != nil || !changed || !bytes.Equal(body, doc) || got != v2 || statuses[http.StatusOK] != 1 || n < int64(len(doc)) {
		t.Fatalf("changed: %d bytes %+v changed=%v %v; answers %v, %d body bytes", len(body), got, changed, err, statuses, n)
	}
	return v1
}
