package awskms_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

// TestOpenRedacts: Open's URI() redacts AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN; the registry reaches Open by scheme.
func TestOpenRedacts(t *testing.T) {
	raw := "aws-kms:///alias/cmek?REGION=us-east-1&AUTH=specified&AWS_ACCESS_KEY_ID=AKIAEXAMPLE&AWS_SECRET_ACCESS_KEY=s3cr3tvalue&AWS_SESSION_TOKEN=t0kenvalue"
	k, err := registry.Default().Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.(*awskms.Key); !ok {
		t.Fatalf("registry opened %T", k)
	}
	u := k.URI()
	if strings.Contains(u, "s3cr3tvalue") || strings.Contains(u, "t0kenvalue") {
		t.Fatalf("URI() %q holds a secret", u)
	}
	if !strings.Contains(u, "AKIAEXAMPLE") || !strings.Contains(u, "alias/cmek") {
		t.Fatalf("URI() %q lost the key or the access key ID", u)
	}
	_, err = registry.Default().Open(strings.Replace(raw, "REGION=us-east-1&", "", 1))
	var pe *provider.Error
	if !errors.As(err, &pe) || strings.Contains(err.Error(), "s3cr3tvalue") {
		t.Fatalf("open without REGION: %v", err)
	}
}
