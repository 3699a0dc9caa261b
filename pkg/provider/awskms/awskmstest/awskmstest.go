package awskmstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	localkms "github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/cmk"
	lkconfig "github.com/nsmithuk/local-kms/src/config"
	lkdata "github.com/nsmithuk/local-kms/src/data"
	"github.com/nsmithuk/local-kms/src/handler"
	"github.com/sirupsen/logrus"

	"github.com/cmekctl/cmekctl/internal/fipstest"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms/ststest"
)

// Region and Account are local-kms's (it keeps them in package variables,
// so every server of a test binary shares them).
const (
	Region  = "us-east-1"
	Account = "111122223333"
	// Made-up credentials for the tests; local-kms does not check them.
	AccessKeyID = "AKIACMEKCTLE2ETEST"
	SecretKey   = "cmekctl-e2e-test-secret-not-a-real-key"
)

var configOnce sync.Once

// Server is local-kms behind the front described in the package comment.
type Server struct {
	URL string // http://127.0.0.1:PORT
	DB  *lkdata.Database
	// STS is the fake STS beside it (ststest), answering for Account: the
	// URIs name it in AWS_STS_ENDPOINT.
	STS *ststest.Server

	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	deny     bool
	throttle bool
	checkSig bool
	stopped  bool
	calls    map[string]int
}

// Start runs a server until the test ends. A server that cannot start fails
// the test.
func Start(t testing.TB) *Server {
	t.Helper()
	configOnce.Do(func() {
		lkconfig.AWSRegion = Region
		lkconfig.AWSAccountId = Account
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("awskmstest: listen on 127.0.0.1: %v", err)
	}
	s := &Server{DB: lkdata.NewDatabase(t.TempDir()), STS: ststest.Start(t, Account), t: t, calls: map[string]int{}}
	s.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: fipstest.Handler(http.HandlerFunc(s.serve))}}
	s.srv.Start()
	s.URL = s.srv.URL
	t.Cleanup(func() { s.Stop(); s.DB.Close() })
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	s.mu.Lock()
	s.calls[op]++
	deny, throttle, checkSig := s.deny, s.throttle, s.checkSig
	s.mu.Unlock()
	if checkSig {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if code, msg := checkSignature(r, body); code != "" {
			writeError(w, 400, code, msg)
			return
		}
	}
	switch {
	case throttle:
		writeError(w, 400, "ThrottlingException", "Rate exceeded")
	case deny:
		writeError(w, 400, "AccessDeniedException", "User: arn:aws:iam::"+Account+":user/cmekctl-test is not authorized to perform: kms:"+op+" on this resource because no resource-based policy allows the kms:"+op+" action")
	case op == "RotateKeyOnDemand":
		s.rotateOnDemand(w, r)
	default:
		s.dispatch(w, r)
	}
}

// quiet is local-kms's logger for the handlers, silenced: its own package
// logger writes every request to stderr.
var quiet = func() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}()

