package gcpkmsfake

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"strings"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Encrypt and Decrypt: AES-256-GCM under the version's material, with the
// request and response CRC32C checks and the integrity faults a test can ask for.

// checkCRC verifies an optional request checksum.
func checkCRC(field string, data []byte, sum *wrapperspb.Int64Value) (bool, error) {
	if sum == nil {
		return false, nil
	}
	if sum.GetValue() != crc(data) {
		return false, status.Errorf(codes.InvalidArgument, "The checksum in field %s did not match the data in field %s.", field, strings.TrimSuffix(field, "_crc32c"))
	}
	return true, nil
}

// takeFault consumes one unit of a fault counter. s.mu is held.
func takeFault(n *int) bool {
	if *n == 0 {
		return false
	}
	if *n > 0 {
		*n--
	}
	return true
}

func gcm(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // 32-byte keys only
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return a
}

// Encrypt implements kmspb.KeyManagementServiceServer with AES-256-GCM
// under the primary version (or the version req.Name names).
func (s *Server) Encrypt(_ context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pt, aad := req.GetPlaintext(), req.GetAdditionalAuthenticatedData()
	if takeFault(&s.badReq) {
		pt = flip(pt)
	}
	var v *version
	if reVersion.MatchString(req.GetName()) {
		var err error
		if v, _, err = s.version(req.GetName()); err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '%s' (or it may not exist).", req.GetName())
		}
	} else {
		k := s.keys[req.GetName()]
		if k == nil {
			return nil, status.Errorf(codes.PermissionDenied, "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '%s' (or it may not exist).", req.GetName())
		}
		if k.primary == nil {
			return nil, status.Errorf(codes.FailedPrecondition, "%s has no primary version.", req.GetName())
		}
		v = k.primary
	}
	if len(pt) > 64*1024 || len(aad) > 64*1024 {
		return nil, status.Error(codes.InvalidArgument, "The plaintext and additional_authenticated_data must each be no larger than 64KiB.")
	}
	vpt, err := checkCRC("plaintext_crc32c", pt, req.GetPlaintextCrc32C())
	if err != nil {
		return nil, err
	}
	vaad, err := checkCRC("additional_authenticated_data_crc32c", aad, req.GetAdditionalAuthenticatedDataCrc32C())
	if err != nil {
		return nil, err
	}
	if v.pb.GetState() != kmspb.CryptoKeyVersion_ENABLED {
		return nil, notEnabled(v)
	}
	a := gcm(v.material)
	ct := make([]byte, 1, 1+16+a.NonceSize()+len(pt)+a.Overhead())
	ct[0] = ciphertextVersion
	ct = append(ct, v.id[:]...)
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	ct = append(ct, nonce...)
	ct = a.Seal(ct, nonce, pt, sealAAD(v.id, aad))
	sum := crc(ct)
	if takeFault(&s.badResp) {
		sum ^= 1
	}
	resp := &kmspb.EncryptResponse{
		Name:                    v.pb.GetName(),
		Ciphertext:              ct,
		CiphertextCrc32C:        wrapperspb.Int64(sum),
		VerifiedPlaintextCrc32C: vpt,
		VerifiedAdditionalAuthenticatedDataCrc32C: vaad,
		ProtectionLevel: v.pb.GetProtectionLevel(),
	}
	if takeFault(&s.noVerif) {
		resp.VerifiedPlaintextCrc32C, resp.VerifiedAdditionalAuthenticatedDataCrc32C = false, false
	}
	if takeFault(&s.keyName) {
		resp.Name = s.keyOf[v].pb.GetName()
	}
	return resp, nil
}

func sealAAD(id [16]byte, aad []byte) []byte {
	return append(append([]byte("gcpkmsfake-v1"), id[:]...), aad...)
}

func flip(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) == 0 {
		return []byte{1}
	}
	b[0] ^= 1
	return b
}

// Decrypt implements kmspb.KeyManagementServiceServer. req.Name is the
// key; the version comes from the ciphertext.
func (s *Server) Decrypt(_ context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, aad := req.GetCiphertext(), req.GetAdditionalAuthenticatedData()
	if takeFault(&s.badReq) {
		ct = flip(ct)
	}
	k := s.keys[req.GetName()]
	if k == nil {
		return nil, status.Errorf(codes.PermissionDenied, "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied on resource '%s' (or it may not exist).", req.GetName())
	}
	if _, err := checkCRC("ciphertext_crc32c", ct, req.GetCiphertextCrc32C()); err != nil {
		return nil, err
	}
	if _, err := checkCRC("additional_authenticated_data_crc32c", aad, req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	invalid := status.Error(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")
	if len(ct) < 1+16+12+16 || ct[0] != ciphertextVersion {
		return nil, invalid
	}
	var id [16]byte
	copy(id[:], ct[1:17])
	v := s.byID[id]
	if v == nil || s.keyOf[v] != k {
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
	}
	if v.pb.GetState() != kmspb.CryptoKeyVersion_ENABLED {
		return nil, notEnabled(v)
	}
	a := gcm(v.material)
	body := ct[17:]
	pt, err := a.Open(nil, body[:a.NonceSize()], body[a.NonceSize():], sealAAD(id, aad))
	if err != nil {
		return nil, invalid
	}
	sum := crc(pt)
	if takeFault(&s.badResp) {
		sum ^= 1
	}
	return &kmspb.DecryptResponse{
		Plaintext:       pt,
		PlaintextCrc32C: wrapperspb.Int64(sum),
		UsedPrimary:     v == k.primary,
		ProtectionLevel: v.pb.GetProtectionLevel(),
	}, nil
}
