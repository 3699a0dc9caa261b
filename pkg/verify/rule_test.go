package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

var allOutcomes = []string{OutDestroyed, OutRevoked, OutAccessible, OutInconclusive, OutPass, "", "bogus"}

// TestDecidePropertyDestroyedOnlyOnProof enumerates every sequence of check
// outcomes up to five checks long: DESTROYED exactly when at least one check
// decides and every deciding check is positive proof; and the weakest check
// wins otherwise.
func TestDecidePropertyDestroyedOnlyOnProof(t *testing.T) {
	var walk func(prefix []Check, depth int)
	n := 0
	walk = func(cs []Check, depth int) {
		n++
		got, reason := Decide(cs)
		var destroyed, deciding, accessible, inconclusive int
		for _, c := range cs {
			switch c.Outcome {
			case OutPass:
			case OutDestroyed:
				destroyed++
				deciding++
			case OutAccessible:
				accessible++
				deciding++
			case OutRevoked:
				deciding++
			default:
				inconclusive++
				deciding++
			}
		}
		want := Revoked
		switch {
		case accessible > 0:
			want = Accessible
		case inconclusive > 0 || deciding == 0:
			want = Inconclusive
		case destroyed == deciding:
			want = Destroyed
		}
		if got != want || reason == "" {
			t.Fatalf("%v: %s (%q), want %s", outcomes(cs), got, reason, want)
		}
		if got == Destroyed && (deciding == 0 || destroyed != deciding) {
			t.Fatalf("%v: DESTROYED without every deciding check being proof", outcomes(cs))
		}
		if depth == 0 {
			return
		}
		for _, o := range allOutcomes {
			walk(append(append([]Check(nil), cs...), Check{Outcome: o}), depth-1)
		}
	}
	walk(nil, 5)
	t.Logf("%d combinations", n)
}

func outcomes(cs []Check) []string {
	var o []string
	for _, c := range cs {
		o = append(o, c.Outcome)
	}
	return o
}

// TestGatePropertyProofNeedsPinnedProof: a failed attempt, whatever its
// class, is proof only when the pinned key is proven destroyed, and a
// transient failure is never proof.
func TestGatePropertyProofNeedsPinnedProof(t *testing.T) {
	for _, class := range []provider.Class{provider.Destroyed, provider.Revoked, provider.Misuse, provider.Transient, provider.ClassNone} {
		for _, proven := range []bool{false, true} {
			err := error(provider.Errorf("p", "unwrap", class, "C", "m"))
			if class == provider.ClassNone {
				err = errors.New("unclassified")
			}
			c := Gate(ErrorCheck("t", "unwrap", err, time.Now()), proven)
			wantDestroyed := proven && class != provider.Transient && class != provider.ClassNone
			if (c.Outcome == OutDestroyed) != wantDestroyed {
				t.Errorf("class %q proven %v: outcome %s", class, proven, c.Outcome)
			}
		}
	}
}

// fakeProver answers Prove as told.
type fakeProver struct {
	proof provider.Proof
	err   error
	state provider.State
}

func (f *fakeProver) URI() string { return "fake://k" }
func (f *fakeProver) Wrap(context.Context, []byte, []byte) (provider.Wrapped, error) {
	return provider.Wrapped{}, nil
}
func (f *fakeProver) Unwrap(context.Context, provider.Wrapped, []byte) ([]byte, error) {
	return nil, provider.Errorf("fake", "unwrap", provider.Destroyed, "Gone", "gone")
}
func (f *fakeProver) Describe(context.Context) (provider.KeyState, error) {
	return provider.KeyState{State: f.state}, f.err
}
func (f *fakeProver) Pin(context.Context, provider.Wrapped) (provider.KeyIdentity, error) {
	return provider.KeyIdentity{"id": "1"}, nil
}
func (f *fakeProver) Prove(context.Context, provider.KeyIdentity) (provider.Proof, error) {
	return f.proof, f.err
}

// TestProveCheckPropertyEveryCombination: over every combination of pin
// present, place mismatch, KMS proof, KMS error class and described state,
// ProveCheck proves destruction only for a pinned identity, asked in its
// own place, that the KMS proved destroyed without error; and the unwrap
// check that follows is proof only then.
func TestProveCheckPropertyEveryCombination(t *testing.T) {
	now := time.Now
	classes := []provider.Class{provider.ClassNone, provider.Destroyed, provider.Revoked, provider.Misuse, provider.Transient}
	states := []provider.State{provider.StateDestroyed, provider.StateNotFound, provider.StateEnabled, provider.StatePendingDeletion}
	for _, pinned := range []bool{false, true} {
		for _, mismatch := range []string{"", "region is \"b\", pinned \"a\""} {
			for _, destroyed := range []bool{false, true} {
				for _, class := range classes {
					for _, st := range states {
						f := &fakeProver{proof: provider.Proof{Destroyed: destroyed, Mismatch: mismatch, State: provider.KeyState{State: st}}, state: st}
						if class != provider.ClassNone {
							f.err = provider.Errorf("fake", "prove", class, "C", "m")
						}
						var pin provider.KeyIdentity
						if pinned {
							pin = provider.KeyIdentity{"id": "1"}
						}
						name := fmt.Sprintf("pinned=%v mismatch=%q destroyed=%v class=%q state=%s", pinned, mismatch, destroyed, class, st)
						c, ok := ProveCheck(context.Background(), f, pin, "k", now)
						want := pinned && mismatch == "" && destroyed && class == provider.ClassNone
						if ok != want || (c.Outcome == OutDestroyed) != want {
							t.Errorf("%s: proven %v outcome %s (%s), want proven %v", name, ok, c.Outcome, c.Result, want)
						}
						if pinned && mismatch != "" && class == provider.ClassNone && c.Outcome != OutInconclusive {
							t.Errorf("%s: a place mismatch is %s, want inconclusive", name, c.Outcome)
						}
						u := UnwrapCheck(context.Background(), f, provider.Wrapped{}, nil, "w", "unwrap", ok, now)
						if (u.Outcome == OutDestroyed) != want {
							t.Errorf("%s: unwrap outcome %s", name, u.Outcome)
						}
						verdict, _ := Decide([]Check{c, u})
						if (verdict == Destroyed) != want {
							t.Errorf("%s: verdict %s", name, verdict)
						}
					}
				}
			}
		}
	}
}

// TestDescribeCheckNotFoundIsNeverProof: a KMS that says NOT_FOUND (the
// answer of a KMS asked in the wrong place) is never proof.
func TestDescribeCheckNotFoundIsNeverProof(t *testing.T) {
	for _, st := range []provider.State{provider.StateNotFound, provider.StateUnknown, provider.StatePendingDeletion, provider.StateDisabled} {
		c := DescribeCheck(context.Background(), &fakeProver{state: st}, "k", time.Now)
		if c.Outcome == OutDestroyed {
			t.Errorf("%s: %s", st, c.Outcome)
		}
	}
}

// A pending deletion without a date says so, instead of printing the zero
// time (0001-01-01T00:00:00Z) as if it were one.
func TestDescribeCheckPendingDeletionWithoutDate(t *testing.T) {
	c := DescribeCheck(context.Background(), &fakeProver{state: provider.StatePendingDeletion}, "k", time.Now)
	if strings.Contains(c.Result, "0001-01-01") || !strings.Contains(c.Result, "no deletion date") {
		t.Errorf("result %q", c.Result)
	}
}
