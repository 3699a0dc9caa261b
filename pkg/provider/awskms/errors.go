package awskms

import (
	"errors"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// providerName starts every error of this package.
const providerName = "aws kms"

// Error codes that AWS documents as common to every service (Common Errors
// page of the KMS API reference) and that the SDK has no typed error for.
const (
	codeAccessDenied     = "AccessDeniedException"
	codeThrottling       = "ThrottlingException"
	codeValidation       = "ValidationException"
	codeInternalFailure  = "InternalFailure"
	codeServiceUnavail   = "ServiceUnavailable"
	codeRequestTimeout   = "RequestTimeoutException"
	codeSTSAccessDenied  = "AccessDenied" // STS AssumeRole (awsQuery) spelling
	codeUnrecognized     = "UnrecognizedClientException"
	codeInvalidSignature = "InvalidSignatureException"
	codeIncompleteSig    = "IncompleteSignature"
	codeMissingAuth      = "MissingAuthenticationToken"
	codeExpiredToken     = "ExpiredTokenException"
	codeInvalidToken     = "InvalidClientTokenId"
)

// errorClasses is the error-class table (docs/providers/aws.md has it with its
// sources). NotFoundException is not in it: its class depends on a
// DescribeKey (see Key.notFound). Codes are taken from the SDK's typed errors
// where it has one, so a rename in the SDK cannot silently drop a row.
var errorClasses = map[string]provider.Class{
	// The key is there but cannot be used now: reversible.
	(&types.DisabledException{}).ErrorCode():        provider.Revoked,
	(&types.KMSInvalidStateException{}).ErrorCode(): provider.Revoked, // pending deletion, pending import
	codeAccessDenied:    provider.Revoked,
	codeSTSAccessDenied: provider.Revoked, // ASSUME_ROLE refused

	// The request is wrong: wrong key, wrong context, corrupt ciphertext, bad input.
	(&types.InvalidCiphertextException{}).ErrorCode():       provider.Misuse,
	(&types.IncorrectKeyException{}).ErrorCode():            provider.Misuse,
	(&types.InvalidKeyUsageException{}).ErrorCode():         provider.Misuse,
	(&types.InvalidGrantTokenException{}).ErrorCode():       provider.Misuse,
	(&types.InvalidArnException{}).ErrorCode():              provider.Misuse,
	(&types.AlreadyExistsException{}).ErrorCode():           provider.Misuse,
	(&types.InvalidAliasNameException{}).ErrorCode():        provider.Misuse,
	(&types.UnsupportedOperationException{}).ErrorCode():    provider.Misuse,
	(&types.DryRunOperationException{}).ErrorCode():         provider.Misuse,
	(&types.MalformedPolicyDocumentException{}).ErrorCode(): provider.Misuse,
	(&types.TagException{}).ErrorCode():                     provider.Misuse,
	codeValidation:                                          provider.Misuse,
	// The caller's credentials are wrong: a configuration error, which says
	// nothing about the key.
	codeUnrecognized:     provider.Misuse,
	codeInvalidSignature: provider.Misuse,
	codeIncompleteSig:    provider.Misuse,
	codeMissingAuth:      provider.Misuse,
	codeExpiredToken:     provider.Misuse,
	codeInvalidToken:     provider.Misuse,

	// Retry with backoff; never proof of anything.
	codeThrottling: provider.Transient,
	(&types.LimitExceededException{}).ErrorCode():     provider.Transient,
	(&types.KMSInternalException{}).ErrorCode():       provider.Transient,
	(&types.DependencyTimeoutException{}).ErrorCode(): provider.Transient,
	(&types.KeyUnavailableException{}).ErrorCode():    provider.Transient,
	codeInternalFailure:                               provider.Transient,
	codeServiceUnavail:                                provider.Transient,
	codeRequestTimeout:                                provider.Transient,
}

var codeNotFound = (&types.NotFoundException{}).ErrorCode()

// classOf returns the class of an SDK error without any further call: the
// table for API errors, Transient for 5xx, network errors and anything
// unexplained (never proof). NotFoundException comes back as Revoked here;
// Key.classify asks DescribeKey before calling it Destroyed.
func classOf(err error) provider.Class {
	if err == nil {
		return provider.ClassNone
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if c, ok := errorClasses[api.ErrorCode()]; ok {
			return c
		}
		if api.ErrorCode() == codeNotFound {
			return provider.Revoked
		}
	}
	// 5xx, 429, network errors, and any code not in the table: never proof.
	return provider.Transient
}

// newError turns an SDK error into a classified *provider.Error carrying
// AWS's code, message and request ID. It never quotes the URI: the SDK's
// errors name the endpoint and the operation, never the credentials.
func newError(op string, class provider.Class, err error) *provider.Error {
	e := &provider.Error{Provider: providerName, Op: op, Class: class, Err: err}
	var api smithy.APIError
	if errors.As(err, &api) {
		e.Code = api.ErrorCode()
		e.Message = api.ErrorMessage()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.RequestID = re.ServiceRequestID()
	}
	if e.Code == "" && e.Message == "" {
		e.Message = err.Error()
	}
	return e
}
