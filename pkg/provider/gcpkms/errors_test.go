package gcpkms_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms"
	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
)

// expectErr checks an error's class, KMS code and message (substring).
func expectErr(t *testing.T, err error, class provider.Class, code, msg string) *provider.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %s", class, code)
	}
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %q (%T) is not a *provider.Error", err, err)
	}
	if pe.Class != class || pe.Code != code {
		t.Fatalf("error %q: class %s code %s, want %s %s", err, pe.Class, pe.Code, class, code)
	}
	if !strings.Contains(pe.Message, msg) {
		t.Fatalf("error %q: message %q lacks %q", err, pe.Message, msg)
	}
	if !strings.HasPrefix(err.Error(), "gcp kms: ") {
		t.Fatalf("error %q does not start with the provider name", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q spans lines", err)
	}
	return pe
}

// TestErrorTable drives every row of the table in docs/providers/gcp.md
// over the wire: the fake answers with Cloud KMS's status code and message
// and the adapter must class it.
func TestErrorTable(t *testing.T) {
	pt := []byte("0123456789abcdef0123456789abcdef")
	aad := provider.Binding{"cluster": "c1", "region": "r1"}.AAD()

	// wrapped returns a fresh key, its server and a ciphertext under it.
	wrapped := func(t *testing.T) (*gcpkmsfake.Server, *gcpkms.Key, provider.Wrapped) {
		srv, k := newKey(t)
		w, err := k.Wrap(ctxT(t), pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		return srv, k, w
	}

	t.Run("FAILED_PRECONDITION/DESTROYED", func(t *testing.T) {
		srv, k, w := wrapped(t)
		if err := srv.DestroyNow(w.KeyVersion); err != nil {
			t.Fatal(err)
		}
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Destroyed, "FAILED_PRECONDITION", "is not enabled, current state is: DESTROYED")
		// Encrypt under a destroyed primary fails the same way.
		_, err = k.Wrap(ctxT(t), pt, aad)
		expectErr(t, err, provider.Destroyed, "FAILED_PRECONDITION", "current state is: DESTROYED")
	})
	t.Run("FAILED_PRECONDITION/DISABLED", func(t *testing.T) {
		_, k, w := wrapped(t)
		if _, err := k.Disable(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Revoked, "FAILED_PRECONDITION", "is not enabled, current state is: DISABLED")
	})
	t.Run("FAILED_PRECONDITION/DESTROY_SCHEDULED", func(t *testing.T) {
		_, k, w := wrapped(t)
		if _, err := k.ScheduleDeletion(ctxT(t), 0); err != nil {
			t.Fatal(err)
		}
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Revoked, "FAILED_PRECONDITION", "is not enabled, current state is: DESTROY_SCHEDULED")
	})
	t.Run("FAILED_PRECONDITION/other", func(t *testing.T) {
		// A state change the version's state forbids (Cloud KMS: "has
		// value X in field crypto_key_version.state") is not proof.
		srv, k, w := wrapped(t)
		srv.FailNext(1, codes.FailedPrecondition, "The request cannot be fulfilled. Resource "+w.KeyVersion+" has value DESTROYED in field crypto_key_version.state.")
		_, err := k.Describe(ctxT(t))
		expectErr(t, err, provider.Revoked, "FAILED_PRECONDITION", "has value DESTROYED")
	})
	t.Run("PERMISSION_DENIED/iam", func(t *testing.T) {
		srv, k, w := wrapped(t)
		srv.DenyAccess(true)
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Revoked, "PERMISSION_DENIED", "cloudkms.cryptoKeyVersions.useToDecrypt")
		if n := srv.Calls("Decrypt"); n != 1 {
			t.Fatalf("PERMISSION_DENIED was retried: %d Decrypt calls", n)
		}
	})
	t.Run("PERMISSION_DENIED/missing key", func(t *testing.T) {
		srv, k, w := wrapped(t)
		missing := gcpkms.New(srv.Client(ctxT(t)), k.Name()+"-gone", "gcp-kms:///"+k.Name()+"-gone?AUTH=implicit").WithRetry(fastRetry)
		_, err := missing.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Revoked, "PERMISSION_DENIED", "(or it may not exist)")
	})
	t.Run("NOT_FOUND", func(t *testing.T) {
		srv, k := newKey(t)
		missing := gcpkms.New(srv.Client(ctxT(t)), k.Name()+"-gone", "gcp-kms:///"+k.Name()+"-gone?AUTH=implicit").WithRetry(fastRetry)
		// Describe reports a missing key as a state (as awskms and
		// vaulttransit do), so a caller may create it.
		st, err := missing.Describe(ctxT(t))
		if err != nil || st.State != provider.StateNotFound || st.Details["code"] != "NOT_FOUND" {
			t.Fatalf("describe of a missing key: %+v, %v", st, err)
		}
		// The provider field is the scheme, as for a key that exists.
		if st.Provider != gcpkms.Scheme {
			t.Errorf("provider %q for a missing key, want %q", st.Provider, gcpkms.Scheme)
		}
		// Other calls on it fail REVOKED: NOT_FOUND proves nothing.
		_, err = missing.Rotate(ctxT(t))
		expectErr(t, err, provider.Revoked, "NOT_FOUND", "")
	})
	t.Run("UNAUTHENTICATED", func(t *testing.T) {
		srv, k, w := wrapped(t)
		srv.FailNext(-1, codes.Unauthenticated, "Request had invalid authentication credentials.")
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Revoked, "UNAUTHENTICATED", "invalid authentication credentials")
	})
	t.Run("INVALID_ARGUMENT/ciphertext invalid", func(t *testing.T) {
		_, k, w := wrapped(t)
		w.Ciphertext = append([]byte(nil), w.Ciphertext...)
		w.Ciphertext[len(w.Ciphertext)-1] ^= 0x80
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Misuse, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.")
	})
	t.Run("INVALID_ARGUMENT/AAD mismatch", func(t *testing.T) {
		srv, k, w := wrapped(t)
		_, err := k.Unwrap(ctxT(t), w, provider.Binding{"cluster": "c1", "region": "r2"}.AAD())
		expectErr(t, err, provider.Misuse, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid.")
		if n := srv.Calls("Decrypt"); n != 1 {
			t.Fatalf("MISUSE was retried: %d Decrypt calls", n)
		}
	})
	t.Run("INVALID_ARGUMENT/wrong key", func(t *testing.T) {
		srv, _, w := wrapped(t)
		other := keyOn(t, srv) // same server: the ciphertext names a version of another key
		_, err := other.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Misuse, "INVALID_ARGUMENT", "verify that 'name' refers to the correct CryptoKey")
	})
	t.Run("INVALID_ARGUMENT/checksum", func(t *testing.T) {
		srv, k, w := wrapped(t)
		srv.CorruptRequest(-1)
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Transient, "INVALID_ARGUMENT", "checksum")
		if n := srv.Calls("Decrypt"); n != fastRetry.Attempts {
			t.Fatalf("checksum error: %d Decrypt calls, want %d (bounded retries)", n, fastRetry.Attempts)
		}
	})
	t.Run("ALREADY_EXISTS", func(t *testing.T) {
		_, k := newKey(t)
		_, err := k.Create(ctxT(t))
		expectErr(t, err, provider.Misuse, "ALREADY_EXISTS", "already exists")
	})
	for _, row := range []struct {
		code codes.Code
		name string
		msg  string
	}{
		{codes.ResourceExhausted, "RESOURCE_EXHAUSTED", "Quota exceeded"},
		{codes.Unavailable, "UNAVAILABLE", "The service is currently unavailable."},
		{codes.DeadlineExceeded, "DEADLINE_EXCEEDED", "Deadline exceeded."},
		{codes.Internal, "INTERNAL", "Internal error encountered."},
	} {
		t.Run(row.name, func(t *testing.T) {
			srv, k, w := wrapped(t)
			if row.code == codes.ResourceExhausted {
				srv.Throttle(-1) // the fake's own quota message
			} else {
				srv.FailNext(-1, row.code, row.msg)
			}
			_, err := k.Unwrap(ctxT(t), w, aad)
			expectErr(t, err, provider.Transient, row.name, row.msg)
			if n := srv.Calls("Decrypt"); n != fastRetry.Attempts {
				t.Fatalf("%s: %d Decrypt calls, want %d (retried, bounded)", row.name, n, fastRetry.Attempts)
			}
			// Fewer failures than attempts: the retry succeeds.
			if row.code == codes.ResourceExhausted {
				srv.Throttle(fastRetry.Attempts - 1)
			} else {
				srv.FailNext(fastRetry.Attempts-1, row.code, row.msg)
			}
			got, err := k.Unwrap(ctxT(t), w, aad)
			if err != nil || string(got) != string(pt) {
				t.Fatalf("%s then success: %v", row.name, err)
			}
		})
	}
	t.Run("network/server down", func(t *testing.T) {
		srv, k, w := wrapped(t)
		srv.Stop()
		_, err := k.Unwrap(ctxT(t), w, aad)
		expectErr(t, err, provider.Transient, "UNAVAILABLE", "")
	})
	t.Run("network/context deadline", func(t *testing.T) {
		_, k, w := wrapped(t)
		ctx, cancel := context.WithTimeout(ctxT(t), time.Nanosecond)
		defer cancel()
		<-ctx.Done()
		_, err := k.Unwrap(ctx, w, aad)
		expectErr(t, err, provider.Transient, "DEADLINE_EXCEEDED", "")
	})
}

