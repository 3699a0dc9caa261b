// Package gcpkmsfake is a FAKE Cloud KMS, written for cmekctl's tests: an
// in-process gRPC server implementing kmspb.KeyManagementServiceServer on
// 127.0.0.1, reached by the official cloud.google.com/go/kms client over a
// real loopback gRPC connection. It is not Google's code and not an
// emulator of everything: no Cloud KMS emulator can be installed here.
//
// What it models (the behaviours cmekctl depends on):
//   - key rings, crypto keys (purpose ENCRYPT_DECRYPT) and their versions,
//     each with a state (ENABLED, DISABLED, DESTROY_SCHEDULED, DESTROYED)
//     and a primary version; create, get, list (one page), rotate by
//     CreateCryptoKeyVersion + UpdateCryptoKeyPrimaryVersion,
//     UpdateCryptoKeyVersion (state only, ENABLED <-> DISABLED),
//     DestroyCryptoKeyVersion (DESTROY_SCHEDULED with destroy_time = now +
//     destroy_scheduled_duration, 30 days by default) and
//     RestoreCryptoKeyVersion (back to DISABLED);
//   - Encrypt and Decrypt with real AES-256-GCM (crypto/aes, crypto/cipher)
//     per version, the additional authenticated data bound, and ciphertexts
//     that carry their version's opaque ID so Decrypt finds the version, as
//     Cloud KMS's do;
//   - the CRC32C integrity fields both ways: request checksums verified
//     (INVALID_ARGUMENT on a mismatch, verified_* = true otherwise) and
//     response checksums set;
//   - Cloud KMS's status codes and messages: FAILED_PRECONDITION "<version>
//     is not enabled, current state is: <STATE>.", INVALID_ARGUMENT
//     "Decryption failed: the ciphertext is invalid." and "Decryption
//     failed: verify that 'name' refers to the correct CryptoKey.",
//     PERMISSION_DENIED "... (or it may not exist)." for crypto operations on
//     a missing key, NOT_FOUND for reads of a missing resource.
//
// Test hooks drive what a test cannot reach through the API: DestroyNow
// (a version becomes DESTROYED at once and its key material is erased),
// DenyAccess (PERMISSION_DENIED on every call), Throttle (RESOURCE_EXHAUSTED
// on the next n calls), FailNext (any status on the next n calls), Stop
// (the server goes away), SetReimportEligible,
// and four integrity faults (CorruptResponseCRC, DropRequestCRC,
// CorruptRequest, NameKeyInEncrypt).
//
// Not modelled: IAM policies, import jobs, asymmetric and MAC keys, HSM or
// external protection levels, automatic rotation, real destruction after
// the scheduled time, pagination, filters, locations and the autokey APIs.
package gcpkmsfake

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash/crc32"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cmekctl/cmekctl/internal/fipstest"
)

// DefaultDestroyScheduledDuration is Cloud KMS's default window between
// DestroyCryptoKeyVersion and destruction.
const DefaultDestroyScheduledDuration = 30 * 24 * time.Hour

const ciphertextVersion = 0x01 // first byte of the fake's ciphertexts

