package awskms

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Deletion windows AWS allows for ScheduleKeyDeletion, in days.
const (
	MinPendingDays = 7
	MaxPendingDays = 30
)

// Create makes a new symmetric encryption key (SYMMETRIC_DEFAULT,
// ENCRYPT_DECRYPT). AWS assigns key IDs, so the URI must name no key
// (aws-kms:///?REGION=..) or an alias that does not exist yet
// (aws-kms:///alias/name?REGION=..), which Create then points at the new key.
// The returned state carries the new key's ARN in Details["arn"].
func (k *Key) Create(ctx context.Context) (provider.KeyState, error) {
	const op = "create"
	switch {
	case k.keyID == "":
	case isAlias(k.keyID):
		// Refuse to create when the alias already names a key.
		_, err := k.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.keyID)})
		if err == nil {
			return provider.KeyState{}, provider.Errorf(providerName, op, provider.Misuse, "", "%s already names a key: use the existing key or another alias", aliasName(k.keyID))
		}
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != codeNotFound {
			return provider.KeyState{}, newError(op, classOf(err), err)
		}
	default:
		return provider.KeyState{}, provider.Errorf(providerName, op, provider.Misuse, "", "the URI names key %s, and AWS assigns key IDs itself: create with aws-kms:///alias/<name>?REGION=.. or with no key in the URI", k.keyID)
	}
	out, err := k.client.CreateKey(ctx, &kms.CreateKeyInput{
		KeySpec:     types.KeySpecSymmetricDefault,
		KeyUsage:    types.KeyUsageTypeEncryptDecrypt,
		Description: aws.String("cmekctl CMEK key"),
	})
	if err != nil {
		return provider.KeyState{}, newError(op, classOf(err), err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	if isAlias(k.keyID) {
		_, err := k.client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(aliasName(k.keyID)), TargetKeyId: aws.String(arn)})
		if err != nil {
			// Do not leave an unnamed key behind: schedule its deletion.
			_, derr := k.client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(MinPendingDays)})
			e := newError(op, classOf(err), err)
			if derr != nil {
				e.Message += " (the new key " + arn + " could not be scheduled for deletion: delete it by hand)"
			} else {
				e.Message += " (the new key " + arn + " was scheduled for deletion)"
			}
			return provider.KeyState{}, e
		}
	}
	st, err := k.describe(ctx, arn)
	if err != nil {
		return st, err
	}
	st.Details["arn"] = arn
	if !isAlias(k.keyID) {
		st.URI = provider.RedactURI(replaceKey(k.uri, arn))
	}
	return st, nil
}

// replaceKey returns uri with its key set to arn.
func replaceKey(uri, arn string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	u.Path = "/" + arn
	u.RawPath = ""
	return u.String()
}

// Rotate asks for an on-demand rotation (RotateKeyOnDemand): new key material
// behind the same ARN; ciphertexts under the old material stay readable.
// AWS rotates asynchronously: Details["on_demand_rotation_started"] shows it.
func (k *Key) Rotate(ctx context.Context) (provider.KeyState, error) {
	return k.admin(ctx, "rotate", func(id string) error {
		_, err := k.client.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
		return err
	}, "")
}

// Disable disables the key (DisableKey): reversible with Enable.
func (k *Key) Disable(ctx context.Context) (provider.KeyState, error) {
	return k.admin(ctx, "disable", func(id string) error {
		_, err := k.client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
		return err
	}, "")
}

// Enable enables the key (EnableKey).
func (k *Key) Enable(ctx context.Context) (provider.KeyState, error) {
	return k.admin(ctx, "enable", func(id string) error {
		_, err := k.client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
		return err
	}, "")
}

// ScheduleDeletion schedules the key's deletion after pendingDays (7 to 30,
// as AWS allows). CancelDeletion undoes it until then.
func (k *Key) ScheduleDeletion(ctx context.Context, pendingDays int) (provider.KeyState, error) {
	if pendingDays < MinPendingDays || pendingDays > MaxPendingDays {
		return provider.KeyState{}, provider.Errorf(providerName, "schedule deletion", provider.Misuse, "",
			"pending days %d out of range: AWS KMS allows %d to %d days", pendingDays, MinPendingDays, MaxPendingDays)
	}
	return k.scheduleDeletion(ctx, "schedule deletion", pendingDays, "")
}

func (k *Key) scheduleDeletion(ctx context.Context, op string, days int, note string) (provider.KeyState, error) {
	return k.admin(ctx, op, func(id string) error {
		_, err := k.client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(int32(days))})
		return err
	}, note)
}

// CancelDeletion cancels a scheduled deletion (CancelKeyDeletion). AWS leaves
// the key disabled afterwards.
func (k *Key) CancelDeletion(ctx context.Context) (provider.KeyState, error) {
	return k.admin(ctx, "cancel deletion", func(id string) error {
		_, err := k.client.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
		return err
	}, "AWS leaves a key disabled after CancelKeyDeletion: enable it to use it again")
}

// Destroy is as close as AWS KMS comes to destroying a key: it cannot delete
// a key immediately, so Destroy schedules deletion with the minimum 7-day
// window and says so in Details["note"].
func (k *Key) Destroy(ctx context.Context) (provider.KeyState, error) {
	return k.scheduleDeletion(ctx, "destroy", MinPendingDays,
		"AWS KMS cannot destroy a key immediately: deletion is scheduled with the minimum 7-day window; the key is destroyed at deletion_date and can be recovered with cancel-deletion until then")
}

// admin runs one admin call, then describes the key.
// AWS's admin calls take a key ID or ARN, never an alias: an alias URI is
// resolved to its key's ARN first (one DescribeKey).
func (k *Key) admin(ctx context.Context, op string, call func(id string) error, note string) (provider.KeyState, error) {
	if err := k.needKey(op); err != nil {
		return provider.KeyState{}, err
	}
	id := k.keyID
	if strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/") {
		out, err := k.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			return provider.KeyState{}, k.classify(ctx, op, err, "")
		}
		id = aws.ToString(out.KeyMetadata.Arn)
	}
	if err := call(id); err != nil {
		return provider.KeyState{}, k.classify(ctx, op, err, "")
	}
	st, err := k.describe(ctx, k.keyID)
	if err != nil {
		return st, err
	}
	if note != "" {
		st.Details["note"] = note
	}
	if !st.DeletionDate.IsZero() {
		st.Details["deletion_date"] = st.DeletionDate.UTC().Format(time.RFC3339)
	}
	return st, nil
}
