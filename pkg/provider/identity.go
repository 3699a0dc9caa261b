package provider

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
)

// KeyIdentity pins a CMEK key beyond its URI: what the KMS said about the key,
// and where it was asked, when the key wrapped something. The keyring
// records it, and verify-destroyed checks it before it takes any answer of
// the KMS as proof (DESIGN §5). Keys are provider-defined; values are facts
// the KMS returned (AWS: the key ARN, its account and region, the endpoint
// asked; Vault: the cluster ID from sys/health, the namespace, the address;
// GCP: the full resource name).
type KeyIdentity map[string]string

// String is the identity as key=value pairs in a stable order, for reports.
func (id KeyIdentity) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(id)) {
		parts = append(parts, k+"="+id[k])
	}
	return strings.Join(parts, " ")
}

// Proof is a KMS's answer about a pinned key.
type Proof struct {
	// State is the KMS's view of the pinned key (StateUnknown when the
	// place did not match and nothing was asked).
	State KeyState
	// Destroyed is set only on positive proof: the KMS that holds the
	// pinned key says its material is gone and cannot come back.
	Destroyed bool
	// Mismatch says how the KMS asked differs from the one pinned (another
	// account, region, endpoint, cluster or namespace): nothing it says is
	// evidence about the pinned key. Empty when the places match.
	Mismatch string
	// Reason says why the answer is or is not proof.
	Reason string
	// ServerTime is the KMS's own clock when it answered, where it says.
	ServerTime time.Time
}

// Prover is implemented by keys that can pin their identity when they wrap,
// and later ask the KMS about that pinned identity. A provider's rule for
// proof of destruction lives in its Prove: "not found" and "access denied"
// are never proof, since they are also what a KMS answers when it is asked
// in the wrong place.
type Prover interface {
	// Pin returns the identity of the key that made w. It may ask the KMS
	// (Vault's sys/health); an error leaves the wrap unpinned, and an
	// unpinned wrap can never be proven destroyed.
	Pin(ctx context.Context, w Wrapped) (KeyIdentity, error)
	// Prove asks the KMS about the pinned key: first whether the place
	// asked is the pinned one, then the key's state.
	Prove(ctx context.Context, pin KeyIdentity) (Proof, error)
}

// AsProver returns the Prover of the key under any wrappers.
func AsProver(k Key) (Prover, bool) {
	p, ok := Base(k).(Prover)
	return p, ok
}

// PinOf returns the identity of the key that made w, or nil when the key
// cannot pin or the KMS did not answer (never an error: a wrap that worked
// stays good; it is only never provable as destroyed).
func PinOf(ctx context.Context, k Key, w Wrapped) KeyIdentity {
	p, ok := AsProver(k)
	if !ok {
		return nil
	}
	id, err := p.Pin(ctx, w)
	if err != nil || len(id) == 0 {
		return nil
	}
	return id
}

// SamePlace compares the entries named by keys of the pinned identity and
// of the one seen now, and says what differs ("" when none).
func SamePlace(pinned, now KeyIdentity, keys ...string) string {
	var diff []string
	for _, k := range keys {
		if pinned[k] != now[k] {
			diff = append(diff, k+" is "+quoteOrNone(now[k])+", pinned "+quoteOrNone(pinned[k]))
		}
	}
	return strings.Join(diff, "; ")
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return "\"" + s + "\""
}
