package gcpkmsfake

import (
	"context"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The key-management methods of the fake: key rings, keys, versions and
// their states (kmspb.KeyManagementServiceServer).

// GetKeyRing implements kmspb.KeyManagementServiceServer.
func (s *Server) GetKeyRing(_ context.Context, req *kmspb.GetKeyRingRequest) (*kmspb.KeyRing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rings[req.GetName()]
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "KeyRing %s not found.", req.GetName())
	}
	return proto.Clone(r).(*kmspb.KeyRing), nil
}

// CreateKeyRing implements kmspb.KeyManagementServiceServer.
func (s *Server) CreateKeyRing(_ context.Context, req *kmspb.CreateKeyRingRequest) (*kmspb.KeyRing, error) {
	name := req.GetParent() + "/keyRings/" + req.GetKeyRingId()
	if !reRing.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not represent a valid KeyRing.", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rings[name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "KeyRing %s already exists.", name)
	}
	r := &kmspb.KeyRing{Name: name, CreateTime: timestamppb.New(s.now())}
	s.rings[name] = r
	return proto.Clone(r).(*kmspb.KeyRing), nil
}

// CreateCryptoKey implements kmspb.KeyManagementServiceServer.
func (s *Server) CreateCryptoKey(_ context.Context, req *kmspb.CreateCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	name := req.GetParent() + "/cryptoKeys/" + req.GetCryptoKeyId()
	if !reKey.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not represent a valid CryptoKey.", name)
	}
	if p := req.GetCryptoKey().GetPurpose(); p != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return nil, status.Errorf(codes.InvalidArgument, "The fake supports purpose ENCRYPT_DECRYPT only, not %s.", p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rings[req.GetParent()] == nil {
		return nil, status.Errorf(codes.NotFound, "KeyRing %s not found.", req.GetParent())
	}
	if s.keys[name] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "CryptoKey %s already exists.", name)
	}
	k := s.newKey(name, req.GetCryptoKey())
	if req.GetSkipInitialVersionCreation() {
		delete(s.byID, k.primary.id)
		delete(s.keyOf, k.primary)
		k.versions, k.primary = nil, nil
	}
	return s.keyPB(k), nil
}

// GetCryptoKey implements kmspb.KeyManagementServiceServer.
func (s *Server) GetCryptoKey(_ context.Context, req *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetName())
	if err != nil {
		return nil, err
	}
	return s.keyPB(k), nil
}

// GetCryptoKeyVersion implements kmspb.KeyManagementServiceServer.
func (s *Server) GetCryptoKeyVersion(_ context.Context, req *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _, err := s.version(req.GetName())
	if err != nil {
		return nil, err
	}
	return cloneV(v), nil
}

// ListCryptoKeyVersions implements kmspb.KeyManagementServiceServer. It
// returns every version in one page.
func (s *Server) ListCryptoKeyVersions(_ context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetParent())
	if err != nil {
		return nil, err
	}
	out := &kmspb.ListCryptoKeyVersionsResponse{TotalSize: int32(len(k.versions))}
	for _, v := range k.versions {
		out.CryptoKeyVersions = append(out.CryptoKeyVersions, cloneV(v))
	}
	return out, nil
}

// CreateCryptoKeyVersion implements kmspb.KeyManagementServiceServer. The
// new version is ENABLED at once (software keys) and not primary.
func (s *Server) CreateCryptoKeyVersion(_ context.Context, req *kmspb.CreateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetParent())
	if err != nil {
		return nil, err
	}
	return cloneV(s.newVersion(k)), nil
}

// UpdateCryptoKeyPrimaryVersion implements kmspb.KeyManagementServiceServer.
func (s *Server) UpdateCryptoKeyPrimaryVersion(_ context.Context, req *kmspb.UpdateCryptoKeyPrimaryVersionRequest) (*kmspb.CryptoKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetName())
	if err != nil {
		return nil, err
	}
	v, _, err := s.version(req.GetName() + "/cryptoKeyVersions/" + req.GetCryptoKeyVersionId())
	if err != nil {
		return nil, err
	}
	if v.pb.GetState() != kmspb.CryptoKeyVersion_ENABLED {
		return nil, wrongState(v)
	}
	k.primary = v
	return s.keyPB(k), nil
}

// UpdateCryptoKeyVersion implements kmspb.KeyManagementServiceServer. Only
// the state field, between ENABLED and DISABLED, can be updated.
func (s *Server) UpdateCryptoKeyVersion(_ context.Context, req *kmspb.UpdateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) != 1 || paths[0] != "state" {
		return nil, status.Errorf(codes.InvalidArgument, "The fake updates the field state only; update_mask was %v.", paths)
	}
	to := req.GetCryptoKeyVersion().GetState()
	if to != kmspb.CryptoKeyVersion_ENABLED && to != kmspb.CryptoKeyVersion_DISABLED {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid value %s for field crypto_key_version.state: only ENABLED and DISABLED can be set.", to)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _, err := s.version(req.GetCryptoKeyVersion().GetName())
	if err != nil {
		return nil, err
	}
	if st := v.pb.GetState(); st != kmspb.CryptoKeyVersion_ENABLED && st != kmspb.CryptoKeyVersion_DISABLED {
		return nil, wrongState(v)
	}
	v.pb.State = to
	return cloneV(v), nil
}

// DestroyCryptoKeyVersion implements kmspb.KeyManagementServiceServer.
func (s *Server) DestroyCryptoKeyVersion(_ context.Context, req *kmspb.DestroyCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, k, err := s.version(req.GetName())
	if err != nil {
		return nil, err
	}
	if st := v.pb.GetState(); st != kmspb.CryptoKeyVersion_ENABLED && st != kmspb.CryptoKeyVersion_DISABLED {
		return nil, wrongState(v)
	}
	v.pb.State = kmspb.CryptoKeyVersion_DESTROY_SCHEDULED
	v.pb.DestroyTime = timestamppb.New(s.now().Add(k.pb.GetDestroyScheduledDuration().AsDuration()))
	return cloneV(v), nil
}

// RestoreCryptoKeyVersion implements kmspb.KeyManagementServiceServer. The
// version comes back DISABLED.
func (s *Server) RestoreCryptoKeyVersion(_ context.Context, req *kmspb.RestoreCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _, err := s.version(req.GetName())
	if err != nil {
		return nil, err
	}
	if v.pb.GetState() != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED {
		return nil, wrongState(v)
	}
	v.pb.State = kmspb.CryptoKeyVersion_DISABLED
	v.pb.DestroyTime = nil
	return cloneV(v), nil
}
