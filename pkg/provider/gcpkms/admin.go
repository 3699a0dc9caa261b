package gcpkms

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Details["note"] of an admin verb's KeyState says how Cloud KMS differs
// from what the verb's name suggests.
const noteKey = "note"

func (k *Key) keyRing() string { return path.Dir(path.Dir(k.name)) }

// Create makes the key (purpose ENCRYPT_DECRYPT, algorithm
// GOOGLE_SYMMETRIC_ENCRYPTION) in its key ring, creating the key ring first
// if it does not exist. Cloud KMS creates the first version and makes it
// primary.
func (k *Key) Create(ctx context.Context) (provider.KeyState, error) {
	const op = "create"
	ring := k.keyRing()
	err := k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		_, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: ring}, noRetry)
		if status.Code(err) == codes.NotFound {
			_, err = c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{
				Parent:    path.Dir(path.Dir(ring)),
				KeyRingId: path.Base(ring),
			}, noRetry)
			if status.Code(err) == codes.AlreadyExists {
				err = nil // made meanwhile by someone else
			}
		}
		return err
	})
	if err != nil {
		return provider.KeyState{}, err
	}
	err = k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		_, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{
			Parent:      ring,
			CryptoKeyId: path.Base(k.name),
			CryptoKey: &kmspb.CryptoKey{
				Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT,
				VersionTemplate: &kmspb.CryptoKeyVersionTemplate{
					Algorithm: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
				},
			},
		}, noRetry)
		return err
	})
	if err != nil {
		return provider.KeyState{}, err
	}
	return k.Describe(ctx)
}

// Rotate creates a version (CreateCryptoKeyVersion) and makes it primary
// (UpdateCryptoKeyPrimaryVersion). Versions that are still being generated
// (HSM keys) are waited for, within the retry budget.
func (k *Key) Rotate(ctx context.Context) (provider.KeyState, error) {
	const op = "rotate"
	var v *kmspb.CryptoKeyVersion
	err := k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		var err error
		v, err = c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: k.name, CryptoKeyVersion: &kmspb.CryptoKeyVersion{}}, noRetry)
		return err
	})
	if err != nil {
		return provider.KeyState{}, err
	}
	deadline := time.Now().Add(max(k.retry.Budget, 30*time.Second))
	for v.GetState() == kmspb.CryptoKeyVersion_PENDING_GENERATION {
		if time.Now().After(deadline) {
			return provider.KeyState{}, provider.Errorf(providerName, op, provider.Transient, "", "version %s is still PENDING_GENERATION; run rotate again later to make it primary", v.GetName())
		}
		select {
		case <-ctx.Done():
			return provider.KeyState{}, wrapErr(op, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		err = k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
			var err error
			v, err = c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: v.GetName()}, noRetry)
			return err
		})
		if err != nil {
			return provider.KeyState{}, err
		}
	}
	err = k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		_, err := c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{
			Name: k.name, CryptoKeyVersionId: path.Base(v.GetName()),
		}, noRetry)
		return err
	})
	if err != nil {
		return provider.KeyState{}, err
	}
	return k.Describe(ctx)
}

// eachVersion lists the key's versions and runs fn on those in one of the
// states from; it returns the names acted on.
func (k *Key) eachVersion(ctx context.Context, op string, from []kmspb.CryptoKeyVersion_CryptoKeyVersionState,
	fn func(context.Context, *kms.KeyManagementClient, *kmspb.CryptoKeyVersion) error) ([]string, error) {
	var versions []*kmspb.CryptoKeyVersion
	err := k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		var err error
		versions, err = listVersions(ctx, c, k.name)
		return err
	})
	if err != nil {
		return nil, err
	}
	var done []string
	for _, v := range versions {
		match := false
		for _, s := range from {
			match = match || v.GetState() == s
		}
		if !match {
			continue
		}
		err := k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
			return fn(ctx, c, v)
		})
		if err != nil {
			return done, err
		}
		done = append(done, path.Base(v.GetName()))
	}
	return done, nil
}

func (k *Key) setState(ctx context.Context, op string, from, to kmspb.CryptoKeyVersion_CryptoKeyVersionState) ([]string, error) {
	return k.eachVersion(ctx, op, []kmspb.CryptoKeyVersion_CryptoKeyVersionState{from},
		func(ctx context.Context, c *kms.KeyManagementClient, v *kmspb.CryptoKeyVersion) error {
			_, err := c.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
				CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v.GetName(), State: to},
				UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
			}, noRetry)
			return err
		})
}

