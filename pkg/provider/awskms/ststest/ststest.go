// Package ststest is a fake AWS STS for tests, written here: local-kms, the
// KMS emulator the tests use, has no STS. It listens on 127.0.0.1 and
// answers GetCallerIdentity only, in STS's real wire protocol, the AWS query
// protocol: POST / with a form body (Action=GetCallerIdentity,
// Version=2011-06-15) signed with SigV4 for the "sts" service, answered by
// an XML GetCallerIdentityResponse; any other action or a request not
// signed for STS gets STS's XML ErrorResponse. The official
// aws-sdk-go-v2/service/sts client talks to it unchanged (Client, or an
// aws-kms URI's AWS_STS_ENDPOINT). The account it answers can be changed,
// to stand for credentials of another account.
//
// It is for tests only; it checks no signature, only that there is one.
package ststest

import (
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const xmlns = "https://sts.amazonaws.com/doc/2011-06-15/"

// Server is the fake STS.
type Server struct {
	URL string // http://127.0.0.1:PORT

	mu      sync.Mutex
	account string
	calls   int
}

// Start runs a fake STS answering for account until the test ends.
func Start(t testing.TB, account string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ststest: listen on 127.0.0.1: %v", err)
	}
	s := &Server{account: account}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(s.serve)}}
	srv.Start()
	s.URL = srv.URL
	t.Cleanup(srv.Close)
	return s
}

// SetAccount changes the account the caller is said to be in.
func (s *Server) SetAccount(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account = account
}

// Calls is how many GetCallerIdentity calls were answered.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Client is the official STS client pointed at the server, with made-up
// credentials.
func (s *Server) Client(region string) *sts.Client {
	return sts.New(sts.Options{
		Region:       region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIACMEKCTLSTSTEST", "cmekctl-sts-test-not-a-real-key", ""),
	})
}

type callerIdentity struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeError(w, 400, "InvalidRequest", "ststest: expected a query-protocol POST /")
		return
	}
	if !strings.Contains(r.Header.Get("Authorization"), "/sts/aws4_request") {
		writeError(w, 403, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, 400, "MalformedQueryString", err.Error())
		return
	}
	if a, v := r.PostForm.Get("Action"), r.PostForm.Get("Version"); a != "GetCallerIdentity" || v != "2011-06-15" {
		writeError(w, 400, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", a, v))
		return
	}
	s.mu.Lock()
	s.calls++
	account := s.account
	s.mu.Unlock()
	var out callerIdentity
	out.Xmlns = xmlns
	out.Result.Account = account
	out.Result.UserID = "AIDACMEKCTLSTSTEST"
	out.Result.Arn = "arn:aws:iam::" + account + ":user/cmekctl-test"
	out.RequestID = "ststest-0001"
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", out.RequestID)
	_ = xml.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e errorResponse
	e.Xmlns = xmlns
	e.Error.Type, e.Error.Code, e.Error.Message = "Sender", code, msg
	e.RequestID = "ststest-error"
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_ = xml.NewEncoder(w).Encode(e)
}
