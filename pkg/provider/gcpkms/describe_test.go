package gcpkms_test

import (
	"bytes"
	"path"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

func TestWrapRecordsVersionAndRotate(t *testing.T) {
	_, k := newKey(t)
	aad := []byte("aad")
	w1, err := k.Wrap(ctxT(t), []byte("secret-1"), aad)
	if err != nil {
		t.Fatal(err)
	}
	st, err := k.Describe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if w1.KeyVersion != st.PrimaryVersion || w1.KeyVersion != k.Name()+"/cryptoKeyVersions/1" {
		t.Fatalf("wrapped by %q, primary %q", w1.KeyVersion, st.PrimaryVersion)
	}
	st, err = k.Rotate(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.PrimaryVersion != k.Name()+"/cryptoKeyVersions/2" || len(st.Versions) != 2 || st.State != provider.StateEnabled {
		t.Fatalf("after rotate: %+v", st)
	}
	w2, err := k.Wrap(ctxT(t), []byte("secret-2"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if w2.KeyVersion != st.PrimaryVersion {
		t.Fatalf("wrapped by %q after rotate, want the new primary %q", w2.KeyVersion, st.PrimaryVersion)
	}
	// The old version still decrypts: Cloud KMS finds it from the ciphertext.
	got, err := k.Unwrap(ctxT(t), w1, aad)
	if err != nil || string(got) != "secret-1" {
		t.Fatalf("unwrap old version: %q %v", got, err)
	}
}

func TestDescribeStates(t *testing.T) {
	srv, k := newKey(t)
	ctx := ctxT(t)
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	now := base
	srv.SetNow(func() time.Time { return now })
	if _, err := k.Rotate(ctx); err != nil { // versions 1 and 2, 2 primary
		t.Fatal(err)
	}
	v1, v2 := k.Name()+"/cryptoKeyVersions/1", k.Name()+"/cryptoKeyVersions/2"

	// Disable: every version DISABLED, key DISABLED.
	st, err := k.Disable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != provider.StateDisabled || st.Versions[0].State != provider.StateDisabled || st.Versions[1].State != provider.StateDisabled {
		t.Fatalf("after disable: %+v", st)
	}
	if st.Details["version_states"] != "1=DISABLED,2=DISABLED" || !strings.Contains(st.Details["note"], "versions 1, 2 disabled") {
		t.Fatalf("after disable: details %v", st.Details)
	}

	// Enable: back to ENABLED.
	st, err = k.Enable(ctx)
	if err != nil || st.State != provider.StateEnabled {
		t.Fatalf("after enable: %+v %v", st, err)
	}

	// ScheduleDeletion: DESTROY_SCHEDULED, deletion date = the latest
	// destroy_time; the pending days cannot change Cloud KMS's window.
	st, err = k.ScheduleDeletion(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := base.Add(30 * 24 * time.Hour)
	if st.State != provider.StatePendingDeletion || !st.DeletionDate.Equal(want) {
		t.Fatalf("after schedule deletion: state %s deletion %s, want PENDING_DELETION %s", st.State, st.DeletionDate, want)
	}
	if n := st.Details["note"]; !strings.Contains(n, "destroy_scheduled_duration (720h0m0s)") || !strings.Contains(n, "7 pending days were not applied") {
		t.Fatalf("schedule deletion note %q does not explain the window", n)
	}

	// CancelDeletion: versions come back DISABLED, as in Cloud KMS.
	st, err = k.CancelDeletion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != provider.StateDisabled || !st.DeletionDate.IsZero() || !strings.Contains(st.Details["note"], "run enable") {
		t.Fatalf("after cancel deletion: %+v", st)
	}
	if _, err := k.Enable(ctx); err != nil {
		t.Fatal(err)
	}

	// Version 2 scheduled at base, version 1 an hour later: the deletion
	// date is the latest destroy_time, not the last listed.
	c := srv.Client(ctx)
	if _, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v2}); err != nil {
		t.Fatal(err)
	}
	now = base.Add(time.Hour)
	if _, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v1}); err != nil {
		t.Fatal(err)
	}
	st, err = k.Describe(ctx)
	if err != nil || st.State != provider.StatePendingDeletion || !st.DeletionDate.Equal(base.Add(time.Hour+30*24*time.Hour)) {
		t.Fatalf("deletion date %s (%v), want %s", st.DeletionDate, err, base.Add(time.Hour+30*24*time.Hour))
	}
	if _, err := k.CancelDeletion(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = k.Destroy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Details["note"]; !strings.Contains(n, "cannot destroy key material at once") || !strings.Contains(n, "versions 1, 2 scheduled for destruction") {
		t.Fatalf("destroy note %q does not say Cloud KMS cannot destroy at once", n)
	}

	// One version destroyed, one scheduled: still PENDING_DELETION.
	if err := srv.DestroyNow(v2); err != nil {
		t.Fatal(err)
	}
	st, err = k.Describe(ctx)
	if err != nil || st.State != provider.StatePendingDeletion || st.Versions[1].State != provider.StateDestroyed {
		t.Fatalf("one destroyed, one scheduled: %+v %v", st, err)
	}
	if st.Recoverable {
		t.Fatal("recoverable without reimport_eligible")
	}

	// Every version destroyed: DESTROYED; a reimport-eligible version makes
	// it recoverable, with the reason.
	if err := srv.SetReimportEligible(v1, true); err != nil {
		t.Fatal(err)
	}
	if err := srv.DestroyNow(v1); err != nil {
		t.Fatal(err)
	}
	st, err = k.Describe(ctx)
	if err != nil || st.State != provider.StateDestroyed {
		t.Fatalf("all destroyed: %+v %v", st, err)
	}
	if !st.Recoverable || !strings.Contains(st.RecoverableReason, "reimport_eligible") || !strings.Contains(st.RecoverableReason, "version(s) 1 ") {
		t.Fatalf("reimport eligible: recoverable %v %q", st.Recoverable, st.RecoverableReason)
	}
	if st.PrimaryVersion != v2 || st.Versions[0].ID != v1 || st.Versions[0].Created.IsZero() {
		t.Fatalf("versions: %+v", st)
	}
}

func TestDescribePrimaryDisabledOtherEnabled(t *testing.T) {
	srv, k := newKey(t)
	ctx := ctxT(t)
	c := srv.Client(ctx)
	if _, err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// Disable only the primary (version 2) through the API.
	if err := disableVersion(ctx, c, k.Name()+"/cryptoKeyVersions/2"); err != nil {
		t.Fatal(err)
	}
	st, err := k.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != provider.StateDisabled || st.Versions[0].State != provider.StateEnabled {
		t.Fatalf("primary disabled, version 1 enabled: %+v", st)
	}
	if _, err := k.Wrap(ctx, []byte("x"), nil); provider.Classify(err) != provider.Revoked {
		t.Fatalf("wrap with a disabled primary: %v", err)
	}
}

func TestCreateMakesKeyRing(t *testing.T) {
	srv, k := newKey(t) // Create made ring and key
	if srv.Calls("CreateKeyRing") != 1 || srv.Calls("CreateCryptoKey") != 1 {
		t.Fatalf("calls: ring %d key %d", srv.Calls("CreateKeyRing"), srv.Calls("CreateCryptoKey"))
	}
	// A second key in the same ring does not create the ring again.
	name := path.Dir(k.Name()) + "/second"
	k2 := newKeyNamed(t, srv, name)
	if _, err := k2.Create(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if srv.Calls("CreateKeyRing") != 1 || srv.Calls("CreateCryptoKey") != 2 {
		t.Fatalf("calls: ring %d key %d", srv.Calls("CreateKeyRing"), srv.Calls("CreateCryptoKey"))
	}
	st, err := k2.Describe(ctxT(t))
	if err != nil || st.Details["purpose"] != "ENCRYPT_DECRYPT" || st.Details["algorithm"] != "GOOGLE_SYMMETRIC_ENCRYPTION" {
		t.Fatalf("second key: %+v %v", st, err)
	}
	w, err := k2.Wrap(ctxT(t), []byte("pt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k2.Unwrap(ctxT(t), w, nil)
	if err != nil || !bytes.Equal(got, []byte("pt")) {
		t.Fatalf("round trip without aad: %v", err)
	}
}
