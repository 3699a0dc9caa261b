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
	Target   string    `json:"target"`
	Check    string    `json:"check"`
	Result   string    `json:"result"`
	Outcome  string    `json:"outcome"`
	Class    string    `json:"class,omitempty"`
	KMSError string    `json:"kms_error,omitempty"`
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
// otherwise one inconclusive check makes it INCONCLUSIVE; DESTROYED needs
// every deciding check to prove destruction; anything else is REVOKED.
func Decide(checks []Check) (verdict, reason string) {
	counts := map[string]int{}
	for _, c := range checks {
		counts[c.Outcome]++
	}
	deciding := counts[OutDestroyed] + counts[OutRevoked] + counts[OutAccessible] + counts[OutInconclusive]
	switch {
	case counts[OutAccessible] > 0:
		return Accessible, fmt.Sprintf("%d check(s) still reached key material", counts[OutAccessible])
	case counts[OutInconclusive] > 0:
		return Inconclusive, fmt.Sprintf("%d check(s) were stopped by transient errors; a transient error is never proof", counts[OutInconclusive])
	case deciding == 0:
		return Inconclusive, "no check could decide"
	case counts[OutDestroyed] == deciding:
		return Destroyed, fmt.Sprintf("all %d deciding checks prove the key material is gone", deciding)
	}
	return Revoked, fmt.Sprintf("nothing could be unwrapped, but %d check(s) show the key could come back", counts[OutRevoked])
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

// DescribeCheck asks the KMS for a key's state and judges it: destroyed and
// not recoverable proves destruction; anything else does not.
func DescribeCheck(ctx context.Context, key provider.Key, target string, now func() time.Time) Check {
	st, err := key.Describe(ctx)
	if err != nil {
		return ErrorCheck(target, "describe CMEK key", err, now().UTC())
	}
	c := Check{Target: target, Check: "describe CMEK key", At: now().UTC(), Result: "KMS says " + string(st.State)}
	switch {
	case (st.State == provider.StateDestroyed || st.State == provider.StateNotFound) && !st.Recoverable:
		c.Outcome = OutDestroyed
	case st.Recoverable:
		c.Outcome = OutRevoked
		c.Result += "; recoverable: " + st.RecoverableReason
	case st.State == provider.StatePendingDeletion:
		c.Outcome = OutRevoked
		c.Result += " (deletion on " + st.DeletionDate.UTC().Format(time.RFC3339) + ")"
	default:
		c.Outcome = OutRevoked
	}
	return c
}

// UnwrapCheck tries a real unwrap; success is ACCESSIBLE (the plaintext is
// wiped at once).
func UnwrapCheck(ctx context.Context, key provider.Key, w provider.Wrapped, aad []byte, target, check string, now func() time.Time) Check {
	pt, err := key.Unwrap(ctx, w, aad)
	if err != nil {
		return ErrorCheck(target, check, err, now().UTC())
	}
	clear(pt)
	return Check{Target: target, Check: check, Result: "UNWRAPPED: the key still works", Outcome: OutAccessible, At: now().UTC()}
}
