package commands

import (
	"errors"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// uriError classifies a failure to open a KMS URI: an unknown scheme
// (s3:///x), a URI the provider cannot parse (aws-kms without REGION=) is a
// bad argument, exit 2, never a KMS verdict such as "tampered ciphertext".
// A provider error from a real call (loading credentials) keeps its class.
func uriError(err error) error {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.Op != "parse uri" {
		return err
	}
	return &ExitError{Code: ExitUsage, Err: err, Hint: "check the CMEK URI; cmekctl kms --help lists the forms"}
}

// notFoundHint is the advice for a KMS that knows no key at the URI.
const notFoundHint = "the KMS has no key at that URI: check it for a typo (name, account, region, project), or create the key: cmekctl kms create URI"

// isKeyNotFound: the KMS answered that no key exists at the URI (file-kms
// NotFound, AWS NotFoundException, GCP NOT_FOUND). Its class stays what the
// provider says (never proof of destruction); only the advice differs.
func isKeyNotFound(err error) bool {
	var pe *provider.Error
	if !errors.As(err, &pe) {
		return false
	}
	c := strings.ToLower(strings.ReplaceAll(pe.Code, "_", ""))
	return strings.HasPrefix(c, "notfound")
}
