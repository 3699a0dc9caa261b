// Package awskms is the AWS KMS provider of cmekctl: a provider.Key (Encrypt
// and Decrypt with an encryption context carrying the binding, DescribeKey)
// and a provider.Admin (CreateKey, RotateKeyOnDemand, DisableKey, EnableKey,
// ScheduleKeyDeletion, CancelKeyDeletion) over the official aws-sdk-go-v2
// client.
//
// URIs follow CockroachDB's KMS URI conventions:
//
//	aws-kms:///<key ARN | key id | alias/name>?REGION=..&AUTH=implicit|specified&ASSUME_ROLE=..&AWS_ENDPOINT=..
//
// Every error is a *provider.Error classed by the table in errors.go
// (documented, with its sources, in docs/providers/aws.md).
package awskms

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Retry bounds used by Open. Only TRANSIENT errors are retried.
const (
	DefaultMaxAttempts = 4               // total attempts, the first included
	DefaultMaxBackoff  = 2 * time.Second // cap on one jittered backoff
)

// contextKeyOpaque is the encryption-context entry that carries an aad that
// was not made by provider.Binding.AAD, base64-encoded.
const contextKeyOpaque = "cmekctl-aad"

// Key is an AWS KMS symmetric key. It is safe for concurrent use.
type Key struct {
	client *kms.Client
	sts    *sts.Client // the caller's identity; nil: never proof (see WithSTS)
	keyID  string      // as the URI names it: ARN, key ID, alias/name or alias ARN
	uri    string      // redacted
}

var (
	_ provider.Key   = (*Key)(nil)
	_ provider.Admin = (*Key)(nil)
)

// New returns the key keyID reached through client. uri is what URI returns
// (it is redacted here). Tests use it with a client pointed at a local
// server; Open builds the client from the URI.
func New(client *kms.Client, keyID, uri string) *Key {
	return &Key{client: client, keyID: keyID, uri: provider.RedactURI(uri)}
}

// NewRetryer returns the SDK's standard retryer with bounded attempts and
// backoff, which retries only what this package classes TRANSIENT
// (throttling, KMS internal errors, dependency timeouts, unavailable keys,
// 5xx, connection errors). opts may adjust it further (tests disable the
// retry quota with ratelimit.None to count attempts exactly).
func NewRetryer(maxAttempts int, maxBackoff time.Duration, opts ...func(*retry.StandardOptions)) aws.Retryer {
	return attemptsRetryer{retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.Retryables = append([]retry.IsErrorRetryable{onlyTransient{}}, o.Retryables...)
		o.Retryables = append(o.Retryables, retry.RetryableErrorCode{Codes: map[string]struct{}{
			(&types.KMSInternalException{}).ErrorCode():       {},
			(&types.DependencyTimeoutException{}).ErrorCode(): {},
			(&types.KeyUnavailableException{}).ErrorCode():    {},
			codeThrottling:      {},
			codeInternalFailure: {},
			codeServiceUnavail:  {},
		}})
		for _, f := range opts {
			f(o)
		}
	})}
}

// attemptsRetryer tells the call's attempt observer (provider.Attempt) of
// each attempt the SDK makes: it asks for an attempt token before each one.
type attemptsRetryer struct{ *retry.Standard }

func (r attemptsRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	provider.Attempt(ctx, r.MaxAttempts())
	return r.Standard.GetAttemptToken(ctx)
}

var _ aws.RetryerV2 = attemptsRetryer{}

// onlyTransient vetoes a retry of any error the table does not class
// TRANSIENT, whatever the SDK's defaults would say.
type onlyTransient struct{}

func (onlyTransient) IsErrorRetryable(err error) aws.Ternary {
	if classOf(err) != provider.Transient {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// Open opens an aws-kms:/// URI. It reads the SDK's shared configuration
// (for AUTH=implicit: environment, shared config and profile, SSO, IMDS) but
// makes no KMS call.
func Open(u *url.URL) (provider.Key, error) {
	c, err := parseURI(u)
	if err != nil {
		return nil, err
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(c.region),
		config.WithRetryer(func() aws.Retryer { return NewRetryer(DefaultMaxAttempts, DefaultMaxBackoff) }),
	}
	if c.fips != aws.FIPSEndpointStateUnset {
		opts = append(opts, config.WithUseFIPSEndpoint(c.fips)) // over the environment's
	}
	if c.auth == authSpecified {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.accessKeyID, c.secretKey, c.sessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		// The SDK's config errors name files and profiles, never URI secrets.
		return nil, &provider.Error{Provider: providerName, Op: "load aws config", Class: provider.Misuse, Message: err.Error(), Err: err}
	}
	for _, role := range c.roles {
		// Each role of the chain is assumed with the credentials of the one before.
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), role,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = "cmekctl-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			}))
	}
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		if c.endpoint != "" {
			o.BaseEndpoint = aws.String(c.endpoint)
		}
	})
	stsClient := sts.NewFromConfig(cfg, func(o *sts.Options) {
		if c.stsURL != "" {
			o.BaseEndpoint = aws.String(c.stsURL)
		}
	})
	return &Key{client: client, sts: stsClient, keyID: c.keyID, uri: c.redacted}, nil
}

