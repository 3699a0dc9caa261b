package awskms

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeSTS is a fake, not an emulator: an HTTP server on 127.0.0.1 that
// speaks STS's awsQuery wire protocol for AssumeRole only (form-encoded
// Action=AssumeRole, XML reply) and hands out made-up credentials
// ASIAASSUMED<n>, recording the role asked for and the key that signed.
type fakeSTS struct {
	mu    sync.Mutex
	roles []string
	signs []string
}

func (s *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "AssumeRole" {
		http.Error(w, "fake STS: only AssumeRole", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.roles = append(s.roles, form.Get("RoleArn"))
	s.signs = append(s.signs, r.Header.Get("Authorization"))
	n := len(s.roles)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleResult><Credentials><AccessKeyId>ASIAASSUMED%d</AccessKeyId><SecretAccessKey>assumed-secret-%d</SecretAccessKey><SessionToken>assumed-token-%d</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/r%d/cmekctl</Arn><AssumedRoleId>AROATEST%d:cmekctl</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>
<ResponseMetadata><RequestId>sts-%d</RequestId></ResponseMetadata></AssumeRoleResponse>`, n, n, n, n, n, n)
}

// TestAssumeRoleChain: ASSUME_ROLE=r1,r2 assumes r1 with the URI's
// credentials, r2 with r1's, and KMS calls are signed with r2's.
func TestAssumeRoleChain(t *testing.T) {
	sts := &fakeSTS{}
	stsSrv := newLoopbackServer(t, sts)
	t.Cleanup(stsSrv.Close)
	t.Setenv("AWS_ENDPOINT_URL_STS", stsSrv.URL)
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")

	l := startLocalKMS(t)
	arn := newLocalKey(t, l).keyID
	const r1, r2 = "arn:aws:iam::111122223333:role/first", "arn:aws:iam::444455556666:role/second"
	raw := "aws-kms:///" + arn + "?REGION=" + testRegion + "&AUTH=specified&AWS_ACCESS_KEY_ID=AKIABASE&AWS_SECRET_ACCESS_KEY=" + testSecretKey +
		"&ASSUME_ROLE=" + url.QueryEscape(r1+","+r2) + "&AWS_ENDPOINT=" + l.URL
	k, err := Open(mustParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("0123456789abcdef0123456789abcdef")
	w, err := k.Wrap(testCtx(t), pt, testAAD)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Unwrap(testCtx(t), w, testAAD); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("unwrap: %v", err)
	}
	sts.mu.Lock()
	roles, signs := append([]string(nil), sts.roles...), append([]string(nil), sts.signs...)
	sts.mu.Unlock()
	if len(roles) != 2 || roles[0] != r1 || roles[1] != r2 {
		t.Fatalf("roles assumed: %v, want [%s %s] once each", roles, r1, r2)
	}
	if !strings.Contains(signs[0], "Credential=AKIABASE/") || !strings.Contains(signs[1], "Credential=ASIAASSUMED1/") {
		t.Fatalf("AssumeRole signed by %q then %q", signs[0], signs[1])
	}
	auth := l.authorizations()
	last := auth[len(auth)-1]
	if !strings.Contains(last, "Credential=ASIAASSUMED2/") {
		t.Fatalf("KMS call signed with %q, want the second role's credentials", last)
	}
}
