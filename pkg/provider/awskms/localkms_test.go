package awskms

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/nsmithuk/local-kms/src/cmk"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/providertest"
)

var testAAD = provider.Binding{"cluster": "c1", "region": "r1", "key_id": "k1", "purpose": "store-key", "format": "1"}.AAD()

// newLocalKey creates a key on local-kms through Admin.Create (URI naming
// no key) and returns a Key for its ARN.
func newLocalKey(t *testing.T, l *localKMS) *Key {
	t.Helper()
	client := newClient(l.URL)
	st, err := New(client, "", testURI("")).Create(testCtx(t))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	arn := st.Details["arn"]
	if !strings.HasPrefix(arn, "arn:aws:kms:"+testRegion+":"+testAccount+":key/") {
		t.Fatalf("create: arn %q", arn)
	}
	if st.State != provider.StateEnabled || !strings.Contains(st.URI, arn) {
		t.Fatalf("create: state %s, uri %s", st.State, st.URI)
	}
	return New(client, arn, st.URI).WithSTS(testSTS(t))
}

func pe(t *testing.T, err error) *provider.Error {
	t.Helper()
	var e *provider.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	return e
}

// expireDeletion moves a pending deletion's date into the past in local-kms's
// own database, as if the waiting period had run out; local-kms then deletes
// the key at its next load, as AWS does at the end of the window.
func expireDeletion(t *testing.T, l *localKMS, arn string) {
	t.Helper()
	k, err := l.DB.LoadKey(arn)
	if err != nil {
		t.Fatalf("local-kms load %s: %v", arn, err)
	}
	if k.GetMetadata().DeletionDate == 0 {
		t.Fatalf("%s is not pending deletion", arn)
	}
	k.GetMetadata().DeletionDate = time.Now().Add(-time.Minute).Unix()
	if err := l.DB.SaveKey(k); err != nil {
		t.Fatal(err)
	}
	// local-kms deletes an expired key when it next loads it, and that one
	// load fails with a bare "leveldb: not found" (which its handlers turn
	// into KMSInvalidStateException "Unable to load key"). Let that load
	// happen here, as AWS's own deletion would, so requests see the key gone.
	if _, err := l.DB.LoadKey(arn); err == nil {
		t.Fatalf("local-kms still has %s after its deletion date", arn)
	}
}

// TestProviderSuite runs the shared provider suite against local-kms, with
// the rows local-kms cannot drive taken to the fault server or named in
// Covered.
func TestProviderSuite(t *testing.T) {
	l := startLocalKMS(t)
	providertest.Run(t, providertest.Harness{
		NewKey:            func(t *testing.T) provider.Key { return newLocalKey(t, l) },
		NotFoundOnDestroy: true,
		// Disable, ScheduleDeletion and Destroy change the key on local-kms,
		// which answers Decrypt (with a KeyId) with AWS's codes; see
		// TestLocalKMSGaps.
		Disable: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := k.(*Key).Disable(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			return k
		},
		ScheduleDeletion: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := k.(*Key).ScheduleDeletion(testCtx(t), 7); err != nil {
				t.Fatal(err)
			}
			return k
		},
		// AWS cannot destroy at once: schedule the minimum window, then let
		// it run out in local-kms's database; local-kms then deletes the key.
		Destroy: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := k.(*Key).Destroy(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			expireDeletion(t, l, k.(*Key).keyID)
			return k
		},
		// The caller losing access: the same key, reached through a server
		// that answers every call as AWS does for a caller without a grant.
		DenyAccess: func(t *testing.T, k provider.Key) provider.Key {
			f := startFaultKMS(t, map[string]reply{"*": errorReply(400, "AccessDeniedException",
				"User: arn:aws:iam::111122223333:user/x is not authorized to perform: kms:Decrypt on this resource because no resource-based policy allows the kms:Decrypt action")})
			return New(newClient(f.URL), k.(*Key).keyID, k.URI()).WithSTS(k.(*Key).sts)
		},
		Throttle: func(t *testing.T, k provider.Key) provider.Key {
			f := startFaultKMS(t, map[string]reply{"*": errorReply(400, "ThrottlingException", "Rate exceeded")})
			return New(newClient(f.URL), k.(*Key).keyID, k.URI()).WithSTS(k.(*Key).sts)
		},
		Down: func(t *testing.T, k provider.Key) provider.Key {
			return New(newClient(downURL(t)), k.(*Key).keyID, k.URI()).WithSTS(k.(*Key).sts)
		},
		Covered: map[string]string{
			// local-kms answers RotateKeyOnDemand with 501.
			"Rotate": "TestRotate (RotateKeyOnDemand on the fault server) and TestLocalKMSRotationKeepsOldCiphertexts (local-kms's own scheduled rotation)",
		},
	})
}

