package vaulttransit_test

import (
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/providertest"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

// TestSuite runs the shared provider suite against Vault's own transit
// backend (test/vaultserver) through the official api client.
func TestSuite(t *testing.T) {
	s := startServer(t)
	asKey := func(k provider.Key) *vaulttransit.Key { return k.(*vaulttransit.Key) }
	providertest.Run(t, providertest.Harness{
		NewKey:      func(t *testing.T) provider.Key { return newKey(t, s) },
		CannotProve: "a deleted transit key reads 404 like one that never existed, and transit/restore brings it back",
		Rotate: func(t *testing.T, k provider.Key) provider.Key {
			if _, err := asKey(k).Rotate(ctxT(t)); err != nil {
				t.Fatalf("rotate: %v", err)
			}
			return k
		},
		Destroy: func(t *testing.T, k provider.Key) provider.Key {
			st, err := asKey(k).Destroy(ctxT(t))
			if err != nil || st.State != provider.StateDestroyed {
				t.Fatalf("destroy: %v (state %s)", err, st.State)
			}
			return k
		},
		// A Vault policy that denies transit/decrypt/<name>: the way to
		// revoke a transit key (Vault has no disable).
		DenyAccess: func(t *testing.T, k provider.Key) provider.Key {
			s.Deny(t, "decrypt/"+asKey(k).Name())
			return k
		},
		// Vault's rate-limit quota answers 429 with this text (sdk/logical
		// ErrRateLimitQuotaExceeded), for longer than the retry budget.
		Throttle: func(t *testing.T, k provider.Key) provider.Key {
			s.Fault(t, "", 429, 0, `request path "transit/decrypt/`+asKey(k).Name()+`": rate limit quota exceeded`)
			return k
		},
		Down: func(t *testing.T, k provider.Key) provider.Key {
			cfg := api.DefaultConfig()
			cfg.Address = "http://" + closedAddr(t)
			cfg.MaxRetries = 0
			c, err := api.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.SetToken(s.Token)
			return vaulttransit.New(c, "transit", asKey(k).Name()).WithRetry(fastRetry)
		},
		Covered: map[string]string{
			"Disable":          "TestAdminNoEquivalent/disable (MISUSE: Vault has no disable) and TestErrorTable/too_old_min_decryption_version (REVOKED)",
			"ScheduleDeletion": "TestAdminNoEquivalent/schedule_deletion (MISUSE: Vault has no scheduled deletion)",
		},
	})
}
