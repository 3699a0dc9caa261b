package provider

import "testing"

func TestIdentity(t *testing.T) {
	same := [][2]string{
		{"file-kms:///tmp/kms/east", "FILE-KMS:///tmp/kms/./east"},
		{"aws-kms:///alias/k?REGION=us-east-1&AUTH=specified&AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY=S",
			RedactURI("aws-kms:///alias/k?AWS_SECRET_ACCESS_KEY=S&REGION=us-east-1")},
		{"gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?AUTH=specified&CREDENTIALS=c2VjcmV0",
			"gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?AUTH=implicit"},
		{"vault-transit://Vault.example:8200/transit/keys/k", "vault-transit://vault.example:8200/transit/keys/k"},
	}
	for _, c := range same {
		if a, b := Identity(c[0]), Identity(c[1]); a != b || a == "" {
			t.Errorf("Identity(%q) = %q, Identity(%q) = %q: want equal", c[0], a, c[1], b)
		}
	}
	// Anything that changes where a request goes, or over what, differs.
	differ := [][2]string{
		{"vault-transit://vault.example:8200/transit/keys/k", "vault-transit://127.0.0.1:8200/transit/keys/k"},
		{"vault-transit://vault.example:8200/transit/keys/k", "vault-transit://vault.example:8200/transit/keys/k?tls=false"},
		{"aws-kms:///alias/k?REGION=us-east-1", "aws-kms:///alias/k?REGION=us-east-1&AWS_ENDPOINT=http://127.0.0.1:1"},
		{"aws-kms:///alias/k?REGION=us-east-1", "aws-kms:///alias/k?REGION=eu-west-1"},
		{"file-kms:///tmp/kms/east", "file-kms:///tmp/kms/west"},
		{"file-kms:///tmp/kms/east", "vault-transit:///tmp/kms/east"},
	}
	for _, c := range differ {
		if Identity(c[0]) == Identity(c[1]) {
			t.Errorf("Identity(%q) == Identity(%q): want different", c[0], c[1])
		}
	}
	for _, bad := range []string{"", "no scheme", "file-kms:opaque", "%zz"} {
		if id := Identity(bad); id != "" {
			t.Errorf("Identity(%q) = %q, want \"\"", bad, id)
		}
	}
}