// TestLocalKMSGaps pins how local-kms answers Decrypt on a disabled or
// pending-deletion key. With a KeyId in the request (as Unwrap always sends)
// it answers AWS's documented DisabledException and
// KMSInvalidStateException, so TestProviderSuite drives those rows on it.
// Without a KeyId it answers AccessDeniedException for both (the known gap);
// cmekctl never sends such a request. RotateKeyOnDemand answers 501.
func TestLocalKMSGaps(t *testing.T) {
	l := startLocalKMS(t)
	ctx := testCtx(t)

	k := newLocalKey(t, l)
	w, err := k.Wrap(ctx, []byte("0123456789abcdef0123456789abcdef"), testAAD)
	if err != nil {
		t.Fatal(err)
	}
	decryptNoKeyID := func() string {
		_, err := k.client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: w.Ciphertext, EncryptionContext: encryptionContext(testAAD)})
		var api smithy.APIError
		if !errors.As(err, &api) {
			t.Fatalf("decrypt without KeyId: %v", err)
		}
		return api.ErrorCode()
	}
	for _, c := range []struct {
		name     string
		mutate   func() error
		wantCode string
	}{
		{"disabled", func() error { _, err := k.Disable(ctx); return err }, "DisabledException"},
		{"pending deletion", func() error {
			if _, err := k.Enable(ctx); err != nil {
				return err
			}
			_, err := k.ScheduleDeletion(ctx, 7)
			return err
		}, "KMSInvalidStateException"},
	} {
		if err := c.mutate(); err != nil {
			t.Fatal(err)
		}
		_, err = k.Unwrap(ctx, w, testAAD)
		if e := pe(t, err); e.Code != c.wantCode || e.Class != provider.Revoked {
			t.Errorf("unwrap, key %s: %v (class %s), want %s REVOKED", c.name, err, e.Class, c.wantCode)
		}
		_, err = k.Wrap(ctx, []byte("x"), testAAD)
		if e := pe(t, err); e.Code != c.wantCode || e.Class != provider.Revoked {
			t.Errorf("wrap, key %s: %v (class %s), want %s REVOKED", c.name, err, e.Class, c.wantCode)
		}
		if code := decryptNoKeyID(); code != "AccessDeniedException" {
			t.Errorf("local-kms Decrypt without KeyId, key %s: %s; the known gap is gone", c.name, code)
		}
	}

	k2 := newLocalKey(t, l)
	_, err = k2.Rotate(ctx)
	if err == nil {
		t.Fatal("local-kms answered RotateKeyOnDemand; the gap is gone, drive Rotate on it")
	}
	if !strings.Contains(err.Error(), "501") {
		t.Errorf("RotateKeyOnDemand on local-kms: %v, want a 501", err)
	}
}

// TestLocalKMSDeletionWindowEnds: once the waiting period has run out,
// local-kms deletes the key as AWS does; Encrypt gets NotFoundException,
// DescribeKey agrees, and the error is DESTROYED. Describe says NOT_FOUND.
func TestLocalKMSDeletionWindowEnds(t *testing.T) {
	l := startLocalKMS(t)
	ctx := testCtx(t)
	k := newLocalKey(t, l)
	st, err := k.Destroy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != provider.StatePendingDeletion || !strings.Contains(st.Details["note"], "cannot destroy a key immediately") {
		t.Fatalf("destroy: state %s, note %q", st.State, st.Details["note"])
	}
	if d := time.Until(st.DeletionDate); d < 6*24*time.Hour || d > 8*24*time.Hour {
		t.Fatalf("destroy: deletion date %v, want 7 days from now", st.DeletionDate)
	}
	expireDeletion(t, l, k.keyID)

	_, err = k.Wrap(ctx, []byte("x"), testAAD)
	e := pe(t, err)
	if e.Code != "NotFoundException" || e.Class != provider.Revoked {
		t.Fatalf("wrap after the deletion window: %v (class %s), want NotFoundException REVOKED (not found is never proof)", err, e.Class)
	}
	st, err = k.Describe(ctx)
	if err != nil || st.State != provider.StateNotFound {
		t.Fatalf("describe after the deletion window: %v, state %s", err, st.State)
	}
}

