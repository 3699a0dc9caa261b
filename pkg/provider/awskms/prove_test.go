package awskms

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms/ststest"
)

// TestWrongPlaceIsNeverDestroyed: a key wrapped on one local-kms, then asked
// about at another endpoint (another account or profile as the SDK's
// environment would pick it: AWS_ENDPOINT_URL_KMS, a profile), is not found
// there. The unwrap is REVOKED and Prove reports the mismatch, never proof.
// Today's rule (not found, then DescribeKey not found: DESTROYED) fails it.
func TestWrongPlaceIsNeverDestroyed(t *testing.T) {
	a, b := startLocalKMS(t), startLocalKMS(t)
	ctx := testCtx(t)
	k := newLocalKey(t, a)
	w, err := k.Wrap(ctx, []byte("0123456789abcdef0123456789abcdef"), testAAD)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := k.Pin(ctx, w)
	if err != nil || pin[IDArn] != k.keyID || pin[IDAccount] != testAccount || pin[IDRegion] != testRegion || pin[IDEndpoint] != a.URL || pin[IDCaller] != testAccount {
		t.Fatalf("pin: %v %v", pin, err)
	}
	elsewhere := New(newClient(b.URL), k.keyID, testURI(k.keyID)).WithSTS(k.sts)
	_, err = elsewhere.Unwrap(ctx, w, testAAD)
	if c := provider.Classify(err); c == provider.Destroyed || err == nil {
		t.Fatalf("unwrap at another endpoint: %v (class %s): not found there is not proof", err, c)
	}
	pr, err := elsewhere.Prove(ctx, pin)
	if err != nil || pr.Destroyed || !strings.Contains(pr.Mismatch, "endpoint") {
		t.Fatalf("prove at another endpoint: %+v %v", pr, err)
	}
	// Another region of the same endpoint: a mismatch too.
	c := kms.New(newClient(a.URL).Options(), func(o *kms.Options) { o.Region = "us-east-1" })
	pr, err = New(c, k.keyID, testURI(k.keyID)).WithSTS(k.sts).Prove(ctx, pin)
	if err != nil || pr.Destroyed || !strings.Contains(pr.Mismatch, "region") {
		t.Fatalf("prove from another region: %+v %v", pr, err)
	}
	// In its own place, alive: no proof; deleted: proof.
	if pr, err = k.Prove(ctx, pin); err != nil || pr.Destroyed || pr.Mismatch != "" {
		t.Fatalf("prove of a live key: %+v %v", pr, err)
	}
	if _, err := k.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if pr, err = k.Prove(ctx, pin); err != nil || pr.Destroyed {
		t.Fatalf("prove of a key pending deletion: %+v %v", pr, err)
	}
	expireDeletion(t, a, k.keyID)
	if pr, err = k.Prove(ctx, pin); err != nil || !pr.Destroyed || pr.State.State != provider.StateNotFound {
		t.Fatalf("prove of a deleted key: %+v %v", pr, err)
	}
	// An alias URI proves through the pinned ARN, never the alias.
	if pr, err = New(newClient(a.URL), "alias/gone", testURI("alias/gone")).WithSTS(k.sts).Prove(ctx, pin); err != nil || !pr.Destroyed {
		t.Fatalf("prove through an alias URI: %+v %v", pr, err)
	}
	// Unpinned: nothing is proof.
	if pr, err = k.Prove(ctx, nil); err != nil || pr.Destroyed {
		t.Fatalf("prove without a pin: %+v %v", pr, err)
	}
}

// TestClockSkewDoesNotDestroy: a key pending deletion whose date has passed
// by the local clock, but not by AWS's (the response's Date header), is
// PENDING_DELETION, never DESTROYED; and even past AWS's clock, a key AWS
// still describes is not deleted. Today's code judged the date by the local
// clock and said DESTROYED.
func TestClockSkewDoesNotDestroy(t *testing.T) {
	local := time.Now()
	deletion := local.Add(-time.Hour)     // passed, by the local clock
	awsClock := local.Add(-2 * time.Hour) // AWS is two hours behind
	for _, server := range []time.Time{awsClock, local} {
		d := okReply(metadata(faultARN, "PendingDeletion", &deletion))
		d.Date = server
		f := startFaultKMS(t, map[string]reply{"DescribeKey": d, "GetKeyRotationStatus": okReply(map[string]any{"KeyRotationEnabled": false})})
		k := New(newClient(f.URL), faultARN, testURI(faultARN)).WithSTS(testSTS(t))
		st, err := k.Describe(testCtx(t))
		if err != nil || st.State != provider.StatePendingDeletion {
			t.Fatalf("AWS clock %v: describe %v, state %s, want PENDING_DELETION", server, err, st.State)
		}
		pin := provider.KeyIdentity{IDArn: faultARN, IDAccount: testAccount, IDRegion: testRegion, IDEndpoint: f.URL}
		pr, err := k.Prove(testCtx(t), pin)
		if err != nil || pr.Destroyed || pr.ServerTime.Unix() != server.Unix() {
			t.Fatalf("AWS clock %v: prove %+v %v", server, pr, err)
		}
	}
}

