package vaulttransit_test

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/vaulttransit"
)

var testAAD = provider.Binding{"cluster": "c1", "region": "r1", "key_id": "sk1", "purpose": "store-key", "format": "1"}.AAD()

// expectErr checks an error's class, HTTP status code and Vault text, and
// that it never carries the token.
func expectErr(t *testing.T, s *vaultServer, err error, class provider.Class, code, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", class)
	}
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %q is not a *provider.Error", err)
	}
	if got := provider.Classify(err); got != class {
		t.Fatalf("error %q: class %s, want %s", err, got, class)
	}
	if pe.Code != code {
		t.Fatalf("error %q: code %q, want %q", err, pe.Code, code)
	}
	if !strings.Contains(pe.Message, text) && !strings.Contains(err.Error(), text) {
		t.Fatalf("error %q: want text %q", err, text)
	}
	if pe.Provider != "vault transit" || !strings.HasPrefix(err.Error(), "vault transit: ") {
		t.Fatalf("error %q does not start with the provider name", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q spans lines", err)
	}
	if s != nil && strings.Contains(err.Error(), s.Token) {
		t.Fatalf("error %q holds the token", err)
	}
}

func wrapOrFatal(t *testing.T, k provider.Key, aad []byte) provider.Wrapped {
	t.Helper()
	w, err := k.Wrap(ctxT(t), []byte("0123456789abcdef0123456789abcdef"), aad)
	if err != nil {
		t.Fatalf("wrap: %v", err)
	}
	return w
}