// TestLocalKMSRotationKeepsOldCiphertexts uses local-kms's own rotation
// (automatic rotation falling due) since it has no RotateKeyOnDemand: a
// ciphertext made before the rotation still unwraps, and the rotation did
// add key material. AWS keeps the same ARN, so Wrapped.KeyVersion does not
// change (see Wrap).
func TestLocalKMSRotationKeepsOldCiphertexts(t *testing.T) {
	l := startLocalKMS(t)
	ctx := testCtx(t)
	k := newLocalKey(t, l)
	pt := []byte("0123456789abcdef0123456789abcdef")
	w1, err := k.Wrap(ctx, pt, testAAD)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.client.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(k.keyID)}); err != nil {
		t.Fatal(err)
	}
	st, err := k.Describe(ctx)
	if err != nil || st.Details["rotation_enabled"] != "true" {
		t.Fatalf("describe: %v, rotation_enabled %q", err, st.Details["rotation_enabled"])
	}
	lk, err := l.DB.LoadKey(k.keyID)
	if err != nil {
		t.Fatal(err)
	}
	aes := lk.(*cmk.AesKey)
	aes.NextKeyRotation = time.Now().Add(-time.Minute)
	if err := l.DB.SaveKey(aes); err != nil {
		t.Fatal(err)
	}
	w2, err := k.Wrap(ctx, pt, testAAD)
	if err != nil {
		t.Fatal(err)
	}
	lk, _ = l.DB.LoadKey(k.keyID)
	if n := len(lk.(*cmk.AesKey).BackingKeys); n != 2 {
		t.Fatalf("local-kms backing keys after rotation: %d, want 2", n)
	}
	if w1.KeyVersion != k.keyID || w2.KeyVersion != k.keyID {
		t.Fatalf("key versions %q, %q: want the key ARN %q", w1.KeyVersion, w2.KeyVersion, k.keyID)
	}
	for i, w := range []provider.Wrapped{w1, w2} {
		got, err := k.Unwrap(ctx, w, testAAD)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("unwrap ciphertext %d after rotation: %v", i+1, err)
		}
	}
}

// TestLocalKMSAdmin drives the admin verbs on local-kms and checks what
// Describe reports after each.
func TestLocalKMSAdmin(t *testing.T) {
	l := startLocalKMS(t)
	ctx := testCtx(t)
	client := newClient(l.URL)

	// Create under an alias; the alias URI then works for wrap and unwrap.
	ak := New(client, "alias/cmekctl-test", testURI("alias/cmekctl-test"))
	st, err := ak.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	arn := st.Details["arn"]
	if st.State != provider.StateEnabled || st.Details["origin"] != "AWS_KMS" {
		t.Fatalf("create: %+v", st)
	}
	w, err := ak.Wrap(ctx, []byte("secret-32-bytes-secret-32-bytes!"), testAAD)
	if err != nil {
		t.Fatal(err)
	}
	if w.KeyVersion != arn {
		t.Fatalf("wrap through the alias recorded %q, want the key ARN %q", w.KeyVersion, arn)
	}
	if _, err := ak.Create(ctx); provider.Classify(err) != provider.Misuse || !strings.Contains(err.Error(), "already names a key") {
		t.Fatalf("create on an existing alias: %v", err)
	}
	if _, err := New(client, arn, testURI(arn)).Create(ctx); provider.Classify(err) != provider.Misuse {
		t.Fatalf("create with a key ARN in the URI: %v", err)
	}
	if st.Details["rotation_enabled"] != "false" {
		t.Fatalf("rotation status not reported: %v", st.Details)
	}

	k := New(client, arn, testURI(arn))
	for _, step := range []struct {
		name string
		do   func() (provider.KeyState, error)
		want provider.State
	}{
		{"disable", func() (provider.KeyState, error) { return k.Disable(ctx) }, provider.StateDisabled},
		{"enable", func() (provider.KeyState, error) { return k.Enable(ctx) }, provider.StateEnabled},
		{"schedule-deletion", func() (provider.KeyState, error) { return k.ScheduleDeletion(ctx, 30) }, provider.StatePendingDeletion},
		// AWS leaves the key disabled after CancelKeyDeletion; local-kms
		// enables it (a difference that Enable makes harmless).
		{"cancel-deletion", func() (provider.KeyState, error) { return k.CancelDeletion(ctx) }, provider.StateEnabled},
		{"enable", func() (provider.KeyState, error) { return k.Enable(ctx) }, provider.StateEnabled},
	} {
		st, err := step.do()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if st.State != step.want {
			t.Fatalf("%s: state %s, want %s", step.name, st.State, step.want)
		}
		if step.name == "cancel-deletion" && !st.DeletionDate.IsZero() {
			t.Fatalf("cancel-deletion: deletion date %v still set", st.DeletionDate)
		}
		if step.name == "schedule-deletion" {
			if d := time.Until(st.DeletionDate); d < 29*24*time.Hour || d > 31*24*time.Hour {
				t.Fatalf("schedule-deletion 30: deletion date %v", st.DeletionDate)
			}
		}
	}
	for _, days := range []int{0, 6, 31, -1} {
		_, err := k.ScheduleDeletion(ctx, days)
		if e := pe(t, err); e.Class != provider.Misuse || !strings.Contains(e.Message, "7 to 30") {
			t.Fatalf("schedule-deletion %d: %v", days, err)
		}
	}
	got, err := k.Unwrap(ctx, w, testAAD)
	if err != nil || string(got) != "secret-32-bytes-secret-32-bytes!" {
		t.Fatalf("unwrap after the admin round: %v", err)
	}
}