var (
	reRing    = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[a-zA-Z0-9_-]{1,63}$`)
	reKey     = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63}$`)
	reVersion = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63})/cryptoKeyVersions/([0-9]+)$`)
	castag    = crc32.MakeTable(crc32.Castagnoli)
)

func crc(b []byte) int64 { return int64(crc32.Checksum(b, castag)) }

type version struct {
	pb       *kmspb.CryptoKeyVersion
	id       [16]byte // opaque ID carried by ciphertexts
	material []byte   // AES-256 key; nil once destroyed
}

type cryptoKey struct {
	pb       *kmspb.CryptoKey // Primary is filled on read
	versions []*version
	primary  *version
}

// Server is a fake Cloud KMS. Its methods are safe for concurrent use.
type Server struct {
	kmspb.UnimplementedKeyManagementServiceServer

	t    testing.TB
	lis  net.Listener
	grpc *grpc.Server
	addr string

	mu      sync.Mutex
	now     func() time.Time
	rings   map[string]*kmspb.KeyRing
	keys    map[string]*cryptoKey
	byID    map[[16]byte]*version
	keyOf   map[*version]*cryptoKey
	deny    bool
	thr     int // calls left to throttle; <0: every call
	badResp int // responses left whose checksum is corrupted
	noVerif int // responses left that claim the request checksums were not received
	keyName int // Encrypt responses left that name the key, not its version
	badReq  int // requests left whose data is corrupted on arrival
	calls   map[string]int
	stopped bool
	failN   int // calls left to fail with failErr; <0: every call
	failErr error
}

// Start runs a fake on 127.0.0.1 (a free port) until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gcpkmsfake: listen on 127.0.0.1: %v", err)
	}
	s := &Server{
		t: t, lis: lis, addr: lis.Addr().String(), now: time.Now,
		rings: map[string]*kmspb.KeyRing{}, keys: map[string]*cryptoKey{},
		byID: map[[16]byte]*version{}, keyOf: map[*version]*cryptoKey{}, calls: map[string]int{},
	}
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	kmspb.RegisterKeyManagementServiceServer(s.grpc, s)
	go s.grpc.Serve(lis) //nolint:errcheck // returns when stopped
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return s.addr }

// Client returns an official Cloud KMS client connected to the fake over
// loopback gRPC, without TLS or authentication; it is closed when the test
// ends.
func (s *Server) Client(ctx context.Context) *kms.KeyManagementClient {
	s.t.Helper()
	c, err := kms.NewKeyManagementClient(ctx,
		option.WithEndpoint(s.addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		s.t.Fatalf("gcpkmsfake: client: %v", err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Stop stops the server: every later call fails as a network failure
// (UNAVAILABLE). It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	s.grpc.Stop()
}

// SetNow replaces the server's clock (for destroy_time).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// DenyAccess makes every call fail with PERMISSION_DENIED, as when the
// caller's IAM grant is removed, until DenyAccess(false).
func (s *Server) DenyAccess(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// Throttle makes the next n calls fail with RESOURCE_EXHAUSTED (quota
// exceeded); n < 0 throttles every call until Throttle(0).
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.thr = n
}

// FailNext makes the next n calls (n < 0: every call) fail with the given
// gRPC status, for error rows the fake has no state for (INTERNAL,
// DEADLINE_EXCEEDED, UNAUTHENTICATED...). FailNext(0, ...) stops it.
func (s *Server) FailNext(n int, code codes.Code, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failErr = n, status.Error(code, msg)
}

// CorruptResponseCRC makes the next n Encrypt or Decrypt responses carry a
// wrong ciphertext_crc32c or plaintext_crc32c, as if the response were
// corrupted in transit.
func (s *Server) CorruptResponseCRC(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badResp = n
}

// DropRequestCRC makes the next n Encrypt responses report
// verified_plaintext_crc32c and verified_additional_authenticated_data_crc32c
// false, as if the request's checksums had not reached the server.
func (s *Server) DropRequestCRC(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noVerif = n
}

// NameKeyInEncrypt makes the next n Encrypt responses carry the CryptoKey's
// name instead of the CryptoKeyVersion's, as some emulators do: a client
// that checks the response (as Google advises) refuses it.
func (s *Server) NameKeyInEncrypt(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyName = n
}

// CorruptRequest flips a bit of the data of the next n Encrypt or Decrypt
// requests on arrival, so the server's checksum verification fails
// (INVALID_ARGUMENT), as a request corrupted in transit would.
func (s *Server) CorruptRequest(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badReq = n
}

// Calls returns how many times method (e.g. "Decrypt") was called,
// including calls that failed.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// CreateKey creates the key ring (if absent) and key name with one ENABLED
// primary version, and returns that version's name.
func (s *Server) CreateKey(name string) (string, error) {
	if !reKey.MatchString(name) {
		return "", fmt.Errorf("gcpkmsfake: create key: %q is not projects/P/locations/L/keyRings/R/cryptoKeys/K", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ring := path.Dir(path.Dir(name))
	if s.rings[ring] == nil {
		s.rings[ring] = &kmspb.KeyRing{Name: ring, CreateTime: timestamppb.New(s.now())}
	}
	if s.keys[name] != nil {
		return "", fmt.Errorf("gcpkmsfake: create key: %s already exists", name)
	}
	k := s.newKey(name, nil)
	return k.primary.pb.GetName(), nil
}

// DestroyNow makes version (a full version name) DESTROYED at once and
// erases its key material, as Cloud KMS does when the scheduled time comes.
func (s *Server) DestroyNow(versionName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _, err := s.version(versionName)
	if err != nil {
		return fmt.Errorf("gcpkmsfake: destroy now: %s", status.Convert(err).Message())
	}
	s.destroy(v)
	return nil
}

// DestroyKeyNow makes every version of key DESTROYED at once.
func (s *Server) DestroyKeyNow(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[key]
	if k == nil {
		return fmt.Errorf("gcpkmsfake: destroy now: key %s not found", key)
	}
	for _, v := range k.versions {
		s.destroy(v)
	}
	return nil
}

// SetReimportEligible marks a version as made from imported key material
// that could be imported again after destruction.
func (s *Server) SetReimportEligible(versionName string, eligible bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _, err := s.version(versionName)
	if err != nil {
		return fmt.Errorf("gcpkmsfake: set reimport eligible: %s", status.Convert(err).Message())
	}
	v.pb.ReimportEligible = eligible
	return nil
}

func (s *Server) destroy(v *version) {
	clear(v.material)
	v.material = nil
	v.pb.State = kmspb.CryptoKeyVersion_DESTROYED
	v.pb.DestroyEventTime = timestamppb.New(s.now())
}

// intercept counts calls and applies the access, throttling and stop hooks.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	s.mu.Lock()
	s.calls[method]++
	deny := s.deny
	throttled := s.thr != 0
	if s.thr > 0 {
		s.thr--
	}
	var fail error
	if takeFault(&s.failN) {
		fail = s.failErr
	}
	s.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	if deny {
		return nil, status.Errorf(codes.PermissionDenied, "Permission '%s' denied on resource '%s' (or it may not exist).", permission(method), resourceOf(req))
	}
	if throttled {
		return nil, status.Error(codes.ResourceExhausted, "Quota exceeded for quota metric 'Cryptographic requests' and limit 'Cryptographic requests per minute per region' of service 'cloudkms.googleapis.com'.")
	}
	var resp any
	var err error
	fipstest.KMSSide(func() { resp, err = h(ctx, req) })
	return resp, err
}

func permission(method string) string {
	switch method {
	case "Encrypt":
		return "cloudkms.cryptoKeyVersions.useToEncrypt"
	case "Decrypt":
		return "cloudkms.cryptoKeyVersions.useToDecrypt"
	case "GetCryptoKey":
		return "cloudkms.cryptoKeys.get"
	case "ListCryptoKeyVersions":
		return "cloudkms.cryptoKeyVersions.list"
	}
	return "cloudkms." + strings.ToLower(method[:1]) + method[1:]
}

func resourceOf(req any) string {
	type named interface{ GetName() string }
	type parented interface{ GetParent() string }
	switch r := req.(type) {
	case named:
		return r.GetName()
	case parented:
		return r.GetParent()
	}
	return ""
}

// newKey creates a key with one ENABLED primary version. s.mu is held.
func (s *Server) newKey(name string, tmpl *kmspb.CryptoKey) *cryptoKey {
	pb := &kmspb.CryptoKey{
		Name:       name,
		Purpose:    kmspb.CryptoKey_ENCRYPT_DECRYPT,
		CreateTime: timestamppb.New(s.now()),
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{
			ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
			Algorithm:       kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		},
		DestroyScheduledDuration: durationpb.New(DefaultDestroyScheduledDuration),
	}
	if tmpl != nil {
		if d := tmpl.GetDestroyScheduledDuration(); d != nil {
			pb.DestroyScheduledDuration = d
		}
		pb.RotationSchedule = tmpl.RotationSchedule
		pb.NextRotationTime = tmpl.GetNextRotationTime()
		pb.Labels = tmpl.GetLabels()
	}
	k := &cryptoKey{pb: pb}
	s.keys[name] = k
	k.primary = s.newVersion(k)
	return k
}

// newVersion adds an ENABLED version with fresh key material. s.mu is held.
func (s *Server) newVersion(k *cryptoKey) *version {
	v := &version{material: make([]byte, 32)}
	if _, err := rand.Read(v.material); err != nil {
		panic(err) // crypto/rand does not fail
	}
	if _, err := rand.Read(v.id[:]); err != nil {
		panic(err)
	}
	now := timestamppb.New(s.now())
	v.pb = &kmspb.CryptoKeyVersion{
		Name:            fmt.Sprintf("%s/cryptoKeyVersions/%d", k.pb.GetName(), len(k.versions)+1),
		State:           kmspb.CryptoKeyVersion_ENABLED,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
		Algorithm:       kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		CreateTime:      now,
		GenerateTime:    now,
	}
	k.versions = append(k.versions, v)
	s.byID[v.id] = v
	s.keyOf[v] = k
	return v
}

func (s *Server) key(name string) (*cryptoKey, error) {
	if !reKey.MatchString(name) {
		return nil, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not represent a valid CryptoKey.", name)
	}
	k := s.keys[name]
	if k == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found.", name)
	}
	return k, nil
}

func (s *Server) version(name string) (*version, *cryptoKey, error) {
	m := reVersion.FindStringSubmatch(name)
	if m == nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not represent a valid CryptoKeyVersion.", name)
	}
	k := s.keys[m[1]]
	n, err := strconv.Atoi(m[2])
	if k == nil || err != nil || n < 1 || n > len(k.versions) {
		return nil, nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found.", name)
	}
	return k.versions[n-1], k, nil
}

func notEnabled(v *version) error {
	return status.Errorf(codes.FailedPrecondition, "%s is not enabled, current state is: %s.", v.pb.GetName(), v.pb.GetState())
}

func wrongState(v *version) error {
	return status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. Resource %s has value %s in field crypto_key_version.state.", v.pb.GetName(), v.pb.GetState())
}

func (s *Server) keyPB(k *cryptoKey) *kmspb.CryptoKey {
	out := proto.Clone(k.pb).(*kmspb.CryptoKey)
	if k.primary != nil {
		out.Primary = proto.Clone(k.primary.pb).(*kmspb.CryptoKeyVersion)
	}
	return out
}

func cloneV(v *version) *kmspb.CryptoKeyVersion {
	return proto.Clone(v.pb).(*kmspb.CryptoKeyVersion)
}

// Keys lists the names of the keys on the server, sorted.
func (s *Server) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.keys))
	for n := range s.keys {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