// dispatch does what local-kms's HandleRequest does (call the handler
// method named by X-Amz-Target), with the quiet logger.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	target := strings.Split(r.Header.Get("X-Amz-Target"), ".")
	if r.URL.Path != "/" || r.Method != http.MethodPost || !strings.Contains(r.Header.Get("Content-Type"), "json") || len(target) < 2 {
		localkms.HandleRequest(w, r, s.DB) // its own error answers
		return
	}
	h := handler.NewRequestHandler(r, quiet, s.DB)
	m := reflect.ValueOf(h).MethodByName(target[1])
	if !m.IsValid() {
		localkms.HandleRequest(w, r, s.DB) // its 501
		return
	}
	resp, ok := m.Call(nil)[0].Interface().(handler.Response)
	if !ok {
		writeError(w, 500, "KMSInternalException", "awskmstest: unexpected local-kms handler result")
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(resp.Code)
	_, _ = io.WriteString(w, resp.Body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", "awskmstest-front")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// rotateOnDemand is the front's RotateKeyOnDemand: new AES key material
// behind the same ARN, as AWS documents it for symmetric keys. Disabled and
// pending-deletion keys are refused as AWS refuses them.
func (s *Server) rotateOnDemand(w http.ResponseWriter, r *http.Request) {
	var in struct{ KeyId string }
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &in); err != nil || in.KeyId == "" {
		writeError(w, 400, "ValidationException", "KeyId is a required parameter")
		return
	}
	arn := s.arnOf(in.KeyId)
	k, err := s.DB.LoadKey(arn)
	if err != nil {
		writeError(w, 400, "NotFoundException", "Key '"+arn+"' does not exist")
		return
	}
	aes, ok := k.(*cmk.AesKey)
	if !ok || k.GetMetadata().KeyUsage != cmk.UsageEncryptDecrypt {
		writeError(w, 400, "UnsupportedOperationException", arn+" is not a symmetric encryption key")
		return
	}
	switch k.GetMetadata().KeyState {
	case cmk.KeyStateEnabled:
	case cmk.KeyStateDisabled:
		writeError(w, 400, "DisabledException", arn+" is disabled.")
		return
	default:
		writeError(w, 400, "KMSInvalidStateException", arn+" is "+string(k.GetMetadata().KeyState)+".")
		return
	}
	var m [32]byte
	if _, err := rand.Read(m[:]); err != nil {
		writeError(w, 500, "KMSInternalException", err.Error())
		return
	}
	aes.BackingKeys = append(aes.BackingKeys, m)
	if err := s.DB.SaveKey(aes); err != nil {
		writeError(w, 500, "KMSInternalException", err.Error())
		return
	}
	b, _ := json.Marshal(map[string]string{"KeyId": arn})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(b)
}

// arnOf turns a key ID or key ARN into a key ARN. Like AWS (and local-kms
// for its own admin operations), RotateKeyOnDemand takes no alias: an alias
// gives an ARN that names no key, hence NotFoundException.
func (s *Server) arnOf(id string) string {
	if strings.HasPrefix(id, "arn:") {
		return id
	}
	return "arn:aws:kms:" + Region + ":" + Account + ":key/" + id
}

// URI is an aws-kms:/// URI for keyID (a key ID, ARN or alias/name; "" for
// none, as `kms create` takes) reaching this server: AWS_ENDPOINT names it,
// and AUTH=implicit, so the URI holds no credentials (a keyring records its
// CMEK URI and refuses one with credentials). Open it with Opener, which
// supplies the test's credentials.
func (s *Server) URI(keyID string) string {
	q := url.Values{}
	q.Set("REGION", Region)
	q.Set("AUTH", "implicit")
	q.Set("AWS_ENDPOINT", s.URL)
	q.Set("AWS_STS_ENDPOINT", s.STS.URL)
	return "aws-kms:///" + keyID + "?" + q.Encode()
}

// SpecifiedURI is URI with AUTH=specified and the test's made-up
// credentials in it, for tests of URIs that carry credentials.
func (s *Server) SpecifiedURI(keyID string) string {
	q := url.Values{}
	q.Set("REGION", Region)
	q.Set("AUTH", "specified")
	q.Set("AWS_ACCESS_KEY_ID", AccessKeyID)
	q.Set("AWS_SECRET_ACCESS_KEY", SecretKey)
	q.Set("AWS_ENDPOINT", s.URL)
	q.Set("AWS_STS_ENDPOINT", s.STS.URL)
	return "aws-kms:///" + keyID + "?" + q.Encode()
}

// Client is the official KMS client pointed at the server, with the test's
// credentials and a retryer of 3 attempts and millisecond backoff.
func (s *Server) Client() *kms.Client {
	return kms.New(kms.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretKey, ""),
		Retryer:      awskms.NewRetryer(3, time.Millisecond, func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None }),
	})
}

// CreateKey creates an enabled symmetric key and returns its ARN.
func (s *Server) CreateKey(ctx context.Context) (string, error) {
	out, err := s.Client().CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		return "", fmt.Errorf("awskmstest: create key: %w", err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

// CreateImportedKey creates a key with Origin EXTERNAL and imports 256 bits
// of fresh key material into it (GetParametersForImport with
// RSAES_OAEP_SHA_256, ImportKeyMaterial that does not expire), as an
// operator bringing their own key would. It returns the key's ARN; delete
// the material with DeleteImportedKeyMaterial.
func (s *Server) CreateImportedKey(ctx context.Context) (string, error) {
	c := s.Client()
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		return "", fmt.Errorf("awskmstest: create external key: %w", err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	p, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId: aws.String(arn), WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048,
	})
	if err != nil {
		return "", fmt.Errorf("awskmstest: get parameters for import: %w", err)
	}
	pub, err := parseRSAPublicKey(p.PublicKey)
	if err != nil {
		return "", err
	}
	material := make([]byte, 32)
	if _, err := rand.Read(material); err != nil {
		return "", err
	}
	enc, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, material, nil)
	clear(material)
	if err != nil {
		return "", fmt.Errorf("awskmstest: wrap key material: %w", err)
	}
	if _, err := c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(arn), ImportToken: p.ImportToken, EncryptedKeyMaterial: enc,
		ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	}); err != nil {
		return "", fmt.Errorf("awskmstest: import key material: %w", err)
	}
	return arn, nil
}