// TestLocalKMSImportedKeyRecoverable: a key with Origin EXTERNAL (imported
// material) is reported recoverable, and, waiting for its material, disabled.
func TestLocalKMSImportedKeyRecoverable(t *testing.T) {
	l := startLocalKMS(t)
	ctx := testCtx(t)
	client := newClient(l.URL)
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	st, err := New(client, arn, testURI(arn)).Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Recoverable || !strings.Contains(st.RecoverableReason, "EXTERNAL") {
		t.Fatalf("imported key: recoverable %v (%q)", st.Recoverable, st.RecoverableReason)
	}
	if st.State != provider.StateDisabled || st.Details["key_state"] != "PendingImport" {
		t.Fatalf("imported key without material: state %s (%s)", st.State, st.Details["key_state"])
	}
	// Its plain sibling is not.
	k := newLocalKey(t, l)
	st, err = k.Describe(ctx)
	if err != nil || st.Recoverable {
		t.Fatalf("AWS_KMS key: %v, recoverable %v", err, st.Recoverable)
	}
}

// TestOpenAgainstLocalKMS opens a URI with AUTH=specified and AWS_ENDPOINT,
// and wraps and unwraps through the client Open built; the requests are
// signed with the URI's access key.
func TestOpenAgainstLocalKMS(t *testing.T) {
	l := startLocalKMS(t)
	ctx := testCtx(t)
	arn := newLocalKey(t, l).keyID
	raw := "aws-kms:///" + arn + "?REGION=" + testRegion + "&AUTH=specified&AWS_ACCESS_KEY_ID=AKIAOPENTEST&AWS_SECRET_ACCESS_KEY=" + testSecretKey + "&AWS_ENDPOINT=" + l.URL
	k, err := Open(mustParse(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(k.URI(), testSecretKey) || !strings.Contains(k.URI(), provider.Redacted) && !strings.Contains(k.URI(), "redacted") {
		t.Fatalf("URI() = %q: secret not redacted", k.URI())
	}
	pt := []byte("0123456789abcdef0123456789abcdef")
	w, err := k.Wrap(ctx, pt, testAAD)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Unwrap(ctx, w, testAAD)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("unwrap: %v", err)
	}
	signed := false
	for _, a := range l.authorizations() {
		if strings.Contains(a, "Credential=AKIAOPENTEST/") {
			signed = true
		}
		if strings.Contains(a, testSecretKey) {
			t.Fatal("the secret key was sent in a header")
		}
	}
	if !signed {
		t.Fatal("no request was signed with the URI's access key")
	}
	// Opaque aad is carried too, and must match.
	w, err = k.Wrap(ctx, pt, []byte("opaque aad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ctx, w, []byte("other aad")); provider.Classify(err) != provider.Misuse {
		t.Fatalf("unwrap with other opaque aad: %v", err)
	}
	if got, err := k.Unwrap(ctx, w, []byte("opaque aad")); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("unwrap with opaque aad: %v", err)
	}
}
