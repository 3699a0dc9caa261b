package cloud_test

import (
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

const (
	awsARN  = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	awsRole = "arn:aws:iam::111122223333:role/crdb-cmek"
	gcpName = "projects/acme/locations/us-east1/keyRings/crdb/cryptoKeys/cmek"
	gcpSA   = "crdb-cmek@acme.iam.gserviceaccount.com"
)

func TestSpecFromURI(t *testing.T) {
	for _, tc := range []struct {
		uri, principal string
		want           cloud.KeySpec
	}{
		{"aws-kms:///" + awsARN + "?REGION=us-east-1", awsRole, cloud.KeySpec{Type: cloud.KeyTypeAWSKMS, URI: awsARN, AuthPrincipal: awsRole}},
		{"aws-kms:///" + awsARN + "?REGION=us-east-1&AUTH=implicit", awsRole, cloud.KeySpec{Type: cloud.KeyTypeAWSKMS, URI: awsARN, AuthPrincipal: awsRole}},
		{"aws-kms:///" + awsARN, awsRole, cloud.KeySpec{Type: cloud.KeyTypeAWSKMS, URI: awsARN, AuthPrincipal: awsRole}},
		{"aws-kms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/abc", "arn:aws-us-gov:iam::111122223333:role/r",
			cloud.KeySpec{Type: cloud.KeyTypeAWSKMS, URI: "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/abc", AuthPrincipal: "arn:aws-us-gov:iam::111122223333:role/r"}},
		{"gcp-kms:///" + gcpName, gcpSA, cloud.KeySpec{Type: cloud.KeyTypeGCPCloudKMS, URI: gcpName, AuthPrincipal: gcpSA}},
		{"gcp-kms:///" + gcpName + "?AUTH=implicit", gcpSA, cloud.KeySpec{Type: cloud.KeyTypeGCPCloudKMS, URI: gcpName, AuthPrincipal: gcpSA}},
	} {
		got, err := cloud.SpecFromURI(tc.uri, tc.principal)
		if err != nil || got != tc.want {
			t.Errorf("SpecFromURI(%q) = %+v, %v; want %+v", tc.uri, got, err, tc.want)
		}
	}
}

func TestSpecFromURIRefuses(t *testing.T) {
	for _, tc := range []struct {
		uri, principal, want string
	}{
		{"aws-kms:///1234abcd-12ab-34cd-56ef-1234567890ab?REGION=us-east-1", awsRole, "needs the full key ARN"},
		{"aws-kms:///alias/crdb?REGION=us-east-1", awsRole, "an alias"},
		{"aws-kms:///arn:aws:kms:us-east-1:111122223333:alias/crdb", awsRole, "an alias"},
		{"aws-kms:///arn:aws:kms:us-east-1:1111:key/x", awsRole, "malformed ARN"},
		{"aws-kms:///" + awsARN + "?REGION=eu-west-1", awsRole, "does not match"},
		{"aws-kms:///" + awsARN, "", "auth principal is required"},
		{"aws-kms:///" + awsARN, gcpSA, "not an IAM role ARN"},
		{"gcp-kms:///" + gcpName + "/cryptoKeyVersions/3", gcpSA, "not a version"},
		{"gcp-kms:///projects/acme/keyRings/crdb", gcpSA, "expected projects/P"},
		{"gcp-kms:///" + gcpName, "", "auth principal is required"},
		{"gcp-kms:///" + gcpName, awsRole, "not a service account"},
		{"file-kms:///tmp/keys/cmek", "", "has no Azure provider"},
		{"vault-transit://vault:8200/transit/keys/cmek?TOKEN=hvs.s3cr3t", "", "has no Azure provider"},
		{"vault-keymgmt://vault:8200/keymgmt/key/cmek", "", "resolved to its AWS or GCP key"},
		{"arn:aws:kms:us-east-1:111122223333:key/x", awsRole, "has no Azure provider"}, // an ARN is not one of our URIs
		{"not a uri", "", "cannot parse"},
	} {
		_, err := cloud.SpecFromURI(tc.uri, tc.principal)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SpecFromURI(%q, %q): %v, want an error with %q", tc.uri, tc.principal, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows a token: %v", err)
		}
	}
}

func TestURIFromSpec(t *testing.T) {
	for _, tc := range []struct {
		spec cloud.KeySpec
		want string
	}{
		{cloud.KeySpec{Type: cloud.KeyTypeAWSKMS, URI: awsARN, AuthPrincipal: awsRole}, "aws-kms:///" + awsARN + "?REGION=us-east-1"},
		{cloud.KeySpec{Type: cloud.KeyTypeGCPCloudKMS, URI: gcpName, AuthPrincipal: gcpSA}, "gcp-kms:///" + gcpName},
		{cloud.KeySpec{Type: cloud.KeyTypeAzureKeyVault, URI: "https://v.vault.azure.net/keys/k"}, "azure_key_vault:https://v.vault.azure.net/keys/k"},
	} {
		got := cloud.URIFromSpec(tc.spec)
		if got != tc.want {
			t.Errorf("URIFromSpec(%+v) = %q, want %q", tc.spec, got, tc.want)
			continue
		}
		if tc.spec.Type == cloud.KeyTypeAzureKeyVault {
			continue
		}
		back, err := cloud.SpecFromURI(got, tc.spec.AuthPrincipal)
		if err != nil || back != tc.spec {
			t.Errorf("round trip of %+v: %+v, %v", tc.spec, back, err)
		}
	}
}

func FuzzSpecFromURI(f *testing.F) {
	f.Add("aws-kms:///"+awsARN+"?REGION=us-east-1", awsRole)
	f.Add("gcp-kms:///"+gcpName, gcpSA)
	f.Add("vault-keymgmt://v/k", "")
	f.Fuzz(func(t *testing.T, uri, principal string) {
		s, err := cloud.SpecFromURI(uri, principal)
		if err != nil {
			return
		}
		if s.URI == "" || s.AuthPrincipal != principal {
			t.Fatalf("accepted %q as %+v", uri, s)
		}
		back, err := cloud.SpecFromURI(cloud.URIFromSpec(s), principal)
		if err != nil || back != s {
			t.Fatalf("round trip of %+v: %+v, %v", s, back, err)
		}
	})
}
