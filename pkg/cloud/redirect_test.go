package cloud_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

// authSeen is a loopback server that records the Authorization header of
// every request it gets.
type authSeen struct {
	mu    sync.Mutex
	reqs  int
	auths []string
}

func (a *authSeen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.reqs++
	if h := r.Header.Get("Authorization"); h != "" {
		a.auths = append(a.auths, h)
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"id":"` + clusterID + `","name":"c","state":"CREATED","regions":[]}`))
}

func (a *authSeen) seen() (int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reqs, append([]string(nil), a.auths...)
}

// TestRedirectToAnotherOriginNeverCarriesTheKey: a server that redirects the
// client to another scheme or host (an https to http downgrade, another
// port) never gets the Bearer token there: the redirect fails, at once.
// net/http alone keeps Authorization across both (same host name).
func TestRedirectToAnotherOriginNeverCarriesTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"https to http", true}, {"http to another port", false}} {
		t.Run(tc.name, func(t *testing.T) {
			trap := &authSeen{}
			second := httptest.NewServer(trap)
			defer second.Close()
			var firstHits int
			redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				firstHits++
				http.Redirect(w, r, second.URL+r.URL.RequestURI(), http.StatusFound)
			})
			var first *httptest.Server
			if tc.tls {
				first = httptest.NewTLSServer(redirect)
			} else {
				first = httptest.NewServer(redirect)
			}
			defer first.Close()
			clock := newClock()
			c, err := cloud.New(cloud.Options{Server: first.URL, APIKey: cloud.NewSecret(testKey),
				HTTPClient: first.Client(), Now: clock.Now, Sleep: clock.Sleep})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetCluster(context.Background(), clusterID)
			if err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
				t.Errorf("GetCluster after a redirect to %s: err %v, want a refused redirect", second.URL, err)
			}
			noKey(t, err)
			if n, auths := trap.seen(); n != 0 || len(auths) != 0 {
				t.Errorf("the second server got %d requests, Authorization %q: want none", n, auths)
			}
			if firstHits != 1 {
				t.Errorf("first server asked %d times, want 1 (a refused redirect is not retried)", firstHits)
			}
		})
	}
}

// TestRedirectSameOriginFollowed: a redirect within the same server still
// works, with the key.
func TestRedirectSameOriginFollowed(t *testing.T) {
	trap := &authSeen{}
	mux := http.NewServeMux()
	mux.Handle("/moved/", trap)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusTemporaryRedirect)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := cloud.New(cloud.Options{Server: srv.URL, APIKey: cloud.NewSecret(testKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCluster(context.Background(), clusterID); err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	if n, auths := trap.seen(); n != 1 || len(auths) != 1 || auths[0] != "Bearer "+testKey {
		t.Errorf("same-origin redirect: %d requests, Authorization %q", n, auths)
	}
}