// describeWithNote describes the key and adds a note to its details.
func (k *Key) describeWithNote(ctx context.Context, note string) (provider.KeyState, error) {
	st, err := k.Describe(ctx)
	if err != nil {
		return st, err
	}
	if note != "" {
		if st.Details == nil {
			st.Details = map[string]string{}
		}
		st.Details[noteKey] = note
	}
	return st, nil
}

// Disable disables every enabled version (UpdateCryptoKeyVersion with
// update_mask "state"). Cloud KMS has no key-wide switch.
func (k *Key) Disable(ctx context.Context) (provider.KeyState, error) {
	done, err := k.setState(ctx, "disable", kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKeyVersion_DISABLED)
	if err != nil {
		return provider.KeyState{}, err
	}
	return k.describeWithNote(ctx, versionsNote("disabled", done))
}

// Enable enables every disabled version. Versions scheduled for
// destruction must be restored first (cancel-deletion).
func (k *Key) Enable(ctx context.Context) (provider.KeyState, error) {
	done, err := k.setState(ctx, "enable", kmspb.CryptoKeyVersion_DISABLED, kmspb.CryptoKeyVersion_ENABLED)
	if err != nil {
		return provider.KeyState{}, err
	}
	return k.describeWithNote(ctx, versionsNote("enabled", done))
}

var destroyable = []kmspb.CryptoKeyVersion_CryptoKeyVersionState{kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKeyVersion_DISABLED}

func (k *Key) destroyAll(ctx context.Context, op string) ([]string, error) {
	return k.eachVersion(ctx, op, destroyable,
		func(ctx context.Context, c *kms.KeyManagementClient, v *kmspb.CryptoKeyVersion) error {
			_, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v.GetName()}, noRetry)
			return err
		})
}

// ScheduleDeletion schedules every enabled or disabled version for
// destruction (DestroyCryptoKeyVersion). Cloud KMS destroys them after the
// key's destroy_scheduled_duration, which is set when the key is created:
// pendingDays cannot change it, and the returned state's note says so when
// it differs.
func (k *Key) ScheduleDeletion(ctx context.Context, pendingDays int) (provider.KeyState, error) {
	done, err := k.destroyAll(ctx, "schedule deletion")
	if err != nil {
		return provider.KeyState{}, err
	}
	st, err := k.describeWithNote(ctx, versionsNote("scheduled for destruction", done))
	if err != nil {
		return st, err
	}
	window := st.Details["destroy_scheduled_duration"]
	if pendingDays > 0 && window != (time.Duration(pendingDays)*24*time.Hour).String() {
		st.Details[noteKey] += fmt.Sprintf("; Cloud KMS destroys them after the key's destroy_scheduled_duration (%s), set when the key was created: the requested %d pending days were not applied", orUnknown(window), pendingDays)
	}
	return st, nil
}

// CancelDeletion restores every version scheduled for destruction
// (RestoreCryptoKeyVersion). As Cloud KMS does, restored versions are
// DISABLED: enable the key to use it again.
func (k *Key) CancelDeletion(ctx context.Context) (provider.KeyState, error) {
	done, err := k.eachVersion(ctx, "cancel deletion", []kmspb.CryptoKeyVersion_CryptoKeyVersionState{kmspb.CryptoKeyVersion_DESTROY_SCHEDULED},
		func(ctx context.Context, c *kms.KeyManagementClient, v *kmspb.CryptoKeyVersion) error {
			_, err := c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v.GetName()}, noRetry)
			return err
		})
	if err != nil {
		return provider.KeyState{}, err
	}
	note := versionsNote("restored", done)
	if len(done) > 0 {
		note += "; Cloud KMS restores versions as DISABLED: run enable to use the key again"
	}
	return k.describeWithNote(ctx, note)
}

// Destroy schedules every version for destruction, as ScheduleDeletion
// does: Cloud KMS cannot destroy key material at once. The note says when
// it will be.
func (k *Key) Destroy(ctx context.Context) (provider.KeyState, error) {
	done, err := k.destroyAll(ctx, "destroy")
	if err != nil {
		return provider.KeyState{}, err
	}
	st, err := k.describeWithNote(ctx, versionsNote("scheduled for destruction", done))
	if err != nil {
		return st, err
	}
	when := "after the key's destroy_scheduled_duration"
	if !st.DeletionDate.IsZero() {
		when = "at " + st.DeletionDate.Format(time.RFC3339)
	}
	st.Details[noteKey] += "; Cloud KMS cannot destroy key material at once: the versions are DESTROY_SCHEDULED and destroyed " + when + " (" + orUnknown(st.Details["destroy_scheduled_duration"]) + " after the request)"
	return st, nil
}

func versionsNote(verb string, done []string) string {
	if len(done) == 0 {
		return "no version was " + verb
	}
	return "versions " + strings.Join(done, ", ") + " " + verb
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