// WithSTS returns k asking c for the caller's identity (GetCallerIdentity):
// Pin and Prove need it. Open sets it from the URI (AWS_STS_ENDPOINT, as
// AWS_ENDPOINT for KMS); tests pointing New at a local server set it here.
func (k *Key) WithSTS(c *sts.Client) *Key {
	k2 := *k
	k2.sts = c
	return &k2
}

// URI returns the key's URI with its secrets redacted.
func (k *Key) URI() string { return k.uri }

// KeyID returns the key as the URI names it.
func (k *Key) KeyID() string { return k.keyID }

func (k *Key) needKey(op string) error {
	if k.keyID == "" {
		return provider.Errorf(providerName, op, provider.Misuse, "", "the URI names no key: use aws-kms:///<key ARN | key id | alias/name>?REGION=..")
	}
	return nil
}

// encryptionContext turns aad into an AWS encryption context: the binding's
// entries when aad was made by provider.Binding.AAD, else one entry holding
// the aad in base64. An empty aad gives no context.
func encryptionContext(aad []byte) map[string]string {
	if len(aad) == 0 {
		return nil
	}
	if b, ok := provider.ParseAAD(aad); ok && len(b) > 0 {
		return map[string]string(b)
	}
	return map[string]string{contextKeyOpaque: base64.StdEncoding.EncodeToString(aad)}
}

// Wrap encrypts plaintext (at most 4096 bytes) with Encrypt, bound to aad by
// the encryption context.
//
// The Wrapped.KeyVersion it records is the key ARN that Encrypt returns. AWS
// KMS has no version IDs for symmetric keys in its Encrypt API: rotation
// (automatic or RotateKeyOnDemand) changes the key material behind the same
// ARN, and the ciphertext blob itself names the material that wrapped it, so
// old ciphertexts stay readable. The ARN is the most AWS tells us: it pins an
// alias URI to the key that actually wrapped.
func (k *Key) Wrap(ctx context.Context, plaintext, aad []byte) (provider.Wrapped, error) {
	if err := k.needKey("wrap"); err != nil {
		return provider.Wrapped{}, err
	}
	out, err := k.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(k.keyID),
		Plaintext:         plaintext,
		EncryptionContext: encryptionContext(aad),
	})
	if err != nil {
		return provider.Wrapped{}, k.classify(ctx, "wrap", err, "")
	}
	return provider.Wrapped{Ciphertext: out.CiphertextBlob, KeyVersion: aws.ToString(out.KeyId)}, nil
}

// Unwrap decrypts w with Decrypt. It passes the URI's KeyId, so that a
// ciphertext of another key fails (IncorrectKeyException: MISUSE) instead of
// being decrypted by whatever key the blob names.
func (k *Key) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) ([]byte, error) {
	if err := k.needKey("unwrap"); err != nil {
		return nil, err
	}
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(k.keyID),
		CiphertextBlob:    w.Ciphertext,
		EncryptionContext: encryptionContext(aad),
	})
	if err != nil {
		return nil, k.classify(ctx, "unwrap", err, w.KeyVersion)
	}
	return out.Plaintext, nil
}

// classify turns an SDK error into a *provider.Error. NotFoundException is
// REVOKED, never DESTROYED: it is also AWS's answer to a caller in another
// account or region, or at another endpoint. Only Prove, about a pinned key
// ARN asked in its own place, can prove destruction.
func (k *Key) classify(_ context.Context, op string, err error, _ string) error {
	e := newError(op, classOf(err), err)
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == codeNotFound {
		e.Message += " (not found is not proof of destruction: AWS says the same to a caller in another account, region or endpoint)"
	}
	return e
}

// Describe asks DescribeKey for the key's state, and GetKeyRotationStatus
// for its rotation (a failure of that second call is noted in Details, not
// returned). A key AWS does not find is StateNotFound, not an error.
func (k *Key) Describe(ctx context.Context) (provider.KeyState, error) {
	if err := k.needKey("describe"); err != nil {
		return provider.KeyState{}, err
	}
	st, _, err := k.describeAt(ctx, k.keyID)
	return st, err
}

func (k *Key) describe(ctx context.Context, keyID string) (provider.KeyState, error) {
	st, _, err := k.describeAt(ctx, keyID)
	return st, err
}