// TestErrorTable drives every row of vaulttransit.Table. Rows marked "real"
// come from Vault's own transit backend; the others are fault hooks of
// test/vaultserver that answer with the status and text Vault uses (the
// sources are in docs/providers/vault.md).
func TestErrorTable(t *testing.T) {
	s := startServer(t)
	c := s.Client(t)

	t.Run("key_not_found_and_read_404_is_revoked", func(t *testing.T) { // real: never proof
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		if _, err := k.Destroy(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		s.ResetCounts(t)
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Revoked, "400", "encryption key not found")
		// The second call tells REVOKED from TRANSIENT: one read of the key.
		got := s.Counts(t)
		if got["PUT decrypt/"+k.Name()] != 1 || got["GET keys/"+k.Name()] != 1 {
			t.Fatalf("calls %v: want one decrypt and one read of keys/%s", got, k.Name())
		}
	})
	t.Run("key_not_found_but_key_reads_is_revoked", func(t *testing.T) { // fault: the key exists
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		s.Fault(t, "decrypt/"+k.Name(), 400, 0, "encryption key not found")
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Revoked, "400", "encryption key not found")
	})
	t.Run("key_not_found_and_read_denied_is_revoked", func(t *testing.T) { // real
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		if _, err := k.Destroy(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		s.Deny(t, "keys/")
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Revoked, "400", "encryption key not found")
	})
	t.Run("key_not_found_and_read_sealed_is_transient", func(t *testing.T) { // real + fault on the read
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		if _, err := k.Destroy(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		s.Fault(t, "keys/", 503, 0, "Vault is sealed")
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Transient, "400", "encryption key not found")
	})
	t.Run("wrap_under_disable_upsert_after_delete_is_revoked", func(t *testing.T) { // real
		k := newKey(t, s)
		if _, err := k.Destroy(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		logical(t, c, "transit/config/keys", map[string]any{"disable_upsert": true})
		t.Cleanup(func() { logical(t, c, "transit/config/keys", map[string]any{"disable_upsert": false}) })
		_, err := k.Wrap(ctxT(t), []byte("x"), testAAD)
		expectErr(t, s, err, provider.Revoked, "400", "encryption key not found")
	})
	t.Run("rotate_key_not_found_is_revoked", func(t *testing.T) { // real
		k := newKey(t, s)
		if _, err := k.Destroy(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		_, err := k.Rotate(ctxT(t))
		expectErr(t, s, err, provider.Revoked, "400", "key not found")
	})
	t.Run("permission_denied_by_policy_is_revoked", func(t *testing.T) { // server's policy hook, Vault's text
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		s.Deny(t, "decrypt/"+k.Name())
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Revoked, "403", "permission denied")
	})
	t.Run("permission_denied_bad_token_is_revoked", func(t *testing.T) {
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		c2 := s.Client(t)
		c2.SetToken("hvs.not-the-token")
		_, err := vaulttransit.New(c2, "transit", k.Name()).WithRetry(fastRetry).Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Revoked, "403", "permission denied")
		if strings.Contains(err.Error(), "hvs.not-the-token") {
			t.Fatalf("error %q holds the token", err)
		}
	})
	t.Run("too_old_min_decryption_version_is_revoked", func(t *testing.T) { // real
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		if _, err := k.Rotate(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		logical(t, c, "transit/keys/"+k.Name()+"/config", map[string]any{"min_decryption_version": 2})
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Revoked, "400", "disallowed by policy (too old)")
		st, err := k.Describe(ctxT(t))
		if err != nil || len(st.Versions) != 2 || st.Versions[0].State != provider.StateDisabled || st.Versions[1].State != provider.StateEnabled {
			t.Fatalf("describe: %v %+v: want v1 DISABLED, v2 ENABLED", err, st.Versions)
		}
		// Reversible: lowering min_decryption_version gives the key back.
		logical(t, c, "transit/keys/"+k.Name()+"/config", map[string]any{"min_decryption_version": 1})
		if _, err := k.Unwrap(ctxT(t), w, testAAD); err != nil {
			t.Fatalf("unwrap after lowering min_decryption_version: %v", err)
		}
	})
	t.Run("too_old_and_trimmed_is_destroyed", func(t *testing.T) { // real
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		if _, err := k.Rotate(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		logical(t, c, "transit/keys/"+k.Name()+"/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 2})
		logical(t, c, "transit/keys/"+k.Name()+"/trim", map[string]any{"min_available_version": 2})
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Destroyed, "400", "disallowed by policy (too old)")
		st, err := k.Describe(ctxT(t))
		if err != nil || len(st.Versions) != 2 || st.Versions[0].State != provider.StateDestroyed || st.Versions[1].State != provider.StateEnabled {
			t.Fatalf("describe: %v %+v: want v1 DESTROYED (trimmed)", err, st.Versions)
		}
	})
	t.Run("message_authentication_failed_is_misuse", func(t *testing.T) { // real
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		other := provider.Binding{"cluster": "c1", "region": "r2"}.AAD()
		s.ResetCounts(t)
		_, err := k.Unwrap(ctxT(t), w, other)
		expectErr(t, s, err, provider.Misuse, "400", "message authentication failed")
		if n := s.Counts(t)["PUT decrypt/"+k.Name()]; n != 1 {
			t.Fatalf("MISUSE was tried %d times, want 1 (never retried)", n)
		}
	})
	t.Run("invalid_ciphertext_is_misuse", func(t *testing.T) { // real
		k := newKey(t, s)
		for _, ct := range []string{"not-vault", "vault:v1:!!!", "vault:vX:AAAA"} {
			_, err := k.Unwrap(ctxT(t), provider.Wrapped{Ciphertext: []byte(ct)}, testAAD)
			expectErr(t, s, err, provider.Misuse, "400", "invalid ciphertext")
		}
		// A ciphertext of a newer version of another key.
		k2 := newKey(t, s)
		for range 2 {
			if _, err := k2.Rotate(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		}
		w := wrapOrFatal(t, k2, testAAD)
		_, err := k.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Misuse, "400", "invalid ciphertext: version is too new")
	})
	t.Run("other_4xx_is_misuse", func(t *testing.T) {
		// real: a derived key needs a context cmekctl never sends.
		k := vaulttransit.New(c, "transit", "derived-"+randHex(t, 4)).WithRetry(fastRetry)
		logical(t, c, "transit/keys/"+k.Name(), map[string]any{"type": "aes256-gcm96", "derived": true})
		_, err := k.Wrap(ctxT(t), []byte("x"), testAAD)
		expectErr(t, s, err, provider.Misuse, "400", "context")
		// a mount that is not there: 404.
		k = vaulttransit.New(c, "nosuch", "k").WithRetry(fastRetry)
		_, err = k.Wrap(ctxT(t), []byte("x"), testAAD)
		expectErr(t, s, err, provider.Misuse, "404", "no handler for route")
	})
	for _, f := range []struct {
		name   string
		status int
		text   string
	}{
		{"perf_standby_412_is_transient", 412, "required index state not present"},
		{"rate_limited_429_is_transient", 429, "rate limit quota exceeded"},
		{"internal_500_is_transient", 500, "internal error"},
		{"multiline_500_is_one_line", 500, "1 error occurred: * storage backend unavailable"},
		{"upstream_502_is_transient", 502, "upstream rate limited"},
		{"sealed_503_is_transient", 503, "Vault is sealed"},
	} {
		t.Run(f.name, func(t *testing.T) { // fault
			k := newKey(t, s)
			w := wrapOrFatal(t, k, testAAD)
			s.ResetCounts(t)
			// Vault's multierror bodies span lines; the error must not.
			s.Fault(t, "decrypt/"+k.Name(), f.status, 0, strings.ReplaceAll(f.text, ": * ", ":\n\t* ")+"\n\n")
			_, err := k.Unwrap(ctxT(t), w, testAAD)
			expectErr(t, s, err, provider.Transient, itoa(f.status), f.text)
			if n := s.Counts(t)["PUT decrypt/"+k.Name()]; n != fastRetry.Attempts {
				t.Fatalf("TRANSIENT was tried %d times, want %d (the retry policy's bound)", n, fastRetry.Attempts)
			}
		})
	}
	t.Run("connection_refused_is_transient", func(t *testing.T) {
		c2 := s.Client(t)
		if err := c2.SetAddress("http://" + closedAddr(t)); err != nil {
			t.Fatal(err)
		}
		_, err := vaulttransit.New(c2, "transit", "k").WithRetry(fastRetry).Wrap(ctxT(t), []byte("x"), testAAD)
		expectErr(t, s, err, provider.Transient, "", "connection refused")
	})
	t.Run("hang_is_transient", func(t *testing.T) {
		k := newKey(t, s)
		w := wrapOrFatal(t, k, testAAD)
		c2 := s.Client(t)
		c2.SetClientTimeout(200 * time.Millisecond)
		hk := vaulttransit.New(c2, "transit", k.Name()).WithRetry(provider.RetryPolicy{Attempts: 2, Base: time.Millisecond, Budget: 5 * time.Second})
		s.ResetCounts(t)
		s.Hang(t, "decrypt/")
		_, err := hk.Unwrap(ctxT(t), w, testAAD)
		expectErr(t, s, err, provider.Transient, "", "")
		if n := s.Counts(t)["PUT decrypt/"+k.Name()]; n != 2 {
			t.Fatalf("hung call was tried %d times, want 2", n)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRetryRecovers: TRANSIENT errors are retried and a later success is
// returned; the server counts every attempt.
func TestRetryRecovers(t *testing.T) {
	s := startServer(t)
	k := newKey(t, s)
	s.ResetCounts(t)
	s.Fault(t, "encrypt/"+k.Name(), 429, 2, "rate limit quota exceeded")
	w, err := k.Wrap(ctxT(t), []byte("0123456789abcdef0123456789abcdef"), testAAD)
	if err != nil {
		t.Fatalf("wrap after two 429s: %v", err)
	}
	if n := s.Counts(t)["PUT encrypt/"+k.Name()]; n != 3 {
		t.Fatalf("encrypt attempts %d, want 3 (two 429s, then success)", n)
	}
	pt, err := k.Unwrap(ctxT(t), w, testAAD)
	if err != nil || !bytes.Equal(pt, []byte("0123456789abcdef0123456789abcdef")) {
		t.Fatalf("unwrap: %v", err)
	}
}

// TestTableRows checks the table's shape: every documented row is there,
// first match wins, and unknown statuses fall where they should.
func TestTableRows(t *testing.T) {
	want := map[string]provider.Class{
		"encryption key not found":       provider.Revoked,
		"disallowed by policy (too old)": provider.Revoked,
		"message authentication failed":  provider.Misuse,
		"invalid ciphertext":             provider.Misuse,
	}
	for text, class := range want {
		found := false
		for _, r := range vaulttransit.Table {
			if r.Contains == text {
				found = true
				if r.Class != class {
					t.Errorf("row %q: class %s, want %s", text, r.Class, class)
				}
			}
		}
		if !found {
			t.Errorf("no row for %q", text)
		}
	}
}

// TestRevokedToken: a token revoked after the wrap makes every call REVOKED
// (403 permission denied), Describe included.
func TestRevokedToken(t *testing.T) {
	s := startServer(t)
	k := newKey(t, s)
	w := wrapOrFatal(t, k, testAAD)
	s.admin(t, "POST", "revoke", nil)
	_, err := k.Unwrap(ctxT(t), w, testAAD)
	expectErr(t, s, err, provider.Revoked, "403", "permission denied")
	_, err = k.Describe(ctxT(t))
	expectErr(t, s, err, provider.Revoked, "403", "permission denied")
}
