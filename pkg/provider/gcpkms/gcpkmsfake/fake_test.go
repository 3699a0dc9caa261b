package gcpkmsfake_test

import (
	"bytes"
	"context"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cmekctl/cmekctl/pkg/provider/gcpkms/gcpkmsfake"
)

const key = "projects/p/locations/global/keyRings/r/cryptoKeys/k"

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	s, _ := status.FromError(err)
	if s.Code() != code || !strings.Contains(s.Message(), msg) {
		t.Fatalf("got %v %q, want %v containing %q", s.Code(), s.Message(), code, msg)
	}
}

// TestFakeThroughOfficialClient exercises the fake with the raw client,
// independently of the gcpkms adapter.
func TestFakeThroughOfficialClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := gcpkmsfake.Start(t)
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") {
		t.Fatalf("fake listens on %s, want 127.0.0.1", srv.Addr())
	}
	v1, err := srv.CreateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client(ctx)
	pt, aad := []byte("store key bytes"), []byte("binding")

	enc := func() *kmspb.EncryptResponse {
		t.Helper()
		r, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: pt, PlaintextCrc32C: crc(pt),
			AdditionalAuthenticatedData: aad, AdditionalAuthenticatedDataCrc32C: crc(aad)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1, r2 := enc(), enc()
	if r1.Name != v1 || !r1.VerifiedPlaintextCrc32C || !r1.VerifiedAdditionalAuthenticatedDataCrc32C ||
		r1.CiphertextCrc32C.GetValue() != crc(r1.Ciphertext).GetValue() {
		t.Fatalf("encrypt response: %v", r1)
	}
	if bytes.Equal(r1.Ciphertext, r2.Ciphertext) || bytes.Contains(r1.Ciphertext, pt) {
		t.Fatal("ciphertexts repeat or contain the plaintext")
	}
	d, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: r1.Ciphertext, AdditionalAuthenticatedData: aad})
	if err != nil || !bytes.Equal(d.Plaintext, pt) || d.PlaintextCrc32C.GetValue() != crc(pt).GetValue() || !d.UsedPrimary {
		t.Fatalf("decrypt: %v %v", d, err)
	}
	// Without the checksum, verified_* is false.
	r, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: pt})
	if err != nil || r.VerifiedPlaintextCrc32C {
		t.Fatalf("encrypt without checksum: verified %v, %v", r.GetVerifiedPlaintextCrc32C(), err)
	}
	// A wrong request checksum is INVALID_ARGUMENT.
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: pt, PlaintextCrc32C: crc([]byte("other"))})
	wantStatus(t, err, codes.InvalidArgument, "checksum")
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: r1.Ciphertext})
	wantStatus(t, err, codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")

	// Destroy schedules; restore brings back DISABLED; updating a
	// scheduled version's state is refused.
	v, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v1})
	if err != nil || v.State != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED || v.DestroyTime == nil {
		t.Fatalf("destroy: %v %v", v, err)
	}
	_, err = c.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{})
	wantStatus(t, err, codes.InvalidArgument, "update_mask")
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: r1.Ciphertext, AdditionalAuthenticatedData: aad})
	wantStatus(t, err, codes.FailedPrecondition, v1+" is not enabled, current state is: DESTROY_SCHEDULED.")
	v, err = c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v1})
	if err != nil || v.State != kmspb.CryptoKeyVersion_DISABLED || v.DestroyTime != nil {
		t.Fatalf("restore: %v %v", v, err)
	}
	// DestroyNow: DESTROYED, and restore is refused.
	if err := srv.DestroyNow(v1); err != nil {
		t.Fatal(err)
	}
	_, err = c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v1})
	wantStatus(t, err, codes.FailedPrecondition, "has value DESTROYED in field crypto_key_version.state")
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: r1.Ciphertext, AdditionalAuthenticatedData: aad})
	wantStatus(t, err, codes.FailedPrecondition, "current state is: DESTROYED.")

	// Missing resources: crypto operations say PERMISSION_DENIED, reads NOT_FOUND.
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key + "x", Plaintext: pt})
	wantStatus(t, err, codes.PermissionDenied, "(or it may not exist)")
	_, err = c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key + "x"})
	wantStatus(t, err, codes.NotFound, "not found")

	// Hooks.
	srv.Throttle(1)
	_, err = c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key})
	wantStatus(t, err, codes.ResourceExhausted, "Quota exceeded")
	if _, err = c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key}); err != nil {
		t.Fatalf("after one throttled call: %v", err)
	}
	srv.DenyAccess(true)
	_, err = c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key})
	wantStatus(t, err, codes.PermissionDenied, "cloudkms.cryptoKeys.get")
	srv.DenyAccess(false)
	srv.Stop()
	// The client's default retryer would retry UNAVAILABLE for a minute.
	_, err = c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key}, gax.WithRetry(func() gax.Retryer { return nil }))
	wantStatus(t, err, codes.Unavailable, "")
	if n := srv.Calls("GetCryptoKey"); n != 4 {
		t.Fatalf("GetCryptoKey calls: %d, want 4 (the call after Stop never arrives)", n)
	}
}
