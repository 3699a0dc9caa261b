package gcpkms_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
	"github.com/cmekctl/cmekctl/pkg/provider/providertest"
)

// fastRetry keeps the suite quick: three attempts, millisecond backoff.
var fastRetry = provider.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond, Budget: 10 * time.Second}

func ctxT(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func randName(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "projects/cmekctl-test/locations/us-east1/keyRings/ring-" + hex.EncodeToString(b[:3]) + "/cryptoKeys/key-" + hex.EncodeToString(b[3:])
}

// newKey starts a fake, creates a key on it through the adapter's Create
// (key ring included) and returns both.
func newKey(t testing.TB) (*gcpkmsfake.Server, *gcpkms.Key) {
	t.Helper()
	srv := gcpkmsfake.Start(t)
	return srv, keyOn(t, srv)
}

func keyOn(t testing.TB, srv *gcpkmsfake.Server) *gcpkms.Key {
	t.Helper()
	name := randName(t)
	k := gcpkms.New(srv.Client(ctxT(t)), name, "gcp-kms:///"+name+"?AUTH=implicit").WithRetry(fastRetry)
	st, err := k.Create(ctxT(t))
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if st.State != provider.StateEnabled || len(st.Versions) != 1 {
		t.Fatalf("create: state %s with %d versions, want ENABLED with 1", st.State, len(st.Versions))
	}
	return k
}

func TestSuite(t *testing.T) { runSuite(t, keyOn) }

// TestSuiteThroughEndpoint runs the same suite with keys opened as a user
// opens them: the registry's gcp-kms opener (gcpkms.Open) on a URI whose
// ENDPOINT names the fake, plain text on loopback, no credentials.
func TestSuiteThroughEndpoint(t *testing.T) {
	runSuite(t, func(t testing.TB, srv *gcpkmsfake.Server) *gcpkms.Key {
		t.Helper()
		u, err := url.Parse("gcp-kms:///" + randName(t) + "?AUTH=implicit&ENDPOINT=http://" + srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		pk, err := gcpkms.Open(u)
		if err != nil {
			t.Fatalf("open %s: %v", u, err)
		}
		k := pk.(*gcpkms.Key).WithRetry(fastRetry)
		t.Cleanup(func() { k.Close() })
		if !strings.Contains(k.URI(), "ENDPOINT=http") {
			t.Fatalf("URI %s lost its ENDPOINT", k.URI())
		}
		if _, err := k.Create(ctxT(t)); err != nil {
			t.Fatalf("create through ENDPOINT: %v", err)
		}
		if srv.Calls("CreateCryptoKey") == 0 {
			t.Fatal("the fake saw no CreateCryptoKey: the key did not go through ENDPOINT")
		}
		return k
	})
}

func runSuite(t *testing.T, keyOn func(testing.TB, *gcpkmsfake.Server) *gcpkms.Key) {
	servers := map[provider.Key]*gcpkmsfake.Server{}
	srvOf := func(t *testing.T, k provider.Key) *gcpkmsfake.Server {
		s, ok := servers[k]
		if !ok {
			t.Fatalf("no fake server for %s", k.URI())
		}
		return s
	}
	admin := func(k provider.Key) *gcpkms.Key { return k.(*gcpkms.Key) }
	providertest.Run(t, providertest.Harness{
		NewKey: func(t *testing.T) provider.Key {
			srv := gcpkmsfake.Start(t)
			k := keyOn(t, srv)
			servers[k] = srv
			return k
		},
		Rotate: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := admin(k).Rotate(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			return k
		},
		Disable: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := admin(k).Disable(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			return k
		},
		ScheduleDeletion: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := admin(k).ScheduleDeletion(ctxT(t), 30); err != nil {
				t.Fatal(err)
			}
			return k
		},
		Destroy: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := admin(k).Destroy(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			// Cloud KMS destroys at the scheduled time; the fake's hook
			// brings that time now.
			if err := srvOf(t, k).DestroyKeyNow(admin(k).Name()); err != nil {
				t.Fatal(err)
			}
			return k
		},
		DenyAccess: func(t *testing.T, k provider.Key) provider.Key {
			srvOf(t, k).DenyAccess(true)
			return k
		},
		Throttle: func(t *testing.T, k provider.Key) provider.Key {
			srvOf(t, k).Throttle(-1)
			return k
		},
		Down: func(t *testing.T, k provider.Key) provider.Key {
			srvOf(t, k).Stop()
			return k
		},
	})
}
