package provider

import (
	"strings"
	"testing"
)

func TestSecretsIn(t *testing.T) {
	for raw, want := range map[string]string{
		"aws-kms:///alias/k?REGION=us-east-1&AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY=s": "AWS_SECRET_ACCESS_KEY=",
		"aws-kms:///alias/k?AWS_SESSION_TOKEN=t&AWS_SECRET_ACCESS_KEY=s":                  "AWS_SECRET_ACCESS_KEY=,AWS_SESSION_TOKEN=",
		"gcp-kms:///projects/p/locations/l/keyRings/r/cryptoKeys/k?CREDENTIALS=e30":       "CREDENTIALS=",
		"vault-transit://u:pw@h:8200/transit/keys/k":                                      "a password",
		"vault-transit://h:8200/transit/keys/k?token=x":                                   "token=",
		"aws-kms:///alias/k?REGION=us-east-1&AUTH=implicit":                               "",
		"file-kms:///tmp/k": "",
		"not a uri":         "",
	} {
		if got := strings.Join(SecretsIn(raw), ","); got != want {
			t.Errorf("SecretsIn(%q) = %q, want %q", raw, got, want)
		}
	}
}