// TestClassify checks the message rules of the table directly, including
// messages the fake does not produce.
func TestClassify(t *testing.T) {
	for _, row := range []struct {
		code codes.Code
		msg  string
		want provider.Class
	}{
		{codes.FailedPrecondition, "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1 is not enabled, current state is: DESTROYED.", provider.Destroyed},
		{codes.FailedPrecondition, "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1 is not enabled, current state is: DISABLED.", provider.Revoked},
		{codes.FailedPrecondition, "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1 is not enabled, current state is: DESTROY_SCHEDULED.", provider.Revoked},
		// "DESTROYED" elsewhere in a message is not the version's state.
		{codes.FailedPrecondition, "The request cannot be fulfilled. Resource projects/p/.../cryptoKeyVersions/1 has value DESTROYED in field crypto_key_version.state.", provider.Revoked},
		{codes.FailedPrecondition, "Google Cloud KMS API has not been used in project 1 before or it is disabled.", provider.Revoked},
		{codes.PermissionDenied, "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied on resource 'projects/p/locations/l/keyRings/r/cryptoKeys/k' (or it may not exist).", provider.Revoked},
		{codes.NotFound, "CryptoKey projects/p/locations/l/keyRings/r/cryptoKeys/k not found.", provider.Revoked},
		{codes.Unauthenticated, "Request had invalid authentication credentials.", provider.Revoked},
		{codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.", provider.Misuse},
		{codes.InvalidArgument, "Decryption failed: verify that 'name' refers to the correct CryptoKey.", provider.Misuse},
		{codes.InvalidArgument, "The checksum in field ciphertext_crc32c did not match the data in field ciphertext.", provider.Transient},
		{codes.ResourceExhausted, "Quota exceeded.", provider.Transient},
		{codes.Unavailable, "", provider.Transient},
		{codes.DeadlineExceeded, "", provider.Transient},
		{codes.Internal, "", provider.Transient},
		{codes.Aborted, "", provider.Transient},
		{codes.AlreadyExists, "", provider.Misuse},
		{codes.Unimplemented, "", provider.Misuse},
	} {
		if got := gcpkms.Classify(row.code, row.msg); got != row.want {
			t.Errorf("%s %q: class %s, want %s", gcpkms.CodeName(row.code), row.msg, got, row.want)
		}
	}
}

// TestNonStatusErrors covers errors that are no gRPC status: network
// failures are TRANSIENT, anything else (e.g. no credentials found) MISUSE.
func TestNonStatusErrors(t *testing.T) {
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	if got := provider.Classify(gcpkms.WrapErr("unwrap", netErr)); got != provider.Transient {
		t.Fatalf("network error: class %s, want TRANSIENT", got)
	}
	cfgErr := errors.New("credentials: could not find default credentials")
	err := gcpkms.WrapErr("unwrap", cfgErr)
	if got := provider.Classify(err); got != provider.Misuse {
		t.Fatalf("config error: class %s, want MISUSE", got)
	}
	if !errors.Is(err, cfgErr) {
		t.Fatal("the underlying error is not wrapped")
	}
}
