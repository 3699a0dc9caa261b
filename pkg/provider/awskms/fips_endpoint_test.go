package awskms

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// hostRecorder is an HTTP client that records where the SDK sends a request
// and answers nothing: no network is used.
type hostRecorder struct{ hosts []string }

var errNoNetwork = errors.New("no network in this test")

func (h *hostRecorder) Do(r *http.Request) (*http.Response, error) {
	h.hosts = append(h.hosts, r.URL.Host)
	return nil, errNoNetwork
}

// resolvedHost opens uri and returns the host the SDK's own endpoint
// resolution sends a KMS call to.
func resolvedHost(t *testing.T, uri string) string {
	t.Helper()
	u, _ := url.Parse(uri)
	k, err := Open(u)
	if err != nil {
		t.Fatalf("%s: %v", uri, err)
	}
	rec := &hostRecorder{}
	_, err = k.(*Key).client.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/k")}, func(o *kms.Options) {
		o.HTTPClient = rec
		o.RetryMaxAttempts = 1
	})
	if !errors.Is(err, errNoNetwork) || len(rec.hosts) != 1 {
		t.Fatalf("%s: %v after %d requests; want one request, refused by the recorder", uri, err, len(rec.hosts))
	}
	return rec.hosts[0]
}

// TestFIPSEndpoint: AWS_USE_FIPS_ENDPOINT, in the URI or (the SDK's own) in
// the environment, sends KMS calls to the region's FIPS endpoint; the URI's
// value wins over the environment's.
func TestFIPSEndpoint(t *testing.T) {
	// Keep the SDK off the user's shared config.
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	const creds = "&AUTH=specified&AWS_ACCESS_KEY_ID=" + testAccessKeyID + "&AWS_SECRET_ACCESS_KEY=" + testSecretKey
	base := "aws-kms:///alias/k?REGION="
	for _, tc := range []struct {
		env, region, param, want string
	}{
		{"", "us-east-1", "", "kms.us-east-1.amazonaws.com"},
		{"", "us-east-1", "&AWS_USE_FIPS_ENDPOINT=true", "kms-fips.us-east-1.amazonaws.com"},
		{"", "us-gov-west-1", "&AWS_USE_FIPS_ENDPOINT=true", "kms-fips.us-gov-west-1.amazonaws.com"},
		{"", "ca-central-1", "&AWS_USE_FIPS_ENDPOINT=false", "kms.ca-central-1.amazonaws.com"},
		{"true", "us-west-2", "", "kms-fips.us-west-2.amazonaws.com"},
		{"true", "us-west-2", "&AWS_USE_FIPS_ENDPOINT=false", "kms.us-west-2.amazonaws.com"},
		{"false", "us-west-2", "&AWS_USE_FIPS_ENDPOINT=true", "kms-fips.us-west-2.amazonaws.com"},
	} {
		t.Setenv("AWS_USE_FIPS_ENDPOINT", tc.env)
		uri := base + tc.region + tc.param + creds
		if got := resolvedHost(t, uri); got != tc.want {
			t.Errorf("AWS_USE_FIPS_ENDPOINT=%q in the environment, REGION=%s%s: endpoint %s, want %s", tc.env, tc.region, tc.param, got, tc.want)
		}
	}
}

func TestFIPSEndpointParamErrors(t *testing.T) {
	for param, want := range map[string]string{
		"&AWS_USE_FIPS_ENDPOINT=yes":                                       "must be true or false",
		"&AWS_USE_FIPS_ENDPOINT=true&AWS_ENDPOINT=https://kms.example.com": "both choose the endpoint",
	} {
		u, _ := url.Parse("aws-kms:///alias/k?REGION=us-east-1&AUTH=implicit" + param)
		_, err := Open(u)
		if provider.Classify(err) != provider.Misuse || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want a MISUSE error saying %q", param, err, want)
		}
	}
	// AWS_USE_FIPS_ENDPOINT=false with an explicit endpoint is fine.
	u, _ := url.Parse("aws-kms:///alias/k?REGION=us-east-1&AUTH=implicit&AWS_USE_FIPS_ENDPOINT=false&AWS_ENDPOINT=https://kms.example.com")
	if _, err := Open(u); err != nil {
		t.Fatal(err)
	}
}
