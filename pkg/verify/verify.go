// Package verify decides, from evidence, whether key material is destroyed,
// revoked or still accessible (DESIGN §5). Every check records its target,
// what was tried, the result, the error class and the KMS's own error, and a
// timestamp; the weakest check decides the verdict.
package verify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Verdicts.
const (
	Destroyed    = "DESTROYED"
	Revoked      = "REVOKED"
	Accessible   = "ACCESSIBLE"
	Inconclusive = "INCONCLUSIVE"
)

// Outcomes of one check: what it says about the verdict.
const (
	OutDestroyed    = "destroyed"    // proof the material is gone
	OutRevoked      = "revoked"      // not usable now, but could come back
	OutAccessible   = "accessible"   // something still unwraps or decrypts
	OutInconclusive = "inconclusive" // a transient error stopped the check
	OutPass         = "pass"         // nothing found; does not decide
)

// Check is one piece of evidence.
type Check struct {
	Target   string `json:"target"`
	Check    string `json:"check"`
	Result   string `json:"result"`
	Outcome  string `json:"outcome"`
	Class    string `json:"class,omitempty"`
	KMSError string `json:"kms_error,omitempty"`
	// Identity is the key identity pinned at wrap time that the check is
	// about (see provider.KeyIdentity), when there is one.
	Identity string    `json:"identity,omitempty"`
	At       time.Time `json:"at"`
}

