package cloud

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Compiled on first use, not at every cmekctl start (issue 18).
var (
	// arn:PARTITION:kms:REGION:ACCOUNT:key/ID
	awsKeyARN = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws(-[a-z]+)*:kms:([a-z0-9-]+):([0-9]{12}):key/([A-Za-z0-9-]+)$`)
	})
	// projects/P/locations/L/keyRings/R/cryptoKeys/K
	gcpKeyName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$`)
	})
)

// SpecFromURI turns one of cmekctl's key URIs into the API's key spec:
//
//	aws-kms:///arn:aws:kms:R:ACCOUNT:key/ID?REGION=R  → {AWS_KMS, the ARN}
//	gcp-kms:///projects/P/locations/L/keyRings/K/cryptoKeys/C → {GCP_CLOUD_KMS, the resource name}
//
// The API needs the full key ARN: a bare key ID or an alias is refused. A
// GCP key version is refused (the API takes the key; rotation picks the
// current version). The Cloud's key types are AWS_KMS, GCP_CLOUD_KMS and
// AZURE_KEY_VAULT (and NULL_KMS); cmekctl has no Azure provider to check an
// Azure key with, so it takes aws-kms:// and gcp-kms:// URIs only: file-kms
// and vault-transit URIs are refused, and a vault-keymgmt:// URI must be
// resolved to its AWS or GCP key by the caller first. authPrincipal (an IAM
// role ARN for AWS, a service account email for GCP) is required.
func SpecFromURI(uri, authPrincipal string) (KeySpec, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return KeySpec{}, fmt.Errorf("cloud api: key uri: cannot parse %q: expected aws-kms:///ARN or gcp-kms:///projects/P/locations/L/keyRings/R/cryptoKeys/K", redactKeyURI(uri))
	}
	switch u.Scheme {
	case "aws-kms":
		return awsSpec(u, authPrincipal)
	case "gcp-kms":
		return gcpSpec(u, authPrincipal)
	case "vault-keymgmt":
		return KeySpec{}, fmt.Errorf("cloud api: key uri %s: a vault-keymgmt key must be resolved to its AWS or GCP key before the Cloud API call", redactKeyURI(uri))
	default:
		return KeySpec{}, fmt.Errorf("cloud api: key uri %s: the CockroachDB Cloud takes AWS KMS, GCP Cloud KMS and Azure Key Vault keys, not %s; cmekctl passes it aws-kms:// and gcp-kms:// keys, and has no Azure provider to check an Azure Key Vault key with", redactKeyURI(uri), u.Scheme)
	}
}

func awsSpec(u *url.URL, principal string) (KeySpec, error) {
	id := strings.TrimPrefix(u.Opaque+u.Path, "/")
	if u.Host != "" {
		id = u.Host + u.Path
	}
	m := awsKeyARN().FindStringSubmatch(id)
	if m == nil {
		what := "a key ID"
		switch {
		case strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/"):
			what = "an alias"
		case strings.HasPrefix(id, "arn:"):
			what = "a malformed ARN"
		}
		return KeySpec{}, fmt.Errorf("cloud api: key uri aws-kms:///%s: %s: the Cloud API needs the full key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)", id, what)
	}
	if r := u.Query().Get("REGION"); r != "" && r != m[2] {
		return KeySpec{}, fmt.Errorf("cloud api: key uri aws-kms:///%s: REGION=%s does not match the ARN's region %s", id, r, m[2])
	}
	if principal == "" {
		return KeySpec{}, fmt.Errorf("cloud api: key %s: an auth principal is required: the ARN of an IAM role that trusts the cluster's account", id)
	}
	if !strings.HasPrefix(principal, "arn:aws") || !strings.Contains(principal, ":iam::") {
		return KeySpec{}, fmt.Errorf("cloud api: key %s: auth principal %q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", id, principal)
	}
	return KeySpec{Type: KeyTypeAWSKMS, URI: id, AuthPrincipal: principal}, nil
}

func gcpSpec(u *url.URL, principal string) (KeySpec, error) {
	name := strings.Trim(u.Host+u.Path, "/")
	if strings.Contains(name, "/cryptoKeyVersions/") {
		return KeySpec{}, fmt.Errorf("cloud api: key uri gcp-kms:///%s: name the key, not a version: the API uses the key's primary version", name)
	}
	if !gcpKeyName().MatchString(name) {
		return KeySpec{}, fmt.Errorf("cloud api: key uri gcp-kms:///%s: expected projects/P/locations/L/keyRings/R/cryptoKeys/K", name)
	}
	if principal == "" {
		return KeySpec{}, fmt.Errorf("cloud api: key %s: an auth principal is required: the email of a service account the cluster can impersonate", name)
	}
	if !strings.Contains(principal, "@") {
		return KeySpec{}, fmt.Errorf("cloud api: key %s: auth principal %q is not a service account email", name, principal)
	}
	return KeySpec{Type: KeyTypeGCPCloudKMS, URI: name, AuthPrincipal: principal}, nil
}

// URIFromSpec turns the API's key spec back into cmekctl's URI, so that a
// key the API reports can be shown and described through its provider:
// AWS_KMS → aws-kms:///ARN?REGION=R, GCP_CLOUD_KMS → gcp-kms:///NAME. A key
// type cmekctl has no provider for prints as type:uri (e.g.
// azure_key_vault:https://...).
func URIFromSpec(s KeySpec) string {
	switch s.Type {
	case KeyTypeAWSKMS:
		out := "aws-kms:///" + s.URI
		if m := awsKeyARN().FindStringSubmatch(s.URI); m != nil {
			out += "?REGION=" + m[2]
		}
		return out
	case KeyTypeGCPCloudKMS:
		return "gcp-kms:///" + strings.TrimPrefix(s.URI, "/")
	default:
		return strings.ToLower(string(s.Type)) + ":" + s.URI
	}
}

// redactKeyURI hides userinfo and every query value of a URI the Cloud
// cannot take: such URIs may carry tokens (vault-transit's, for instance).
func redactKeyURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Redacted
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q.Set(k, Redacted)
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
