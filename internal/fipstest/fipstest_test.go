package fipstest

import (
	"crypto/aes"
	"crypto/cipher"
	"os"
	"strings"
	"testing"
)

// TestChild is what RunOnly's child runs: it checks that the mode is really
// enforced there (cipher.NewGCM with caller nonces is refused).
func TestChild(t *testing.T) {
	if os.Getenv("FIPSTEST_CHILD") == "" {
		t.Skip("run by TestRunOnly")
	}
	if !Enforced() {
		t.Fatal("the child does not enforce fips140=only")
	}
	b, _ := aes.NewCipher(make([]byte, 32))
	if _, err := cipher.NewGCM(b); err == nil {
		t.Fatal("cipher.NewGCM was allowed in the child")
	}
}

func TestRunOnly(t *testing.T) {
	t.Setenv("FIPSTEST_CHILD", "1")
	RunOnly(t, "^TestChild$")
}

func TestServerEnv(t *testing.T) {
	got := ServerEnv([]string{"A=1", "GODEBUG=http2debug=1,fips140=only", "B=2"})
	want := []string{"A=1", "GODEBUG=http2debug=1", "B=2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ServerEnv = %q, want %q", got, want)
	}
	got = ServerEnv([]string{"GODEBUG=fips140=only", "C=3"})
	if strings.Join(got, " ") != "C=3" {
		t.Fatalf("ServerEnv dropped nothing: %q", got)
	}
}
