package gcpkms

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// providerName starts every error of this package.
const providerName = "gcp kms"

// CodeChecksum is the Code of a client-side CRC32C integrity failure (the
// response did not match its checksum, or the server did not confirm the
// checksums we sent). It is not a gRPC code: no KMS error was returned.
const CodeChecksum = "CRC32C_MISMATCH"

// reNotEnabled matches Cloud KMS's FAILED_PRECONDITION message for a key
// version that is not enabled: "<version> is not enabled, current state is: X."
var reNotEnabled = regexp.MustCompile(`is not enabled, current state is: ([A-Z_]+)`)

// classify maps a gRPC status code and message to an error class, by the
// table in docs/providers/gcp.md.
func classify(code codes.Code, msg string) provider.Class {
	switch code {
	case codes.OK:
		return provider.ClassNone
	case codes.FailedPrecondition:
		// Only the version state named by the KMS itself proves
		// destruction. DISABLED, DESTROY_SCHEDULED and every other
		// precondition (API not enabled for the project, a version in a
		// state that forbids the operation) are reversible.
		if m := reNotEnabled.FindStringSubmatch(msg); m != nil && m[1] == "DESTROYED" {
			return provider.Destroyed
		}
		return provider.Revoked
	case codes.PermissionDenied, codes.Unauthenticated:
		// PERMISSION_DENIED is also what a caller sees for a key that does
		// not exist ("... (or it may not exist)").
		return provider.Revoked
	case codes.NotFound:
		// Cloud KMS never deletes key rings or keys, only versions' key
		// material (which then reads DESTROYED), so NOT_FOUND proves no
		// destruction: the name is wrong or not visible to the caller.
		return provider.Revoked
	case codes.InvalidArgument:
		// Cloud KMS answers INVALID_ARGUMENT when a request checksum we
		// sent does not match what it received; Google's guidance is to
		// check our checksum and retry a limited number of times. We
		// compute the checksum just before sending, so such an error is
		// corruption in transit.
		if isChecksumMessage(msg) {
			return provider.Transient
		}
		return provider.Misuse
	case codes.OutOfRange, codes.AlreadyExists, codes.Unimplemented:
		return provider.Misuse
	case codes.ResourceExhausted, codes.Unavailable, codes.DeadlineExceeded,
		codes.Internal, codes.Aborted, codes.Canceled, codes.Unknown, codes.DataLoss:
		return provider.Transient
	}
	return provider.Transient // unknown: never proof
}

func isChecksumMessage(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "crc32c") || strings.Contains(m, "checksum")
}

// wrapErr turns an error of a Cloud KMS call into a classified
// *provider.Error. Errors that are not gRPC statuses (credentials lookup,
// network) are Transient when they are network failures or deadlines,
// Misuse (configuration) otherwise.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *provider.Error
	if errors.As(err, &pe) {
		return err
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return &provider.Error{Provider: providerName, Op: op, Class: classify(s.Code(), s.Message()),
			Code: CodeName(s.Code()), Message: oneLine(s.Message()), Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &provider.Error{Provider: providerName, Op: op, Class: provider.Transient, Code: CodeName(codes.DeadlineExceeded), Message: oneLine(err.Error()), Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &provider.Error{Provider: providerName, Op: op, Class: provider.Transient, Code: CodeName(codes.Canceled), Message: oneLine(err.Error()), Err: err}
	}
	class := provider.Misuse
	if provider.IsTransientNetwork(err) {
		class = provider.Transient
	}
	if s, ok := status.FromError(err); ok { // codes.Unknown
		return &provider.Error{Provider: providerName, Op: op, Class: provider.Transient, Code: CodeName(s.Code()), Message: oneLine(s.Message()), Err: err}
	}
	return &provider.Error{Provider: providerName, Op: op, Class: class, Message: oneLine(err.Error()), Err: err}
}

// codeNames are the canonical gRPC code names, as Google's documentation
// and REST errors spell them.
var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

// CodeName is the canonical name of a gRPC code (e.g. FAILED_PRECONDITION),
// the Code of this package's errors.
func CodeName(c codes.Code) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return c.String()
}

// oneLine keeps an error on one line, as cmekctl's errors are.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
