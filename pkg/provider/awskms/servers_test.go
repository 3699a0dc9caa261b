package awskms

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/cmekctl/cmekctl/internal/fipstest"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms/ststest"
	localkms "github.com/nsmithuk/local-kms/src"
	lkconfig "github.com/nsmithuk/local-kms/src/config"
	lkdata "github.com/nsmithuk/local-kms/src/data"
)

const (
	testRegion  = "eu-west-2"
	testAccount = "111122223333"
	// Fake credentials made up for the tests; no server here checks them.
	testAccessKeyID = "AKIACMEKCTLTESTONLY"
	testSecretKey   = "cmekctl-test-secret-not-a-real-key"
	// testAttempts bounds the test clients' retries (the first attempt included).
	testAttempts = 3
)

// localKMS is github.com/nsmithuk/local-kms (an independent AWS KMS emulator)
// running in process on an httptest server bound to 127.0.0.1, with its
// LevelDB database in a temporary directory.
type localKMS struct {
	URL string
	DB  *lkdata.Database

	mu   sync.Mutex
	auth []string // Authorization headers seen, to check which credentials signed
}

var localKMSConfigOnce sync.Once

func startLocalKMS(t *testing.T) *localKMS {
	t.Helper()
	// local-kms keeps its region and account in package variables.
	localKMSConfigOnce.Do(func() {
		lkconfig.AWSRegion = testRegion
		lkconfig.AWSAccountId = testAccount
	})
	l := &localKMS{DB: lkdata.NewDatabase(t.TempDir())}
	srv := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.auth = append(l.auth, r.Header.Get("Authorization"))
		l.mu.Unlock()
		localkms.HandleRequest(w, r, l.DB)
	}))
	t.Cleanup(func() { srv.Close(); l.DB.Close() })
	l.URL = srv.URL
	return l
}

func (l *localKMS) authorizations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.auth...)
}

// newLoopbackServer starts an httptest server on 127.0.0.1 only.
func newLoopbackServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: fipstest.Handler(h)}}
	srv.Start()
	return srv
}

// newClient returns the official KMS client pointed at endpoint, with fake
// static credentials and a retryer of testAttempts attempts, millisecond
// backoff and no retry quota, so attempts can be counted exactly.
// testSTS is a fake STS (ststest) answering for testAccount, for Pin and
// Prove's caller check.
func testSTS(t testing.TB) *sts.Client { return ststest.Start(t, testAccount).Client(testRegion) }

func newClient(endpoint string) *kms.Client {
	return kms.New(kms.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKeyID, testSecretKey, ""),
		Retryer: NewRetryer(testAttempts, time.Millisecond, func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.None
		}),
	})
}

// reply is one scripted answer of the fault server.
type reply struct {
	Status int
	Body   string
	Date   time.Time // the Date header, when the test sets AWS's clock
}

// errorReply is AWS's documented awsJson1_1 error body for code.
func errorReply(status int, code, message string) reply {
	b, _ := json.Marshal(map[string]string{"__type": code, "message": message})
	return reply{Status: status, Body: string(b)}
}

func okReply(v any) reply {
	b, _ := json.Marshal(v)
	return reply{Status: 200, Body: string(b)}
}

// faultKMS is a fake, not an emulator: an HTTP server on 127.0.0.1 that
// speaks the AWS KMS awsJson1_1 wire protocol (POST /, X-Amz-Target:
// TrentService.<Operation>, Content-Type application/x-amz-json-1.1) and
// answers each operation with a scripted reply: AWS's documented JSON error
// body ({"__type": code, "message": ...}, header x-amzn-RequestId) or a
// success body. It covers what local-kms cannot: the error codes real AWS
// returns where local-kms differs, throttling, 5xx and RotateKeyOnDemand.
type faultKMS struct {
	URL string

	mu      sync.Mutex
	replies map[string]reply // by operation; "*" for any other
	calls   map[string]int
	bodies  map[string][]map[string]any
}

func startFaultKMS(t *testing.T, replies map[string]reply) *faultKMS {
	t.Helper()
	f := &faultKMS{replies: replies, calls: map[string]int{}, bodies: map[string][]map[string]any{}}
	srv := newLoopbackServer(t, http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *faultKMS) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "TrentService.")
	if r.Method != http.MethodPost || !ok || !strings.Contains(r.Header.Get("Content-Type"), "x-amz-json-1.1") {
		http.Error(w, "not an awsJson1_1 KMS request", http.StatusBadRequest)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	f.bodies[op] = append(f.bodies[op], body)
	rep, ok := f.replies[op]
	if !ok {
		rep, ok = f.replies["*"]
	}
	f.mu.Unlock()
	if !ok {
		rep = errorReply(400, "UnknownOperationException", "fault server has no reply for "+op)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", fmt.Sprintf("req-%s-%d", op, n))
	if !rep.Date.IsZero() {
		w.Header().Set("Date", rep.Date.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(rep.Status)
	_, _ = io.WriteString(w, rep.Body)
}

func (f *faultKMS) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *faultKMS) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (f *faultKMS) lastBody(op string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bodies[op]
	if len(b) == 0 {
		return nil
	}
	return b[len(b)-1]
}

// downURL returns the URL of a listener on 127.0.0.1 that has been closed:
// connections to it are refused.
func downURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testURI(keyID string) string {
	return "aws-kms:///" + keyID + "?AUTH=implicit&REGION=" + testRegion
}

// metadata is a DescribeKey KeyMetadata body for the fault server.
func metadata(arn, state string, deletion *time.Time) map[string]any {
	m := map[string]any{
		"Arn": arn, "KeyId": arn[strings.LastIndex(arn, "/")+1:], "KeyState": state, "Enabled": state == "Enabled",
		"Origin": "AWS_KMS", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "KeyManager": "CUSTOMER",
	}
	if deletion != nil {
		m["DeletionDate"] = float64(deletion.Unix())
	}
	return map[string]any{"KeyMetadata": m}
}
