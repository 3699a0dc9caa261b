// Package gcpkms is cmekctl's Google Cloud KMS provider:
// gcp-kms:///projects/P/locations/L/keyRings/R/cryptoKeys/K?AUTH=implicit.
//
// Wrap and Unwrap are Encrypt and Decrypt with the binding as additional
// authenticated data and the CRC32C integrity fields checked both ways.
// Describe reads the key and its versions. The key administration verbs
// (provider.Admin) act on the key's versions, as Cloud KMS does. Every error
// is a *provider.Error classed by the table in docs/providers/gcp.md.
package gcpkms

import (
	"context"
	"fmt"
	"hash/crc32"
	"net/url"
	"strings"
	"sync"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Key is a Cloud KMS CryptoKey. It is safe for concurrent use.
type Key struct {
	name  string // projects/P/locations/L/keyRings/R/cryptoKeys/K
	uri   string // redacted
	retry provider.RetryPolicy

	mu     sync.Mutex
	client *kms.KeyManagementClient
	dial   func(context.Context) (*kms.KeyManagementClient, error) // nil when client is given
	owned  bool                                                    // the client was built here: Close closes it
}

var (
	_ provider.Key   = (*Key)(nil)
	_ provider.Admin = (*Key)(nil)
)

// Open opens a gcp-kms URI. The client is built on the first KMS call, with
// Application Default Credentials (AUTH=implicit) or the CREDENTIALS
// service-account key (AUTH=specified), so Open itself makes no network call.
// ENDPOINT sets the client's endpoint (option.WithEndpoint); an http://
// loopback endpoint is reached without TLS and without credentials.
func Open(u *url.URL) (provider.Key, error) {
	cfg, err := ParseURI(u)
	if err != nil {
		return nil, err
	}
	k := &Key{name: cfg.KeyName, uri: cfg.URI, retry: provider.DefaultRetry, owned: true}
	creds := cfg.Credentials
	k.dial = func(ctx context.Context) (*kms.KeyManagementClient, error) {
		var opts []option.ClientOption
		if creds != nil {
			opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, creds))
		}
		if cfg.Endpoint != "" {
			opts = append(opts, option.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Plaintext { // ENDPOINT=http://LOOPBACK:PORT, checked by ParseURI
			opts = append(opts, option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		}
		return kms.NewKeyManagementClient(ctx, opts...)
	}
	return k, nil
}

// New returns the key keyName (projects/P/locations/L/keyRings/R/cryptoKeys/K)
// reached through a client the caller built and owns; uri is what URI reports
// (redacted here). Tests use it with a client pointed at a fake server.
func New(client *kms.KeyManagementClient, keyName, uri string) *Key {
	return &Key{name: keyName, uri: provider.RedactURI(uri), retry: provider.DefaultRetry, client: client}
}

// OpenerWithClient returns an opener of gcp-kms URIs whose keys all use
// client (for tests and callers that build their own client). The URI's
// AUTH and CREDENTIALS are checked but the client's own credentials are used.
func OpenerWithClient(client *kms.KeyManagementClient) provider.Opener {
	return func(u *url.URL) (provider.Key, error) {
		cfg, err := ParseURI(u)
		if err != nil {
			return nil, err
		}
		return New(client, cfg.KeyName, cfg.URI), nil
	}
}

// WithRetry sets the policy for TRANSIENT errors and returns k.
func (k *Key) WithRetry(p provider.RetryPolicy) *Key {
	k.retry = p
	return k
}

// Name is the CryptoKey's resource name.
func (k *Key) Name() string { return k.name }

// URI is the key's canonical URI with CREDENTIALS redacted.
func (k *Key) URI() string { return k.uri }

// Close closes a client that Open built; a client given to New is the
// caller's to close.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.owned && k.client != nil {
		err := k.client.Close()
		k.client = nil
		return err
	}
	return nil
}

func (k *Key) kms(ctx context.Context, op string) (*kms.KeyManagementClient, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.client != nil {
		return k.client, nil
	}
	// The client outlives this call: keep ctx's values, not its deadline.
	c, err := k.dial(context.WithoutCancel(ctx))
	if err != nil {
		return nil, wrapErr(op, fmt.Errorf("create client: %w", err))
	}
	k.client = c
	return c, nil
}