// Report is the evidence and its verdict.
type Report struct {
	Verdict    string    `json:"verdict"`
	Reason     string    `json:"reason"`
	Checks     []Check   `json:"checks"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// Decide computes the verdict: one accessible check makes it ACCESSIBLE;
// otherwise one inconclusive check (or one with an outcome this package does
// not know) makes it INCONCLUSIVE; DESTROYED needs every deciding check to
// be positive proof of destruction; anything else is REVOKED. Checks that
// pass (found nothing) do not decide; with no deciding check at all the
// verdict is INCONCLUSIVE.
func Decide(checks []Check) (verdict, reason string) {
	counts := map[string]int{}
	for _, c := range checks {
		switch c.Outcome {
		case OutDestroyed, OutRevoked, OutAccessible, OutInconclusive, OutPass:
			counts[c.Outcome]++
		default:
			counts[OutInconclusive]++ // unknown: never proof
		}
	}
	deciding := counts[OutDestroyed] + counts[OutRevoked] + counts[OutAccessible] + counts[OutInconclusive]
	switch {
	case counts[OutAccessible] > 0:
		return Accessible, fmt.Sprintf("%d check(s) still reached key material", counts[OutAccessible])
	case counts[OutInconclusive] > 0:
		return Inconclusive, fmt.Sprintf("%d check(s) could not decide (a transient error, or a KMS asked in another place than the pinned one); that is never proof", counts[OutInconclusive])
	case deciding == 0:
		return Inconclusive, "no check could decide"
	case counts[OutDestroyed] == deciding:
		return Destroyed, fmt.Sprintf("all %d deciding checks are positive proof that the key material is gone", deciding)
	}
	return Revoked, fmt.Sprintf("nothing could be unwrapped, but %d check(s) are no proof of destruction: the key could come back", counts[OutRevoked])
}

// ErrorCheck records a failed KMS attempt with its class.
func ErrorCheck(target, check string, err error, at time.Time) Check {
	class := provider.Classify(err)
	code, msg := provider.Details(err)
	c := Check{Target: target, Check: check, Class: string(class), KMSError: strings.TrimSpace(code + ": " + msg), At: at}
	c.KMSError = strings.TrimPrefix(c.KMSError, ": ")
	switch class {
	case provider.Destroyed:
		c.Outcome, c.Result = OutDestroyed, "failed: key material destroyed"
	case provider.Transient:
		c.Outcome, c.Result = OutInconclusive, "failed: transient error (not proof)"
	case provider.Misuse:
		c.Outcome, c.Result = OutRevoked, "failed: does not authenticate (not proof of destruction)"
	default:
		c.Outcome, c.Result = OutRevoked, "failed: key revoked, disabled or access denied"
	}
	return c
}

// DescribeCheck asks the KMS for a key's state and judges it: only the KMS
// saying DESTROYED, not recoverable, proves destruction. NOT_FOUND never does:
// it is also the answer of a KMS asked in the wrong place (another account,
// region, endpoint, cluster or namespace).
func DescribeCheck(ctx context.Context, key provider.Key, target string, now func() time.Time) Check {
	st, err := key.Describe(ctx)
	if err != nil {
		return ErrorCheck(target, "describe CMEK key", err, now().UTC())
	}
	c := Check{Target: target, Check: "describe CMEK key", At: now().UTC(), Result: "KMS says " + string(st.State)}
	switch {
	case st.State == provider.StateDestroyed && !st.Recoverable:
		c.Outcome = OutDestroyed
	case st.Recoverable:
		c.Outcome = OutRevoked
		c.Result += "; recoverable: " + st.RecoverableReason
	case st.State == provider.StateNotFound:
		c.Outcome = OutRevoked
		c.Result += ": not proof (a KMS asked in the wrong place says the same)"
	case st.State == provider.StatePendingDeletion:
		c.Outcome = OutRevoked
		if st.DeletionDate.IsZero() {
			c.Result += " (the KMS gave no deletion date)"
		} else {
			c.Result += " (deletion on " + st.DeletionDate.UTC().Format(time.RFC3339) + ")"
		}
	default:
		c.Outcome = OutRevoked
	}
	return c
}

// ProveCheck asks the KMS about the key identity pinned at wrap time
// (provider.Prover). It reports whether the pinned key is proven destroyed:
// only then may an unwrap failure of that key count as proof. Without a pin,
// or with a KMS that cannot prove, the KMS's answer is reported and never
// counts as proof of destruction. A KMS asked in another place than the
// pinned one is INCONCLUSIVE: nothing it says is about the key.
func ProveCheck(ctx context.Context, key provider.Key, pin provider.KeyIdentity, target string, now func() time.Time) (Check, bool) {
	const name = "prove CMEK key destroyed"
	p, ok := provider.AsProver(key)
	if !ok || len(pin) == 0 {
		c := DescribeCheck(ctx, key, target, now)
		c.Check = name
		if c.Outcome == OutDestroyed {
			c.Outcome = OutRevoked
		}
		if c.Outcome != OutInconclusive {
			c.Result += "; no key identity was pinned when it wrapped: not proof (rotate cmek re-wraps and pins it)"
		}
		return c, false
	}
	pr, err := p.Prove(ctx, pin)
	if err != nil {
		c := ErrorCheck(target, name, err, now().UTC())
		if c.Outcome == OutDestroyed {
			c.Outcome = OutRevoked
		}
		c.Identity = pin.String()
		return c, false
	}
	c := Check{Target: target, Check: name, Identity: pin.String(), At: now().UTC()}
	switch {
	case pr.Mismatch != "":
		c.Outcome, c.Result = OutInconclusive, "IDENTITY MISMATCH: "+pr.Mismatch+" (not evidence about the pinned key)"
	case pr.Destroyed:
		c.Outcome, c.Result = OutDestroyed, "KMS says "+string(pr.State.State)+": "+pr.Reason
	default:
		c.Outcome, c.Result = OutRevoked, "KMS says "+string(pr.State.State)+": "+pr.Reason
		if pr.State.Recoverable && !strings.Contains(pr.Reason, "recoverable") {
			c.Result += "; recoverable: " + pr.State.RecoverableReason
		}
	}
	if !pr.ServerTime.IsZero() {
		c.Result += " (KMS clock " + pr.ServerTime.UTC().Format(time.RFC3339) + ")"
	}
	return c, c.Outcome == OutDestroyed
}

// UnwrapCheck tries a real unwrap; success is ACCESSIBLE (the plaintext is
// wiped at once). A failure is proof of destruction only when proven is set
// (ProveCheck proved the pinned key that made w destroyed): a KMS error that
// says "destroyed" or "not found" is not proof on its own.
func UnwrapCheck(ctx context.Context, key provider.Key, w provider.Wrapped, aad []byte, target, check string, proven bool, now func() time.Time) Check {
	pt, err := key.Unwrap(ctx, w, aad)
	if err != nil {
		return Gate(ErrorCheck(target, check, err, now().UTC()), proven)
	}
	clear(pt)
	return Check{Target: target, Check: check, Result: "UNWRAPPED: the key still works", Outcome: OutAccessible, At: now().UTC()}
}

// Gate applies the evidence rule to a failed attempt: it is proof of
// destruction only if the pinned key that it needed is proven destroyed.
// A transient failure stays inconclusive whatever the proof.
func Gate(c Check, proven bool) Check {
	switch {
	case c.Outcome == OutInconclusive || c.Outcome == OutAccessible || c.Outcome == OutPass:
	case proven && c.Outcome == OutDestroyed:
		c.Result += "; the pinned key is proven destroyed"
	case proven:
		c.Outcome = OutDestroyed
		c.Result = "failed (" + c.Class + "); the pinned key is proven destroyed"
	case c.Outcome == OutDestroyed:
		c.Outcome = OutRevoked
		c.Result = "failed: the KMS says destroyed, but the pinned key is not proven destroyed (not proof)"
	}
	return c
}
