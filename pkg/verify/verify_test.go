package verify

import (
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

func TestDecideWeakestCheckWins(t *testing.T) {
	c := func(outs ...string) []Check {
		var cs []Check
		for _, o := range outs {
			cs = append(cs, Check{Outcome: o})
		}
		return cs
	}
	cases := []struct {
		checks []Check
		want   string
	}{
		{c(OutDestroyed, OutDestroyed, OutPass), Destroyed},
		{c(OutDestroyed, OutRevoked), Revoked},
		{c(OutDestroyed, OutInconclusive, OutRevoked), Inconclusive},
		{c(OutDestroyed, OutInconclusive, OutAccessible), Accessible},
		{c(OutPass), Inconclusive},
		{nil, Inconclusive},
	}
	for _, tc := range cases {
		if got, _ := Decide(tc.checks); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.checks, got, tc.want)
		}
	}
}

func TestErrorCheckNeverTreatsTransientAsProof(t *testing.T) {
	now := time.Now()
	for class, want := range map[provider.Class]string{
		provider.Destroyed: OutDestroyed,
		provider.Revoked:   OutRevoked,
		provider.Misuse:    OutRevoked,
		provider.Transient: OutInconclusive,
	} {
		err := provider.Errorf("test", "unwrap", class, "Code", "msg")
		if got := ErrorCheck("t", "c", err, now); got.Outcome != want || got.KMSError != "Code: msg" {
			t.Errorf("%s: %+v, want outcome %s", class, got, want)
		}
	}
	// An error of unknown origin is transient: never proof.
	if got := ErrorCheck("t", "c", errString("boom"), now); got.Outcome != OutInconclusive {
		t.Errorf("unclassified error: %s", got.Outcome)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