// describeAt is describe that also returns AWS's clock when it answered
// (the response's Date header; zero when it gave none).
func (k *Key) describeAt(ctx context.Context, keyID string) (provider.KeyState, time.Time, error) {
	st := provider.KeyState{URI: k.uri, Provider: providerName, State: provider.StateUnknown, Details: map[string]string{}}
	out, err := k.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		server := serverTimeOfError(err)
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == codeNotFound {
			st.State = provider.StateNotFound
			st.Details["code"] = api.ErrorCode()
			st.Details["message"] = api.ErrorMessage()
			if pe := newError("describe", provider.Revoked, err); pe.RequestID != "" {
				st.Details["request_id"] = pe.RequestID
			}
			return st, server, nil
		}
		return st, server, newError("describe", classOf(err), err)
	}
	server, _ := awsmiddleware.GetServerTime(out.ResultMetadata)
	m := out.KeyMetadata
	if m == nil {
		return st, server, provider.Errorf(providerName, "describe", provider.Transient, "", "DescribeKey returned no key metadata")
	}
	st.State = mapState(m.KeyState)
	if m.KeyState == types.KeyStatePendingDeletion && m.DeletionDate != nil && !server.IsZero() && !m.DeletionDate.After(server) {
		// Judged by AWS's clock, never the local one; and a key AWS still
		// describes is not deleted, whatever its date says.
		st.Details["deletion"] = "deletion date passed by AWS's clock (" + server.UTC().Format(time.RFC3339) + "), but AWS still describes the key: not deleted yet"
	}
	if m.DeletionDate != nil {
		st.DeletionDate = *m.DeletionDate
	}
	arn := aws.ToString(m.Arn)
	st.PrimaryVersion = arn // AWS has no version IDs for symmetric keys (see Wrap)
	st.Details["arn"] = arn
	st.Details["key_id"] = aws.ToString(m.KeyId)
	st.Details["key_state"] = string(m.KeyState)
	st.Details["origin"] = string(m.Origin)
	st.Details["key_spec"] = string(m.KeySpec)
	st.Details["key_usage"] = string(m.KeyUsage)
	st.Details["key_manager"] = string(m.KeyManager)
	if m.CurrentKeyMaterialId != nil {
		st.Details["current_key_material_id"] = *m.CurrentKeyMaterialId
	}
	if m.MultiRegion != nil && *m.MultiRegion {
		st.Details["multi_region"] = "true"
	}
	if m.CreationDate != nil {
		st.Details["created"] = m.CreationDate.UTC().Format(time.RFC3339)
	}
	if m.ValidTo != nil {
		st.Details["key_material_expires"] = m.ValidTo.UTC().Format(time.RFC3339)
	}
	if m.Origin == types.OriginTypeExternal {
		st.Recoverable = true
		st.RecoverableReason = "imported key material (Origin EXTERNAL): whoever holds a copy of the material can import it again, even after AWS deletes it"
	}
	rot, err := k.client.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(arn)})
	if err != nil {
		st.Details["rotation_status"] = "unknown: " + newError("get rotation status", classOf(err), err).Error()
	} else {
		st.Details["rotation_enabled"] = strconv.FormatBool(rot.KeyRotationEnabled)
		if rot.RotationPeriodInDays != nil {
			st.Details["rotation_period_days"] = strconv.Itoa(int(*rot.RotationPeriodInDays))
		}
		if rot.NextRotationDate != nil {
			st.Details["next_rotation"] = rot.NextRotationDate.UTC().Format(time.RFC3339)
		}
		if rot.OnDemandRotationStartDate != nil {
			st.Details["on_demand_rotation_started"] = rot.OnDemandRotationStartDate.UTC().Format(time.RFC3339)
		}
	}
	return st, server, nil
}

// mapState maps AWS's KeyState to cmekctl's.
func mapState(s types.KeyState) provider.State {
	switch s {
	case types.KeyStateEnabled:
		return provider.StateEnabled
	case types.KeyStateDisabled,
		// PendingImport: no key material (never imported, deleted or
		// expired): unusable until material is imported, like a disabled key.
		types.KeyStatePendingImport:
		return provider.StateDisabled
	case types.KeyStatePendingDeletion, types.KeyStatePendingReplicaDeletion:
		return provider.StatePendingDeletion
	default: // Creating, Updating, Unavailable (custom key store disconnected)
		return provider.StateUnknown
	}
}

// aliasName returns alias/name for an alias URI key ("alias/x" or an alias ARN).
func aliasName(id string) string {
	if i := strings.Index(id, ":alias/"); i >= 0 {
		return id[i+1:]
	}
	return id
}
