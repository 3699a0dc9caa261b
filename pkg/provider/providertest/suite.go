// Package providertest is the one test suite every KMS provider runs, against
// its real or independently written server (as restic's backend test suite).
//
// A provider's test builds a Harness that talks to its server on 127.0.0.1
// and calls Run. A row the harness cannot drive on its server must be named
// in Harness.Covered with the test that covers it instead; there is no
// silent skip.
package providertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Mutator puts a key into a state on the server and returns the key to use
// for the next calls (the same key, or one pointed at a fault server).
type Mutator func(t *testing.T, k provider.Key) provider.Key

// Harness describes how to drive one provider's server.
type Harness struct {
	// NewKey creates a fresh, enabled key on the server.
	NewKey func(t *testing.T) provider.Key
	// Each mutator drives the key into the named state on the server.
	Disable          Mutator
	ScheduleDeletion Mutator
	Destroy          Mutator
	DenyAccess       Mutator // the caller loses access (IAM, policy)
	Throttle         Mutator // the server throttles beyond the retry budget
	Down             Mutator // the server is unreachable
	// Rotate makes a new primary version (nil if the server cannot).
	Rotate Mutator
	// Covered names rows this harness does not drive, with the test that
	// covers them (e.g. "Destroy": "TestAWSDocumentedErrors/NotFound").
	Covered map[string]string
	// DescribeAfter checks the KMS's view in each state (default true).
	SkipDescribeStates bool
	// CannotProve says why the provider never proves destruction (Vault:
	// a deleted key reads like one that never existed, and comes back by
	// transit/restore); empty when Prove proves a destroyed key.
	CannotProve string
	// NotFoundOnDestroy: the KMS answers a destroyed key's unwrap with "not
	// found" (AWS), which is REVOKED, never DESTROYED.
	NotFoundOnDestroy bool
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func randKey(t *testing.T) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

var aad = provider.Binding{"cluster": "c-test", "region": "r1", "key_id": "k1", "purpose": "store-key", "format": "1"}.AAD()

// Run runs every row of the suite.
func Run(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) {
		k := h.NewKey(t)
		pt := randKey(t)
		w, err := k.Wrap(ctx(t), pt, aad)
		if err != nil {
			t.Fatalf("wrap: %v", err)
		}
		if bytes.Contains(w.Ciphertext, pt) {
			t.Fatal("ciphertext contains the plaintext")
		}
		got, err := k.Unwrap(ctx(t), w, aad)
		if err != nil {
			t.Fatalf("unwrap: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatal("unwrap returned other bytes")
		}
		st, err := k.Describe(ctx(t))
		if err != nil {
			t.Fatalf("describe: %v", err)
		}
		if st.State != provider.StateEnabled {
			t.Fatalf("describe: state %s, want ENABLED", st.State)
		}
	})
	t.Run("AADMismatch", func(t *testing.T) {
		k := h.NewKey(t)
		w, err := k.Wrap(ctx(t), randKey(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		other := provider.Binding{"cluster": "c-test", "region": "r2", "key_id": "k1", "purpose": "store-key", "format": "1"}.AAD()
		_, err = k.Unwrap(ctx(t), w, other)
		expectClass(t, err, provider.Misuse)
	})
	t.Run("WrongKey", func(t *testing.T) {
		k1, k2 := h.NewKey(t), h.NewKey(t)
		w, err := k1.Wrap(ctx(t), randKey(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		_, err = k2.Unwrap(ctx(t), w, aad)
		expectClass(t, err, provider.Misuse)
	})
	t.Run("CorruptCiphertext", func(t *testing.T) {
		k := h.NewKey(t)
		w, err := k.Wrap(ctx(t), randKey(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		w.Ciphertext = bytes.Clone(w.Ciphertext)
		w.Ciphertext[len(w.Ciphertext)-1] ^= 1
		_, err = k.Unwrap(ctx(t), w, aad)
		expectClass(t, err, provider.Misuse)
	})
	if h.Rotate != nil {
		t.Run("RotateKeepsOldVersionsReadable", func(t *testing.T) {
			k := h.NewKey(t)
			pt := randKey(t)
			w1, err := k.Wrap(ctx(t), pt, aad)
			if err != nil {
				t.Fatal(err)
			}
			k = h.Rotate(t, k)
			w2, err := k.Wrap(ctx(t), pt, aad)
			if err != nil {
				t.Fatal(err)
			}
			if w1.KeyVersion != "" && w1.KeyVersion == w2.KeyVersion {
				t.Fatalf("key version %q did not change after rotate", w1.KeyVersion)
			}
			for _, w := range []provider.Wrapped{w1, w2} {
				got, err := k.Unwrap(ctx(t), w, aad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("unwrap version %q after rotate: %v", w.KeyVersion, err)
				}
			}
		})
	} else {
		covered(t, h, "Rotate")
	}
	state := func(name string, m Mutator, class provider.Class, want ...provider.State) {
		t.Run(name, func(t *testing.T) {
			if m == nil {
				covered(t, h, name)
				return
			}
			k := h.NewKey(t)
			w, err := k.Wrap(ctx(t), randKey(t), aad)
			if err != nil {
				t.Fatal(err)
			}
			pin := pinOf(t, k, w)
			k = m(t, k)
			_, err = k.Unwrap(ctx(t), w, aad)
			expectClass(t, err, class)
			checkProof(t, h, k, pin, name)
			if len(want) == 0 || h.SkipDescribeStates {
				return
			}
			st, err := k.Describe(ctx(t))
			if err != nil {
				if provider.Classify(err) == class {
					return // Describe fails the same way (e.g. access denied)
				}
				t.Fatalf("describe: %v", err)
			}
			for _, s := range want {
				if st.State == s {
					return
				}
			}
			t.Fatalf("describe: state %s, want one of %v", st.State, want)
		})
	}
	state("Disable", h.Disable, provider.Revoked, provider.StateDisabled)
	state("ScheduleDeletion", h.ScheduleDeletion, provider.Revoked, provider.StatePendingDeletion)
	// A destroyed key's unwrap fails DESTROYED, or REVOKED where the KMS
	// only says "not found" (AWS, Vault): never proof on its own; the proof
	// is Prove's, about the identity pinned at wrap time.
	destroyedClass := provider.Destroyed
	if h.CannotProve != "" || h.NotFoundOnDestroy {
		destroyedClass = provider.Revoked
	}
	state("Destroy", h.Destroy, destroyedClass, provider.StateDestroyed, provider.StateNotFound)
	state("DenyAccess", h.DenyAccess, provider.Revoked)
	state("Throttle", h.Throttle, provider.Transient)
	state("Down", h.Down, provider.Transient)
}

func covered(t *testing.T, h Harness, row string) {
	t.Helper()
	by, ok := h.Covered[row]
	if !ok {
		t.Fatalf("row %s: the harness neither drives it nor names the test that covers it", row)
	}
	t.Logf("row %s covered by %s", row, by)
}

func expectClass(t *testing.T, err error, want provider.Class) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want class %s", want)
	}
	if got := provider.Classify(err); got != want {
		t.Fatalf("error %q: class %s, want %s", err, got, want)
	}
}

// pinOf pins the identity of the key that made w; every provider pins.
func pinOf(t *testing.T, k provider.Key, w provider.Wrapped) provider.KeyIdentity {
	t.Helper()
	p, ok := provider.AsProver(k)
	if !ok {
		t.Fatalf("%T is no provider.Prover: verify-destroyed could never prove it destroyed", provider.Base(k))
	}
	pin, err := p.Pin(ctx(t), w)
	if err != nil || len(pin) == 0 {
		t.Fatalf("pin: %v (%v)", pin, err)
	}
	return pin
}

// checkProof asks Prove about the pinned key after the row's mutation: only
// Destroy may prove destruction, and only where the provider can prove it.
// A KMS that cannot be asked (throttled, down, access denied) proves nothing.
func checkProof(t *testing.T, h Harness, k provider.Key, pin provider.KeyIdentity, row string) {
	t.Helper()
	p, _ := provider.AsProver(k)
	pr, err := p.Prove(ctx(t), pin)
	want := row == "Destroy" && h.CannotProve == ""
	if err != nil {
		if want {
			t.Fatalf("prove after %s: %v", row, err)
		}
		return
	}
	if pr.Mismatch != "" && (want || pr.Destroyed) {
		// A harness may point the key at a fault server (another place):
		// that is never proof.
		t.Fatalf("prove after %s: mismatch %q in the pinned place, destroyed %v", row, pr.Mismatch, pr.Destroyed)
	}
	if pr.Destroyed != want {
		t.Fatalf("prove after %s: destroyed %v (%s), want %v", row, pr.Destroyed, pr.Reason, want)
	}
	if pr.Reason == "" && pr.Mismatch == "" {
		t.Fatalf("prove after %s: no reason given", row)
	}
}
