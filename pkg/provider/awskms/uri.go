package awskms

import (
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Scheme is the URI scheme of AWS KMS keys.
const Scheme = "aws-kms"

// URI query parameters, as CockroachDB's KMS URIs spell them.
const (
	paramRegion     = "REGION"
	paramAuth       = "AUTH"
	paramAssumeRole = "ASSUME_ROLE"
	paramEndpoint   = "AWS_ENDPOINT"
	// paramSTSEndpoint is where GetCallerIdentity goes (the caller's
	// account is checked against the key's when a wrap is pinned and when
	// destruction is proven), as AWS_ENDPOINT is for KMS. Not CockroachDB's.
	paramSTSEndpoint  = "AWS_STS_ENDPOINT"
	paramAccessKeyID  = "AWS_ACCESS_KEY_ID"
	paramSecretKey    = "AWS_SECRET_ACCESS_KEY"
	paramSessionToken = "AWS_SESSION_TOKEN"
	// paramUseFIPS: true sends every KMS (and STS) call to the region's
	// FIPS endpoint, false never; absent, the SDK's AWS_USE_FIPS_ENDPOINT
	// (environment or shared config) decides. The same name as the SDK's.
	paramUseFIPS = "AWS_USE_FIPS_ENDPOINT"

	authImplicit  = "implicit"
	authSpecified = "specified"
)

var allowedParams = []string{paramRegion, paramAuth, paramAssumeRole, paramEndpoint, paramSTSEndpoint, paramAccessKeyID, paramSecretKey, paramSessionToken, paramUseFIPS}

// uriConfig is a parsed aws-kms URI. Its secret fields never print: it has no
// String method and no error built from it quotes them.
type uriConfig struct {
	keyID    string                // key ARN, key ID, alias/name or alias ARN; "" when the URI names no key yet
	region   string                // REGION
	auth     string                // implicit or specified
	roles    []string              // ASSUME_ROLE, a comma-separated chain of role ARNs
	endpoint string                // AWS_ENDPOINT
	stsURL   string                // AWS_STS_ENDPOINT
	fips     aws.FIPSEndpointState // AWS_USE_FIPS_ENDPOINT; unset: the SDK's configuration

	accessKeyID, secretKey, sessionToken string // AUTH=specified
	redacted                             string // the URI with secrets redacted
}

func uriError(format string, args ...any) error {
	return provider.Errorf(providerName, "parse uri", provider.Misuse, "", format, args...)
}

// parseURI checks u against CockroachDB's aws-kms URI conventions:
// aws-kms:///<key ARN | key id | alias/name>?REGION=..&AUTH=implicit|specified&ASSUME_ROLE=..&AWS_ENDPOINT=..
// Errors name parameters, never their values.
func parseURI(u *url.URL) (*uriConfig, error) {
	if u == nil {
		return nil, uriError("no URI")
	}
	if u.Scheme != Scheme {
		return nil, uriError("scheme %q is not %s", u.Scheme, Scheme)
	}
	if u.Opaque != "" || u.Host != "" || u.User != nil {
		return nil, uriError("the key goes in the path after three slashes: %s:///<key ARN | key id | alias/name>?REGION=..", Scheme)
	}
	if u.Fragment != "" {
		return nil, uriError("unexpected fragment in URI")
	}
	if err := provider.CheckParams(providerName, u, allowedParams...); err != nil {
		return nil, err
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, uriError("malformed query string (check the percent-escapes)")
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return nil, uriError("URI parameter %s is given %d times", k, len(vs))
		}
	}
	c := &uriConfig{
		keyID:        strings.TrimPrefix(u.Path, "/"),
		region:       q.Get(paramRegion),
		auth:         q.Get(paramAuth),
		endpoint:     q.Get(paramEndpoint),
		stsURL:       q.Get(paramSTSEndpoint),
		accessKeyID:  q.Get(paramAccessKeyID),
		secretKey:    q.Get(paramSecretKey),
		sessionToken: q.Get(paramSessionToken),
		redacted:     provider.RedactURI(u.String()),
	}
	if strings.ContainsAny(c.keyID, "?#\x00 \t\r\n") {
		return nil, uriError("key identifier contains a character AWS does not allow")
	}
	if c.region == "" {
		return nil, uriError("URI parameter REGION is required (e.g. REGION=us-east-1)")
	}
	if strings.ContainsAny(c.region, "/?#:@ \t\r\n\x00") {
		return nil, uriError("REGION is not a region name (e.g. us-east-1)")
	}
	if r := q.Get(paramAssumeRole); r != "" {
		for _, role := range strings.Split(r, ",") {
			if role == "" {
				return nil, uriError("ASSUME_ROLE has an empty role in its chain")
			}
			c.roles = append(c.roles, role)
		}
	}
	for _, e := range []struct{ param, value, example string }{
		{paramEndpoint, c.endpoint, "https://kms.us-east-1.amazonaws.com"},
		{paramSTSEndpoint, c.stsURL, "https://sts.us-east-1.amazonaws.com"},
	} {
		if err := checkEndpoint(e.param, e.value, e.example); err != nil {
			return nil, err
		}
	}
	switch v := q.Get(paramUseFIPS); v {
	case "":
	case "true":
		c.fips = aws.FIPSEndpointStateEnabled
	case "false":
		c.fips = aws.FIPSEndpointStateDisabled
	default:
		return nil, uriError("AWS_USE_FIPS_ENDPOINT must be true or false")
	}
	if c.fips == aws.FIPSEndpointStateEnabled && c.endpoint != "" {
		return nil, uriError("AWS_USE_FIPS_ENDPOINT=true and AWS_ENDPOINT both choose the endpoint: give one (AWS_ENDPOINT=https://kms-fips.REGION.amazonaws.com, say)")
	}
	// CockroachDB defaults AUTH to specified.
	if c.auth == "" {
		c.auth = authSpecified
	}
	switch c.auth {
	case authSpecified:
		if c.accessKeyID == "" || c.secretKey == "" {
			return nil, uriError("AUTH=specified needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the URI (or use AUTH=implicit for the SDK's credential chain)")
		}
	case authImplicit:
		if c.accessKeyID != "" || c.secretKey != "" || c.sessionToken != "" {
			return nil, uriError("AUTH=implicit takes no AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN (use AUTH=specified)")
		}
	default:
		return nil, uriError("AUTH must be implicit or specified")
	}
	return c, nil
}

// checkEndpoint checks an endpoint parameter: empty, or an http(s) URL
// without credentials.
func checkEndpoint(param, value, example string) error {
	if value == "" {
		return nil
	}
	e, err := url.Parse(value)
	if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
		return uriError("%s must be an http or https URL (e.g. %s)", param, example)
	}
	if e.User != nil {
		return uriError("%s must not carry credentials", param)
	}
	return nil
}

// isAlias reports whether id names an alias (alias/name or an alias ARN).
func isAlias(id string) bool {
	return strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/")
}