// ExpireDeletion moves a pending deletion's date into the past in
// local-kms's database, as if AWS's waiting period had run out; local-kms
// deletes the key at its next load, which happens here, so later requests
// see the key gone (NotFoundException), as they would on AWS.
func (s *Server) ExpireDeletion(arn string) error {
	k, err := s.DB.LoadKey(arn)
	if err != nil {
		return fmt.Errorf("awskmstest: load %s: %w", arn, err)
	}
	if k.GetMetadata().DeletionDate == 0 {
		return fmt.Errorf("awskmstest: %s is not pending deletion", arn)
	}
	k.GetMetadata().DeletionDate = time.Now().Add(-time.Minute).Unix()
	if err := s.DB.SaveKey(k); err != nil {
		return fmt.Errorf("awskmstest: save %s: %w", arn, err)
	}
	if _, err := s.DB.LoadKey(arn); err == nil {
		return fmt.Errorf("awskmstest: local-kms still has %s after its deletion date", arn)
	}
	return nil
}

// DenyAccess makes every request fail with AccessDeniedException, as when
// the caller's IAM permissions are removed, until DenyAccess(false).
func (s *Server) DenyAccess(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// Throttle makes every request fail with ThrottlingException until
// Throttle(false).
func (s *Server) Throttle(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = on
}

// Stop closes the server: its port refuses connections from then on. It is
// idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	stopped := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if !stopped {
		s.srv.CloseClientConnections()
		s.srv.Close()
	}
}

// Calls returns the requests seen for op (e.g. "Decrypt"), faults included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Total returns every request seen, faults included.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Opener returns an opener of aws-kms URIs that checks each URI with
// awskms.Open (as the default registry does) and then reaches the key
// through a client built as Open builds it, but with the test's credentials
// instead of the SDK's credential chain (which an AUTH=implicit URI leaves
// to the environment): the URI's endpoint and region,
// awskms.DefaultMaxAttempts attempts (the production budget) and backoff
// capped at maxBackoff (awskms.DefaultMaxBackoff in production; tests of
// retries running out pass a millisecond).
func Opener(maxBackoff time.Duration) provider.Opener {
	return func(u *url.URL) (provider.Key, error) {
		k, err := awskms.Open(u)
		if err != nil {
			return nil, err
		}
		endpoint := u.Query().Get("AWS_ENDPOINT")
		client := kms.New(kms.Options{
			Region:       u.Query().Get("REGION"),
			BaseEndpoint: aws.String(endpoint),
			Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretKey, ""),
			Retryer: awskms.NewRetryer(awskms.DefaultMaxAttempts, maxBackoff, func(o *retry.StandardOptions) {
				o.RateLimiter = ratelimit.None
			}),
		})
		return WithSTS(awskms.New(client, k.(*awskms.Key).KeyID(), u.String()), u), nil
	}
}

// WithSTS gives key an STS client for the URI's AWS_STS_ENDPOINT (the fake
// STS beside the server), with the test's credentials, as awskms.Open
// would; a URI without one leaves key with none (no pin, no proof).
func WithSTS(key *awskms.Key, u *url.URL) *awskms.Key {
	e := u.Query().Get("AWS_STS_ENDPOINT")
	if e == "" {
		return key
	}
	return key.WithSTS(sts.New(sts.Options{
		Region:       u.Query().Get("REGION"),
		BaseEndpoint: aws.String(e),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretKey, ""),
	}))
}

func parseRSAPublicKey(der []byte) (*rsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("awskmstest: import public key: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("awskmstest: import public key is a %T, not RSA", k)
	}
	return pub, nil
}
