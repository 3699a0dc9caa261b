package awskms

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

const faultARN = "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// TestDocumentedErrors drives every row of the error-class table
// (docs/providers/aws.md) through the official client against the fault
// server: the class, AWS's code, message and request ID in the error, and
// the number of attempts (TRANSIENT rows are retried up to the bound,
// nothing else is retried).
func TestDocumentedErrors(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	future := time.Now().Add(7 * 24 * time.Hour)
	rows := []struct {
		name     string
		op       string // Decrypt (unwrap), Encrypt (wrap) or DescribeKey (describe)
		reply    reply
		describe *reply // DescribeKey's answer, for NotFoundException rows
		keyID    string
		class    provider.Class
	}{
		{"DisabledException", "Decrypt", errorReply(400, "DisabledException", faultARN+" is disabled."), nil, faultARN, provider.Revoked},
		{"DisabledException/Encrypt", "Encrypt", errorReply(400, "DisabledException", faultARN+" is disabled."), nil, faultARN, provider.Revoked},
		{"KMSInvalidStateException", "Decrypt", errorReply(400, "KMSInvalidStateException", faultARN+" is pending deletion."), nil, faultARN, provider.Revoked},
		{"KMSInvalidStateException/Encrypt", "Encrypt", errorReply(400, "KMSInvalidStateException", faultARN+" is pending import."), nil, faultARN, provider.Revoked},
		{"AccessDeniedException", "Decrypt", errorReply(400, "AccessDeniedException", "User is not authorized to perform: kms:Decrypt"), nil, faultARN, provider.Revoked},
		{"AccessDeniedException/DescribeKey", "DescribeKey", errorReply(400, "AccessDeniedException", "User is not authorized to perform: kms:DescribeKey"), nil, faultARN, provider.Revoked},
		{"NotFound/DescribeKeyNotFound", "Decrypt", errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
			ptr(errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist")), faultARN, provider.Revoked},
		{"NotFound/Encrypt/DescribeKeyNotFound", "Encrypt", errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
			ptr(errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist")), faultARN, provider.Revoked},
		{"NotFound/DescribeKeyPendingDeletionExpired", "Decrypt", errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
			ptr(okReply(metadata(faultARN, "PendingDeletion", &past))), faultARN, provider.Revoked},
		{"NotFound/DescribeKeyPendingDeletion", "Decrypt", errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
			ptr(okReply(metadata(faultARN, "PendingDeletion", &future))), faultARN, provider.Revoked},
		{"NotFound/DescribeKeyEnabled", "Decrypt", errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
			ptr(okReply(metadata(faultARN, "Enabled", nil))), faultARN, provider.Revoked},
		{"NotFound/DescribeKeyAccessDenied", "Decrypt", errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
			ptr(errorReply(400, "AccessDeniedException", "not authorized")), faultARN, provider.Revoked},
		// An alias that is gone proves nothing about its key; with no
		// recorded ARN there is nothing to ask DescribeKey about.
		{"NotFound/AliasGone", "Decrypt", errorReply(400, "NotFoundException", "Alias arn:aws:kms:eu-west-2:111122223333:alias/x is not found."),
			ptr(errorReply(400, "NotFoundException", "should not be asked")), "alias/x", provider.Revoked},
		{"InvalidCiphertextException", "Decrypt", errorReply(400, "InvalidCiphertextException", ""), nil, faultARN, provider.Misuse},
		{"IncorrectKeyException", "Decrypt", errorReply(400, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation."), nil, faultARN, provider.Misuse},
		{"ValidationException", "Encrypt", errorReply(400, "ValidationException", "1 validation error detected: Value at 'plaintext' failed to satisfy constraint"), nil, faultARN, provider.Misuse},
		{"InvalidKeyUsageException", "Encrypt", errorReply(400, "InvalidKeyUsageException", faultARN+" key usage is SIGN_VERIFY which is not valid for Encrypt."), nil, faultARN, provider.Misuse},
		{"InvalidGrantTokenException", "Decrypt", errorReply(400, "InvalidGrantTokenException", "grant token is not valid"), nil, faultARN, provider.Misuse},
		{"UnrecognizedClientException", "Decrypt", errorReply(400, "UnrecognizedClientException", "The security token included in the request is invalid."), nil, faultARN, provider.Misuse},
		{"ThrottlingException", "Decrypt", errorReply(400, "ThrottlingException", "Rate exceeded"), nil, faultARN, provider.Transient},
		{"LimitExceededException", "Encrypt", errorReply(400, "LimitExceededException", "Request rate exceeded"), nil, faultARN, provider.Transient},
		{"KMSInternalException", "Decrypt", errorReply(500, "KMSInternalException", "internal error"), nil, faultARN, provider.Transient},
		{"KMSInternalException/400", "Decrypt", errorReply(400, "KMSInternalException", "internal error"), nil, faultARN, provider.Transient},
		{"DependencyTimeoutException", "Decrypt", errorReply(503, "DependencyTimeoutException", "timed out"), nil, faultARN, provider.Transient},
		{"KeyUnavailableException", "Decrypt", errorReply(500, "KeyUnavailableException", "key unavailable"), nil, faultARN, provider.Transient},
		{"5xx/502", "Decrypt", reply{Status: 502, Body: "<html>Bad Gateway</html>"}, nil, faultARN, provider.Transient},
		{"5xx/503", "DescribeKey", reply{Status: 503, Body: ""}, nil, faultARN, provider.Transient},
		{"5xx/InternalFailure", "Encrypt", errorReply(500, "InternalFailure", "internal failure"), nil, faultARN, provider.Transient},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			replies := map[string]reply{row.op: row.reply}
			if row.describe != nil {
				replies["DescribeKey"] = *row.describe
			}
			f := startFaultKMS(t, replies)
			k := New(newClient(f.URL), row.keyID, testURI(row.keyID))
			ctx := testCtx(t)
			var err error
			switch row.op {
			case "Decrypt":
				_, err = k.Unwrap(ctx, provider.Wrapped{Ciphertext: []byte("blob")}, testAAD)
			case "Encrypt":
				_, err = k.Wrap(ctx, []byte("key"), testAAD)
			case "DescribeKey":
				_, err = k.Describe(ctx)
			}
			e := pe(t, err)
			if e.Class != row.class {
				t.Fatalf("%v: class %s, want %s", err, e.Class, row.class)
			}
			if provider.Classify(err) != row.class {
				t.Fatalf("provider.Classify: %s", provider.Classify(err))
			}
			if !strings.HasPrefix(err.Error(), "aws kms: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error text %q: want one line starting with the provider name", err)
			}
			wantAttempts := 1
			if row.class == provider.Transient {
				wantAttempts = testAttempts
			}
			if n := f.count(row.op); n != wantAttempts {
				t.Fatalf("%s called %d times, want %d", row.op, n, wantAttempts)
			}
			if strings.HasPrefix(row.reply.Body, "{") {
				code := strings.Split(row.name, "/")[0]
				if code == "NotFound" {
					code = "NotFoundException"
				}
				if code == "5xx" {
					code = "InternalFailure"
				}
				if e.Code != code {
					t.Fatalf("code %q, want %q", e.Code, code)
				}
				if want := "req-" + row.op + "-"; !strings.HasPrefix(e.RequestID, want) {
					t.Fatalf("request ID %q, want %s<n>", e.RequestID, want)
				}
			}
			if row.describe != nil {
				// Not found is never proof, whatever DescribeKey would
				// say: classifying it asks nothing more.
				if asked := f.count("DescribeKey"); asked != 0 {
					t.Fatalf("DescribeKey asked %d times, want 0", asked)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestNotFoundIsNeverDestroyed: a NotFoundException, for a key ARN or an
// alias, and whatever DescribeKey would answer, is REVOKED: it is also what
// AWS tells a caller in another account, region or endpoint.
func TestNotFoundIsNeverDestroyed(t *testing.T) {
	for _, id := range []string{faultARN, "alias/x"} {
		f := startFaultKMS(t, map[string]reply{
			"Decrypt":     errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
			"DescribeKey": errorReply(400, "NotFoundException", "Key '"+faultARN+"' does not exist"),
		})
		k := New(newClient(f.URL), id, testURI(id))
		_, err := k.Unwrap(testCtx(t), provider.Wrapped{Ciphertext: []byte("blob"), KeyVersion: faultARN}, testAAD)
		if provider.Classify(err) != provider.Revoked || !strings.Contains(err.Error(), "not proof") {
			t.Fatalf("%s: %v: class %s, want REVOKED saying it is not proof", id, err, provider.Classify(err))
		}
		if got := f.lastBody("Decrypt")["KeyId"]; got != id {
			t.Fatalf("Decrypt KeyId %v, want the URI's %s", got, id)
		}
	}
}

// TestThrottledBeyondBudget: a server that throttles every request gets
// exactly the retryer's bound of attempts, then a TRANSIENT error.
func TestThrottledBeyondBudget(t *testing.T) {
	f := startFaultKMS(t, map[string]reply{"*": errorReply(400, "ThrottlingException", "Rate exceeded")})
	k := New(newClient(f.URL), faultARN, testURI(faultARN))
	// The SDK's retryer tells the call's observer of every attempt (the
	// progress lines of cmekctl at a terminal).
	var seen []int
	ctx := provider.WithAttempts(testCtx(t), func(max int) { seen = append(seen, max) })
	_, err := k.Unwrap(ctx, provider.Wrapped{Ciphertext: []byte("blob")}, testAAD)
	if provider.Classify(err) != provider.Transient || pe(t, err).Code != "ThrottlingException" {
		t.Fatalf("%v: want ThrottlingException TRANSIENT", err)
	}
	if n := f.total(); n != testAttempts {
		t.Fatalf("%d requests reached the server, want the bound %d", n, testAttempts)
	}
	if len(seen) != testAttempts || seen[0] != testAttempts {
		t.Fatalf("attempts observed: %v, want %d of %d", seen, testAttempts, testAttempts)
	}
	// The production bound is the same retryer with DefaultMaxAttempts.
	if got := NewRetryer(DefaultMaxAttempts, DefaultMaxBackoff).MaxAttempts(); got != DefaultMaxAttempts {
		t.Fatalf("default retryer: %d attempts", got)
	}
}

// TestServerDown: a closed listener on 127.0.0.1 gives a TRANSIENT network
// error after the bounded retries.
func TestServerDown(t *testing.T) {
	k := New(newClient(downURL(t)), faultARN, testURI(faultARN))
	start := time.Now()
	_, err := k.Unwrap(testCtx(t), provider.Wrapped{Ciphertext: []byte("blob")}, testAAD)
	if provider.Classify(err) != provider.Transient {
		t.Fatalf("%v: class %s, want TRANSIENT", err, provider.Classify(err))
	}
	if !provider.IsTransientNetwork(err) {
		t.Fatalf("%v: not recognised as a network error", err)
	}
	if !strings.Contains(err.Error(), "exceeded maximum number of attempts, 3") {
		t.Fatalf("%v: want the SDK's bound of %d attempts in the error", err, testAttempts)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("server down took %v", d)
	}
}

// TestRotate: Rotate calls RotateKeyOnDemand for the URI's key (local-kms
// answers it with 501), then describes the key.
func TestRotate(t *testing.T) {
	started := time.Now().UTC().Truncate(time.Second)
	f := startFaultKMS(t, map[string]reply{
		"RotateKeyOnDemand":    okReply(map[string]any{"KeyId": faultARN}),
		"DescribeKey":          okReply(metadata(faultARN, "Enabled", nil)),
		"GetKeyRotationStatus": okReply(map[string]any{"KeyId": faultARN, "KeyRotationEnabled": true, "RotationPeriodInDays": 365, "OnDemandRotationStartDate": float64(started.Unix())}),
	})
	k := New(newClient(f.URL), faultARN, testURI(faultARN))
	st, err := k.Rotate(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if f.count("RotateKeyOnDemand") != 1 || f.lastBody("RotateKeyOnDemand")["KeyId"] != faultARN {
		t.Fatalf("RotateKeyOnDemand calls %d, body %v", f.count("RotateKeyOnDemand"), f.lastBody("RotateKeyOnDemand"))
	}
	if st.Details["on_demand_rotation_started"] != started.Format(time.RFC3339) || st.Details["rotation_period_days"] != "365" {
		t.Fatalf("rotation details: %v", st.Details)
	}

	// A rotation AWS refuses (e.g. a key pending deletion) keeps AWS's class.
	f2 := startFaultKMS(t, map[string]reply{"RotateKeyOnDemand": errorReply(400, "KMSInvalidStateException", faultARN+" is pending deletion.")})
	_, err = New(newClient(f2.URL), faultARN, testURI(faultARN)).Rotate(testCtx(t))
	if provider.Classify(err) != provider.Revoked || pe(t, err).Op != "rotate" {
		t.Fatalf("rotate refused: %v", err)
	}
}

// TestDescribeRotationStatusFailure: a failure of GetKeyRotationStatus does
// not fail Describe; Details says the status is unknown and why.
func TestDescribeRotationStatusFailure(t *testing.T) {
	f := startFaultKMS(t, map[string]reply{
		"DescribeKey":          okReply(metadata(faultARN, "Disabled", nil)),
		"GetKeyRotationStatus": errorReply(400, "AccessDeniedException", "not authorized to perform kms:GetKeyRotationStatus"),
	})
	st, err := New(newClient(f.URL), faultARN, testURI(faultARN)).Describe(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != provider.StateDisabled || !strings.HasPrefix(st.Details["rotation_status"], "unknown: aws kms: get rotation status: AccessDeniedException") {
		t.Fatalf("state %s, details %v", st.State, st.Details)
	}
	if f.count("GetKeyRotationStatus") != 1 {
		t.Fatal("the failed rotation-status call was retried")
	}
}

// TestDescribeStates maps each AWS KeyState.
func TestDescribeStates(t *testing.T) {
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, c := range []struct {
		state    string
		deletion *time.Time
		want     provider.State
	}{
		{"Enabled", nil, provider.StateEnabled},
		{"Disabled", nil, provider.StateDisabled},
		{"PendingImport", nil, provider.StateDisabled},
		{"PendingDeletion", &future, provider.StatePendingDeletion},
		{"PendingReplicaDeletion", &future, provider.StatePendingDeletion},
		// A key AWS still describes is not deleted, whatever its date.
		{"PendingDeletion", &past, provider.StatePendingDeletion},
		{"Unavailable", nil, provider.StateUnknown},
		{"Creating", nil, provider.StateUnknown},
	} {
		f := startFaultKMS(t, map[string]reply{"DescribeKey": okReply(metadata(faultARN, c.state, c.deletion)), "GetKeyRotationStatus": okReply(map[string]any{"KeyRotationEnabled": false})})
		st, err := New(newClient(f.URL), faultARN, testURI(faultARN)).Describe(testCtx(t))
		if err != nil || st.State != c.want || st.Details["key_state"] != c.state {
			t.Errorf("%s: %v, state %s, want %s", c.state, err, st.State, c.want)
		}
		if c.deletion != nil && st.DeletionDate.Unix() != c.deletion.Unix() {
			t.Errorf("%s: deletion date %v, want %v", c.state, st.DeletionDate, *c.deletion)
		}
	}
	f := startFaultKMS(t, map[string]reply{"DescribeKey": errorReply(400, "NotFoundException", "Key does not exist")})
	st, err := New(newClient(f.URL), faultARN, testURI(faultARN)).Describe(testCtx(t))
	if err != nil || st.State != provider.StateNotFound || st.Details["request_id"] != "req-DescribeKey-1" {
		t.Fatalf("describe of a missing key: %v, %+v", err, st)
	}
}

// TestErrorsCarryNoSecrets: an error from a key opened with AUTH=specified
// never holds the secret key or session token.
func TestErrorsCarryNoSecrets(t *testing.T) {
	const secret, token = "SECRETsecretSECRET0123456789", "TOKENtokenTOKEN9876543210"
	f := startFaultKMS(t, map[string]reply{"*": errorReply(400, "AccessDeniedException", "denied")})
	for _, endpoint := range []string{f.URL} {
		k, err := Open(mustParse(t, "aws-kms:///"+faultARN+"?REGION=eu-west-2&AUTH=specified&AWS_ACCESS_KEY_ID=AKIAX&AWS_SECRET_ACCESS_KEY="+secret+"&AWS_SESSION_TOKEN="+token+"&AWS_ENDPOINT="+endpoint))
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []func() error{
			func() error {
				_, err := k.Unwrap(testCtx(t), provider.Wrapped{Ciphertext: []byte("b")}, testAAD)
				return err
			},
			func() error { _, err := k.Wrap(testCtx(t), []byte("p"), testAAD); return err },
			func() error { _, err := k.Describe(testCtx(t)); return err },
		} {
			err := call()
			if err == nil {
				t.Fatal("want an error")
			}
			for e := err; e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), secret) || strings.Contains(e.Error(), token) {
					t.Fatalf("error %q holds a secret", e)
				}
			}
		}
		if strings.Contains(k.URI(), secret) || strings.Contains(k.URI(), token) {
			t.Fatalf("URI() %q holds a secret", k.URI())
		}
	}
}

// TestEveryTableRow sends every code of the error-class table through the
// official client (status 400, so that the code alone decides) and checks
// its class and that only TRANSIENT codes are retried, to the bound.
func TestEveryTableRow(t *testing.T) {
	if len(errorClasses) < 30 {
		t.Fatalf("error table has %d rows", len(errorClasses))
	}
	for code, class := range errorClasses {
		t.Run(code, func(t *testing.T) {
			f := startFaultKMS(t, map[string]reply{"Decrypt": errorReply(400, code, "message for "+code)})
			_, err := New(newClient(f.URL), faultARN, testURI(faultARN)).Unwrap(testCtx(t), provider.Wrapped{Ciphertext: []byte("b")}, testAAD)
			e := pe(t, err)
			if e.Class != class || e.Code != code || e.Message != "message for "+code || e.RequestID == "" {
				t.Fatalf("%v: class %s code %q request %q, want class %s", err, e.Class, e.Code, e.RequestID, class)
			}
			want := 1
			if class == provider.Transient {
				want = testAttempts
			}
			if n := f.count("Decrypt"); n != want {
				t.Fatalf("%d attempts, want %d", n, want)
			}
		})
	}
	// A code AWS does not document is never proof, and is not retried.
	f := startFaultKMS(t, map[string]reply{"Decrypt": errorReply(400, "SomethingNewException", "new")})
	_, err := New(newClient(f.URL), faultARN, testURI(faultARN)).Unwrap(testCtx(t), provider.Wrapped{Ciphertext: []byte("b")}, testAAD)
	if provider.Classify(err) != provider.Transient || f.count("Decrypt") != 1 {
		t.Fatalf("undocumented code: %v, %d attempts", err, f.count("Decrypt"))
	}
}
