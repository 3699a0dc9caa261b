// Package provider defines the one small interface every KMS adapter
// implements, the four error classes that verify-destroyed stands on, and the
// URI parsing shared by the adapters.
//
// The package imports neither cobra nor viper: commands wire providers in.
package provider

import (
	"context"
	"time"
)

// Wrapped is a key wrapped by a CMEK key: the KMS ciphertext and the key
// version that produced it (empty when the KMS does not say).
type Wrapped struct {
	Ciphertext []byte `json:"ciphertext"`
	KeyVersion string `json:"key_version,omitempty"`
}

// Key is a customer-managed key in a KMS. Implementations hold no key
// material of their own beyond what the KMS client needs, and are safe for
// concurrent use.
type Key interface {
	// URI is the key's canonical URI, with any secret parameter redacted.
	URI() string
	// Wrap encrypts plaintext under the key's primary version, bound to aad.
	Wrap(ctx context.Context, plaintext, aad []byte) (Wrapped, error)
	// Unwrap decrypts w; aad must be the one given to Wrap.
	Unwrap(ctx context.Context, w Wrapped, aad []byte) ([]byte, error)
	// Describe asks the KMS for the key's state. It never unwraps anything.
	Describe(ctx context.Context) (KeyState, error)
}

// Rewrapper is implemented by keys whose KMS can re-encrypt a ciphertext
// under the key's current version in one call (Vault transit's rewrap).
type Rewrapper interface {
	Rewrap(ctx context.Context, w Wrapped, aad []byte) (Wrapped, error)
}

// Admin is implemented by keys that cmekctl can administer (`cmekctl kms`).
// A KMS that has no equivalent of an operation returns an error of class
// MISUSE that says so and what to do instead.
type Admin interface {
	Create(ctx context.Context) (KeyState, error)
	Rotate(ctx context.Context) (KeyState, error)
	Disable(ctx context.Context) (KeyState, error)
	Enable(ctx context.Context) (KeyState, error)
	ScheduleDeletion(ctx context.Context, pendingDays int) (KeyState, error)
	CancelDeletion(ctx context.Context) (KeyState, error)
	Destroy(ctx context.Context) (KeyState, error)
}

// State is the KMS's view of a key as a whole.
type State string

const (
	StateEnabled         State = "ENABLED"
	StateDisabled        State = "DISABLED"
	StatePendingDeletion State = "PENDING_DELETION"
	StateDestroyed       State = "DESTROYED"
	// StateNotFound: the KMS says there is no such key (it may have been
	// destroyed, or never existed, or the caller may not see it).
	StateNotFound State = "NOT_FOUND"
	StateUnknown  State = "UNKNOWN"
)

// VersionState is one version of a key.
type VersionState struct {
	ID      string    `json:"id"`
	State   State     `json:"state"`
	Created time.Time `json:"created,omitzero"`
}

// KeyState is what Describe returns.
type KeyState struct {
	URI            string         `json:"uri"`
	Provider       string         `json:"provider"`
	State          State          `json:"state"`
	PrimaryVersion string         `json:"primary_version,omitempty"`
	Versions       []VersionState `json:"versions,omitempty"`
	// DeletionDate is when a key pending deletion will be destroyed.
	DeletionDate time.Time `json:"deletion_date,omitzero"`
	// Recoverable is true when destroyed key material could come back:
	// imported material (AWS Origin=EXTERNAL), GCP reimport_eligible, a
	// Vault key that can still be read.
	Recoverable bool `json:"recoverable"`
	// RecoverableReason says why Recoverable is set.
	RecoverableReason string `json:"recoverable_reason,omitempty"`
	// Details are provider-specific facts (Origin, rotation status...).
	Details map[string]string `json:"details,omitempty"`
}