// noRetry turns off the client's own retryer: calls are retried by
// provider.Retry with this package's classification, which also covers
// RESOURCE_EXHAUSTED and checksum failures, bounded in attempts and time.
var noRetry = gax.WithRetry(func() gax.Retryer { return nil })

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// call runs fn with the retry policy, classing its errors for op.
func (k *Key) call(ctx context.Context, op string, fn func(context.Context, *kms.KeyManagementClient) error) error {
	c, err := k.kms(ctx, op)
	if err != nil {
		return err
	}
	_, err = provider.Retry(ctx, k.retry, func(ctx context.Context) error {
		return wrapErr(op, fn(ctx, c))
	})
	return err
}

func checksumErr(op, what string) error {
	return &provider.Error{Provider: providerName, Op: op, Class: provider.Transient, Code: CodeChecksum,
		Message: what + "; the response was discarded (Google's guidance: retry a limited number of times)"}
}

// Wrap encrypts plaintext under the key's primary version, bound to aad.
// KeyVersion is the version that encrypted.
func (k *Key) Wrap(ctx context.Context, plaintext, aad []byte) (provider.Wrapped, error) {
	const op = "wrap"
	var w provider.Wrapped
	err := k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		req := &kmspb.EncryptRequest{
			Name:            k.name,
			Plaintext:       plaintext,
			PlaintextCrc32C: wrapperspb.Int64(crc(plaintext)),
		}
		if len(aad) > 0 {
			req.AdditionalAuthenticatedData = aad
			req.AdditionalAuthenticatedDataCrc32C = wrapperspb.Int64(crc(aad))
		}
		resp, err := c.Encrypt(ctx, req, noRetry)
		if err != nil {
			return err
		}
		switch {
		case !resp.GetVerifiedPlaintextCrc32C():
			return checksumErr(op, "the server did not verify plaintext_crc32c")
		case len(aad) > 0 && !resp.GetVerifiedAdditionalAuthenticatedDataCrc32C():
			return checksumErr(op, "the server did not verify additional_authenticated_data_crc32c")
		case resp.GetCiphertextCrc32C() == nil || resp.GetCiphertextCrc32C().GetValue() != crc(resp.GetCiphertext()):
			return checksumErr(op, "ciphertext_crc32c does not match the ciphertext received")
		case !k.isVersion(resp.GetName()):
			return checksumErr(op, fmt.Sprintf("the response names %q, not a version of %s", resp.GetName(), k.name))
		}
		w = provider.Wrapped{Ciphertext: resp.GetCiphertext(), KeyVersion: resp.GetName()}
		return nil
	})
	return w, err
}

// isVersion: name is NAME/cryptoKeyVersions/N of this key, as Google advises
// checking an Encrypt response's name.
func (k *Key) isVersion(name string) bool {
	v, ok := strings.CutPrefix(name, k.name+"/cryptoKeyVersions/")
	return ok && reVersion().MatchString(v)
}

// Unwrap decrypts w; aad must be the one given to Wrap. Cloud KMS finds the
// version that encrypted from the ciphertext itself.
func (k *Key) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) ([]byte, error) {
	const op = "unwrap"
	var pt []byte
	err := k.call(ctx, op, func(ctx context.Context, c *kms.KeyManagementClient) error {
		req := &kmspb.DecryptRequest{
			Name:             k.name,
			Ciphertext:       w.Ciphertext,
			CiphertextCrc32C: wrapperspb.Int64(crc(w.Ciphertext)),
		}
		if len(aad) > 0 {
			req.AdditionalAuthenticatedData = aad
			req.AdditionalAuthenticatedDataCrc32C = wrapperspb.Int64(crc(aad))
		}
		resp, err := c.Decrypt(ctx, req, noRetry)
		if err != nil {
			return err
		}
		if resp.GetPlaintextCrc32C() == nil || resp.GetPlaintextCrc32C().GetValue() != crc(resp.GetPlaintext()) {
			clear(resp.Plaintext)
			return checksumErr(op, "plaintext_crc32c does not match the plaintext received")
		}
		pt = resp.GetPlaintext()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pt, nil
}
