package commands

import "github.com/cmekctl/cmekctl/pkg/provider"

// redact is a URI as every verb prints it, shared by all of them:
// provider.RedactURI hides userinfo passwords and the values of secret
// query parameters (CREDENTIALS=, AWS secrets, Vault tokens).
func redact(uri string) string { return provider.RedactURI(uri) }