// TestMultiRegionNotFoundIsNotProof: a multi-region key not found in one
// region may live on as its primary or another replica.
func TestMultiRegionNotFoundIsNotProof(t *testing.T) {
	arn := "arn:aws:kms:" + testRegion + ":" + testAccount + ":key/mrk-1234abcd12ab34cd56ef1234567890ab"
	f := startFaultKMS(t, map[string]reply{"DescribeKey": errorReply(400, "NotFoundException", "Key '"+arn+"' does not exist")})
	k := New(newClient(f.URL), arn, testURI(arn)).WithSTS(testSTS(t))
	pr, err := k.Prove(testCtx(t), provider.KeyIdentity{IDArn: arn, IDAccount: testAccount, IDRegion: testRegion, IDEndpoint: f.URL})
	if err != nil || pr.Destroyed || !strings.Contains(pr.Reason, "multi-region") {
		t.Fatalf("prove: %+v %v", pr, err)
	}
}

// TestWrongAccountIsNeverDestroyed: the caller's account, by STS
// GetCallerIdentity (ststest, STS's query protocol through the official
// client), is pinned with the key; a caller in another account than the
// key's, or than the pinned one, gets no proof from AWS's NotFound, only an
// identity mismatch (INCONCLUSIVE). The code before this checked no caller
// and said DESTROYED.
func TestWrongAccountIsNeverDestroyed(t *testing.T) {
	a := startLocalKMS(t)
	ctx := testCtx(t)
	stsSrv := ststest.Start(t, testAccount)
	k := newLocalKey(t, a).WithSTS(stsSrv.Client(testRegion))
	w, err := k.Wrap(ctx, []byte("0123456789abcdef0123456789abcdef"), testAAD)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := k.Pin(ctx, w)
	if err != nil || pin[IDCaller] != testAccount || stsSrv.Calls() != 1 {
		t.Fatalf("pin: %v %v (%d STS calls)", pin, err, stsSrv.Calls())
	}
	if _, err := k.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	expireDeletion(t, a, k.keyID)
	const other = "999988887777"
	stsSrv.SetAccount(other)
	pr, err := k.Prove(ctx, pin)
	if err != nil || pr.Destroyed || !strings.Contains(pr.Mismatch, "the caller is in account "+other+", the pinned key in account "+testAccount) {
		t.Fatalf("prove from another account: %+v %v", pr, err)
	}
	// An older pin, made before the caller was pinned: the key's account
	// decides.
	old := provider.KeyIdentity{IDArn: pin[IDArn], IDAccount: pin[IDAccount], IDRegion: pin[IDRegion], IDEndpoint: pin[IDEndpoint]}
	if pr, err = k.Prove(ctx, old); err != nil || pr.Destroyed || pr.Mismatch == "" {
		t.Fatalf("older pin, another account: %+v %v", pr, err)
	}
	// A key of another account than the caller's (a cross-account grant)
	// is pinned, and never proven destroyed, even by the pinned caller.
	cross := provider.KeyIdentity{IDArn: pin[IDArn], IDAccount: pin[IDAccount], IDRegion: pin[IDRegion], IDEndpoint: pin[IDEndpoint], IDCaller: other}
	if pr, err = k.Prove(ctx, cross); err != nil || pr.Destroyed || !strings.Contains(pr.Mismatch, "account") {
		t.Fatalf("cross-account key: %+v %v", pr, err)
	}
	// STS unreachable: an error, never proof; no STS client: a mismatch.
	down := k.WithSTS(sts.New(sts.Options{Region: testRegion, BaseEndpoint: aws.String(downURL(t)), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKeyID, testSecretKey, "")}))
	if pr, err = down.Prove(ctx, pin); err == nil || pr.Destroyed {
		t.Fatalf("STS down: %+v %v", pr, err)
	}
	if pr, err = k.WithSTS(nil).Prove(ctx, pin); err != nil || pr.Destroyed || !strings.Contains(pr.Mismatch, "no STS client") {
		t.Fatalf("no STS: %+v %v", pr, err)
	}
	if _, err := k.WithSTS(nil).Pin(ctx, w); err == nil {
		t.Fatal("pinned with no STS client")
	}
	// The right account again: proof (the cell above tested something).
	stsSrv.SetAccount(testAccount)
	if pr, err = k.Prove(ctx, pin); err != nil || !pr.Destroyed {
		t.Fatalf("prove from the key's account: %+v %v", pr, err)
	}
}
