package gcpkms_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/providertest"
)

// TestSuiteRealCloudKMS runs the provider suite against real Cloud KMS when
// CMEKCTL_TEST_GCP_KEY names a gcp-kms URI (its AUTH and CREDENTIALS are
// used). The key itself is never touched: each row creates a sibling key
// "<K>-t<random>" in the same key ring and schedules its destruction at the
// end (Cloud KMS keeps the key names). The fake-server suite (TestSuite)
// always runs; this one is the optional run the issue asks for.
func TestSuiteRealCloudKMS(t *testing.T) {
	raw := os.Getenv("CMEKCTL_TEST_GCP_KEY")
	if raw == "" {
		t.Skip("CMEKCTL_TEST_GCP_KEY is not set: the real Cloud KMS run is optional; TestSuite covers the fake")
	}
	base, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("CMEKCTL_TEST_GCP_KEY: %s", provider.RedactURI(raw))
	}
	cfg, err := gcpkms.ParseURI(base)
	if err != nil {
		t.Fatal(err)
	}
	newKey := func(t *testing.T) provider.Key {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		u := *base
		u.Path = "/" + cfg.KeyName + "-t" + hex.EncodeToString(b)
		k, err := gcpkms.Open(&u)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := provider.AsAdmin(k)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := a.Create(ctx); err != nil {
			t.Fatalf("create %s: %v", path.Base(u.Path), err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := a.ScheduleDeletion(ctx, 0); err != nil && !strings.Contains(err.Error(), "PERMISSION_DENIED") {
				t.Errorf("clean up %s: %v", path.Base(u.Path), err)
			}
			k.(*gcpkms.Key).Close()
		})
		return k
	}
	admin := func(t *testing.T, k provider.Key, f func(provider.Admin, context.Context) error) provider.Key {
		a, _ := provider.AsAdmin(k)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f(a, ctx); err != nil {
			t.Fatal(err)
		}
		return k
	}
	providertest.Run(t, providertest.Harness{
		NewKey: newKey,
		Rotate: func(t *testing.T, k provider.Key) provider.Key {
			return admin(t, k, func(a provider.Admin, c context.Context) error { _, err := a.Rotate(c); return err })
		},
		Disable: func(t *testing.T, k provider.Key) provider.Key {
			return admin(t, k, func(a provider.Admin, c context.Context) error { _, err := a.Disable(c); return err })
		},
		ScheduleDeletion: func(t *testing.T, k provider.Key) provider.Key {
			return admin(t, k, func(a provider.Admin, c context.Context) error { _, err := a.ScheduleDeletion(c, 0); return err })
		},
		Covered: map[string]string{
			"Destroy":    "TestSuite/Destroy and TestErrorTable/FAILED_PRECONDITION/DESTROYED (Cloud KMS destroys only after destroy_scheduled_duration)",
			"DenyAccess": "TestSuite/DenyAccess and TestErrorTable/PERMISSION_DENIED (needs an IAM change)",
			"Throttle":   "TestSuite/Throttle and TestErrorTable/RESOURCE_EXHAUSTED",
			"Down":       "TestSuite/Down and TestErrorTable/network",
		},
	})
}
