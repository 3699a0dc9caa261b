package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/internal/faultproxy"
	"github.com/cmekctl/cmekctl/pkg/store"
	"github.com/cmekctl/cmekctl/pkg/store/storetest"
)

// gcsThrough opens a gs:// store on fake-gcs-server through a fault proxy,
// with short retry waits.
func gcsThrough(t *testing.T) (store.Store, *faultproxy.Proxy) {
	t.Helper()
	srv := storetest.StartGCS(t, "keyrings")
	p := faultproxy.Start(t, srv.URL)
	storetest.SetEmulator(t, p.URL)
	old := *store.GCSBackoff
	*store.GCSBackoff = time.Millisecond
	t.Cleanup(func() { *store.GCSBackoff = old })
	return opener(fmt.Sprintf("gs://%s/p", srv.Bucket))(t), p
}

// 429 and 5xx are retried (every request is idempotent), a bounded number
// of times; then the store is unavailable, and nothing else is reported.
func TestGCSRetriesTransientAnswers(t *testing.T) {
	ctx := context.Background()
	s, p := gcsThrough(t)
	p.Set(faultproxy.Fault{Status: http.StatusServiceUnavailable, Method: http.MethodPost, Times: 2})
	v, err := s.CreateOnly(ctx, "a/doc", []byte("one"))
	if err != nil || p.Faulted() != 2 {
		t.Fatalf("create through two 503s: %+v %v (%d faulted), want success on the third try", v, err, p.Faulted())
	}
	p.Set(faultproxy.Fault{Status: http.StatusTooManyRequests, Method: http.MethodGet, Times: 1})
	if body, got, err := s.Get(ctx, "a/doc"); err != nil || string(body) != "one" || got != v {
		t.Fatalf("get through a 429: %q %+v %v", body, got, err)
	}

	p.Set(faultproxy.Fault{Status: http.StatusInternalServerError})
	p.Reset()
	_, _, err = s.Get(ctx, "a/doc")
	if !errors.Is(err, store.ErrUnavailable) || p.Requests() != store.GCSAttempts {
		t.Fatalf("get against a failing server: %v after %d requests, want ErrUnavailable after %d", err, p.Requests(), store.GCSAttempts)
	}
	p.Reset()
	_, err = s.ReplaceIfUnchanged(ctx, "a/doc", []byte("two"), v)
	if !errors.Is(err, store.ErrUnavailable) || p.Requests() != store.GCSAttempts {
		t.Fatalf("replace against a failing server: %v after %d requests", err, p.Requests())
	}

	// A refusal is not retried.
	p.Set(faultproxy.Fault{})
	p.Reset()
	if _, err := s.CreateOnly(ctx, "a/doc", []byte("again")); !errors.Is(err, store.ErrExists) || p.Requests() != 1 {
		t.Fatalf("create over an existing document: %v after %d requests, want ErrExists after 1", err, p.Requests())
	}
}

// A listing longer than one page is read whole.
func TestGCSListPages(t *testing.T) {
	ctx := context.Background()
	s, p := gcsThrough(t)
	old := *store.GCSListPage
	*store.GCSListPage = 2
	t.Cleanup(func() { *store.GCSListPage = old })
	var want []string
	for i := range 5 {
		k := fmt.Sprintf("l/k%d", i)
		if _, err := s.CreateOnly(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	p.Reset()
	got, err := s.List(ctx, "l/")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("list: %v %v, want %v", got, err, want)
	}
	if p.Requests() != 3 {
		t.Fatalf("listing 5 names 2 a page took %d requests, want 3", p.Requests())
	}
}

// STORAGE_EMULATOR_HOST may be HOST:PORT or a URL, as Google's client
// accepts.
func TestGCSEmulatorHostWithScheme(t *testing.T) {
	srv := storetest.StartGCS(t, "keyrings")
	t.Setenv("STORAGE_EMULATOR_HOST", srv.URL)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	s := opener("gs://keyrings/p")(t)
	if _, err := s.CreateOnly(context.Background(), "x", []byte("x")); err != nil {
		t.Fatalf("create at STORAGE_EMULATOR_HOST=%s: %v", srv.URL, err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "http://")
	if _, err := store.Open(context.Background(), "gs://keyrings/p"); err == nil {
		t.Fatal("STORAGE_EMULATOR_HOST=http:// accepted")
	}
}

// honourNotMatch answers a media download with ifGenerationNotMatch=G 304
// Not Modified, no body, while the object is at generation G, as GCS does
// (objects.get); fake-gcs-server ignores the parameter on downloads (it
// honours preconditions on uploads only), so this sits in front of it.
func honourNotMatch(t *testing.T, srv *storetest.GCSServer) string {
	target, _ := url.Parse(srv.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		bucketObj, isObj := strings.CutPrefix(r.URL.Path, "/storage/v1/b/")
		bucket, name, _ := strings.Cut(bucketObj, "/o/")
		if g := q.Get("ifGenerationNotMatch"); isObj && r.Method == http.MethodGet && q.Get("alt") == "media" && g != "" {
			if o, err := srv.Server.GetObject(bucket, name); err == nil && strconv.FormatInt(o.Generation, 10) == g {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// A conditional read of an unchanged document is one request answered 304
// with no body; a changed one reads the body.
func TestGCSGetIfChangedSendsNoBody(t *testing.T) {
	srv := storetest.StartGCS(t, "keyrings")
	p := faultproxy.Start(t, honourNotMatch(t, srv))
	storetest.SetEmulator(t, p.URL)
	s := opener("gs://keyrings/p")(t)
	v1 := checkConditionalPolls(t, s, p)
	if _, _, _, err := store.GetIfChanged(context.Background(), s, "c/missing", v1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a missing document: %v, want ErrNotFound", err)
	}
}
