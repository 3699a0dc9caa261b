package commands

// Regression tests for issue 15: files cmekctl reads (backup headers, escrow
// files) are attacker-controlled and must never name a KMS. Each forged file
// points at a loopback listener that must see no connection; on the code
// before the fix, each of them was dialled with the operator's credentials.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/backup"
	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// trap is a loopback listener that counts the connections it accepts and
// closes them at once.
type trap struct {
	addr  string
	conns atomic.Int64
}

func newTrap(t *testing.T) *trap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.conns.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return tr
}

// forgedURIs are the KMS URIs an attacker writes into a file: each sends the
// operator's credentials (VAULT_TOKEN, signed AWS requests) to the trap.
func (tr *trap) forgedURIs() map[string]string {
	return map[string]string{
		"vault": "vault-transit://" + tr.addr + "/transit/keys/k?tls=false",
		"aws":   "aws-kms:///arn:aws:kms:us-east-1:000000000000:key/forged?AUTH=implicit&REGION=us-east-1&AWS_ENDPOINT=http://" + tr.addr,
	}
}

func (tr *trap) mustBeUntouched(t *testing.T) {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // let a late dial land
	if n := tr.conns.Load(); n != 0 {
		t.Fatalf("the KMS named by a forged file saw %d connection(s): cmekctl dialled a URI it read from a file", n)
	}
}

// hostileEnv is a cluster of file-kms keyrings run through Main, with the
// operator's credentials in the environment.
type hostileEnv struct {
	dir   string
	state string
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	// Credentials a forged URI would steal.
	t.Setenv("VAULT_TOKEN", "operator-token-must-not-leave")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
	t.Setenv("HOME", t.TempDir())
	e := &hostileEnv{dir: t.TempDir(), state: t.TempDir()}
	if err := os.Mkdir(filepath.Join(e.dir, "kms"), 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *hostileEnv) path(p string) string { return filepath.Join(e.dir, p) }

func (e *hostileEnv) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	f := &Factory{IO: ios, Registry: registry.Default, Now: time.Now, Getenv: func(k string) string {
		if k == "XDG_STATE_HOME" {
			return e.state
		}
		return ""
	}}
	code := Main(f, args)
	return code, out.String(), errOut.String()
}

func (e *hostileEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := e.run(t, args...)
	if code != 0 {
		t.Fatalf("cmekctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// enable makes region's keyring (one node) under a new file-kms key.
func (e *hostileEnv) enable(t *testing.T, region string) (kr, uri string) {
	t.Helper()
	uri = "file-kms://" + e.path("kms/"+region)
	e.ok(t, "kms", "create", uri)
	kr = e.path("kr-" + region)
	e.ok(t, "enable", "--cluster-id", "c1", "--region", region, "--cmek", uri, "--keyring", kr, "--node", region+"-1")
	return kr, uri
}

// forgeBackup writes a backup of cluster c1 under a key the keyrings do not
// hold, whose header wraps it for region under uri.
func forgeBackup(t *testing.T, path, region, uri string) {
	t.Helper()
	key := make([]byte, stream.KeySize)
	wrapped := make([]byte, 60)
	_, _ = rand.Read(key)
	_, _ = rand.Read(wrapped)
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, backup.Header{ClusterID: "c1", BackupKeyID: "forged0000000000forged0000000000", Kind: backup.KindFull,
		Wraps: []backup.RegionWrap{{Region: region, CMEKURI: uri, KeyVersion: "1", Wrapped: wrapped}}}, key, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("forged rows\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestForgedBackupHeaderNamesNoKMS(t *testing.T) {
	e := newHostileEnv(t)
	kr, _ := e.enable(t, "east")
	for _, name := range []string{"vault", "aws"} {
		t.Run(name, func(t *testing.T) {
			tr := newTrap(t)
			uri := tr.forgedURIs()[name]
			in, out := e.path("forged-"+name+".cmek"), e.path("restored-"+name)
			forgeBackup(t, in, "east", uri)
			code, _, errOut := e.run(t, "backup", "decrypt", "--keyring", kr, in, out)
			tr.mustBeUntouched(t)
			if code != ExitForeign {
				t.Fatalf("backup decrypt of a forged header: exit %d, want %d (foreign)\n%s", code, ExitForeign, errOut)
			}
			if !strings.Contains(errOut, "refusing to dial a KMS named by a file") || !strings.Contains(errOut, "cmekctl: hint:") {
				t.Errorf("the refusal does not say why and what to do:\n%s", errOut)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
				t.Errorf("want one error line and one hint line, got:\n%s", errOut)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a refused restore left %s behind", out)
			}
		})
	}
}

func TestForgedEscrowNamesNoKMS(t *testing.T) {
	e := newHostileEnv(t)
	east, _ := e.enable(t, "east")
	tr := newTrap(t)
	forged := tr.forgedURIs()
	wrapped := make([]byte, 60)
	_, _ = rand.Read(wrapped)
	now := time.Now().UTC()

	// A wrap for a region these keyrings have, under a key they do not know.
	esc := backup.Escrow{ClusterID: "c1", Keys: []backup.EscrowKey{{ID: "k1forged", Created: now,
		Wraps: []backup.RegionWrap{{Region: "east", CMEKURI: forged["vault"], KeyVersion: "1", Wrapped: wrapped}}}}}
	// A wrap for a region the cluster does not have.
	esc2 := backup.Escrow{ClusterID: "c1", Keys: []backup.EscrowKey{{ID: "k2forged", Created: now,
		Wraps: []backup.RegionWrap{{Region: "mars", CMEKURI: forged["aws"], KeyVersion: "1", Wrapped: wrapped}}}}}
	for i, es := range []backup.Escrow{esc, esc2} {
		data, err := es.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := e.path("escrow" + string(rune('0'+i)) + ".json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := e.run(t, "backup-keys", "import", "--keyring", east, path)
		if code == 0 {
			t.Errorf("import of %s (a wrap under a KMS the keyrings do not know) succeeded:\n%s", path, errOut)
		}
		if !strings.Contains(errOut, "cmekctl: hint:") {
			t.Errorf("import refusal without a hint:\n%s", errOut)
		}
	}
	// Nothing the escrow files named is recorded, and no verb that reads
	// the keyrings' backup keys dials it.
	kj, err := os.ReadFile(filepath.Join(east, "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(kj, []byte(tr.addr)) || bytes.Contains(kj, []byte("forged")) {
		t.Fatalf("the keyring recorded a forged escrow entry:\n%s", kj)
	}
	for _, args := range [][]string{
		{"backup-keys", "verify", "--keyring", east, "--all-regions"},
		{"backup-keys", "list", "--keyring", east},
		{"verify-destroyed", "--keyring", east},
		{"status", "--keyring", east},
	} {
		e.run(t, args...)
	}
	tr.mustBeUntouched(t)
}

// A genuine escrow file still imports: its wraps under keys the keyrings
// know are recorded with the keyrings' URIs, and other regions' wraps are
// left out with a note.
func TestEscrowImportKnownKeys(t *testing.T) {
	e := newHostileEnv(t)
	east, _ := e.enable(t, "east")
	west, _ := e.enable(t, "west")
	e.ok(t, "backup-keys", "create", "--keyring", east, "--keyring", west)
	esc := e.path("escrow.json")
	e.ok(t, "backup-keys", "export", "--keyring", east, "--keyring", west, "--out", esc)

	east2 := e.path("kr-east-2")
	e.ok(t, "enable", "--cluster-id", "c1", "--region", "east", "--cmek", "file-kms://"+e.path("kms/east"), "--keyring", east2, "--node", "east-2")
	code, out, errOut := e.run(t, "backup-keys", "import", "--keyring", east2, esc, "-o", "json")
	if code != 0 {
		t.Fatalf("import of a genuine escrow: exit %d\n%s%s", code, out, errOut)
	}
	var rep struct{ Imported int }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Imported != 1 {
		t.Fatalf("imported %d (%v), want 1:\n%s", rep.Imported, err, out)
	}
	if !strings.Contains(errOut, "region west's wraps not imported") {
		t.Errorf("no note that region west's wraps were left out:\n%s", errOut)
	}
	e.ok(t, "backup-keys", "verify", "--keyring", east2, "--all-regions")
}

// tamperCMEKURI rewrites the CMEK URI a keyring records for its store key.
func tamperCMEKURI(t *testing.T, kr, uri string) {
	t.Helper()
	path := filepath.Join(kr, "keyring.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["store_wrap"].(map[string]any)["cmek_uri"] = uri
	b, err = json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A keyring whose recorded CMEK URI was changed to another endpoint is not
// followed there: the operator must name the endpoint (--kms-endpoint), and
// plaintext outside loopback needs --insecure-kms as well.
func TestTamperedKeyringEndpointRefused(t *testing.T) {
	e := newHostileEnv(t)
	kr, _ := e.enable(t, "east")
	const host = "kms.attacker.invalid:8200"
	tamperCMEKURI(t, kr, "vault-transit://"+host+"/transit/keys/k")
	for _, args := range [][]string{
		{"rotate", "store-key", "--keyring", kr},
		{"unlock", "--keyring", kr, "--out", filepath.Join(t.TempDir(), "run"), "--allow-disk", "--store-path", "*"},
		{"backup-keys", "create", "--keyring", kr},
	} {
		code, _, errOut := e.run(t, args...)
		if code != ExitUsage || !strings.Contains(errOut, "endpoint "+host+" is named by a recorded CMEK URI, not by you: refusing to send credentials there") {
			t.Errorf("cmekctl %s on a keyring pointing at %s: exit %d, want %d and the refusal:\n%s", args[0], host, code, ExitUsage, errOut)
		}
		if !strings.Contains(errOut, "cmekctl: hint: if "+host+" is your KMS, allow it: --kms-endpoint") {
			t.Errorf("no hint on how to allow it:\n%s", errOut)
		}
	}
	// Allowed as an endpoint, but in clear: still refused without --insecure-kms.
	tamperCMEKURI(t, kr, "vault-transit://"+host+"/transit/keys/k?tls=false")
	code, _, errOut := e.run(t, "rotate", "store-key", "--keyring", kr, "--kms-endpoint", "kms.attacker.invalid")
	if code != ExitUsage || !strings.Contains(errOut, "plaintext transport to "+host+" refused") {
		t.Errorf("plaintext to an allowed endpoint: exit %d\n%s", code, errOut)
	}
	// The operator's own URI on the command line: plaintext is refused too.
	code, _, errOut = e.run(t, "kms", "describe", "vault-transit://"+host+"/transit/keys/k?tls=false")
	if code != ExitUsage || !strings.Contains(errOut, "pass --insecure-kms on the command line") {
		t.Errorf("kms describe over plaintext: exit %d\n%s", code, errOut)
	}
}

func TestKMSTrustCheck(t *testing.T) {
	vaultAt := func(h string) string { return "vault-transit://" + h + "/transit/keys/k" }
	aws := func(ep string) string { return "aws-kms:///alias/k?REGION=us-east-1&AWS_ENDPOINT=" + ep }
	env := func(k string) string { return map[string]string{"VAULT_ADDR": "http://vault.corp.example:8200"}[k] }
	cases := []struct {
		name  string
		trust kmsTrust
		uri   string
		ok    bool
	}{
		{"provider default", kmsTrust{}, "aws-kms:///alias/k?REGION=us-east-1", true},
		{"file-kms", kmsTrust{}, "file-kms:///tmp/k", true},
		{"loopback endpoint", kmsTrust{}, aws("http://127.0.0.1:4566"), true},
		{"loopback vault in clear", kmsTrust{}, vaultAt("localhost:8200") + "?tls=false", true},
		{"recorded endpoint", kmsTrust{}, aws("https://kms.evil.example"), false},
		{"allowed host", kmsTrust{allowed: []string{"kms.corp.example"}}, aws("https://kms.corp.example:443"), true},
		{"allowed host:port", kmsTrust{allowed: []string{"vault.corp.example:8200"}}, vaultAt("vault.corp.example:8200"), true},
		{"other port", kmsTrust{allowed: []string{"vault.corp.example:8200"}}, vaultAt("vault.corp.example:8201"), false},
		{"operator's URI", kmsTrust{operator: map[string]bool{provider.Identity(vaultAt("vault.corp.example:8200")): true}}, vaultAt("vault.corp.example:8200"), true},
		{"http endpoint", kmsTrust{allowed: []string{"kms.corp.example"}}, aws("http://kms.corp.example"), false},
		{"http endpoint, --insecure-kms", kmsTrust{allowed: []string{"kms.corp.example"}, insecure: true}, aws("http://kms.corp.example"), true},
		{"VAULT_ADDR in clear", kmsTrust{getenv: env}, "vault-transit:///transit/keys/k?tls=false", false},
		{"VAULT_ADDR in clear, --insecure-kms", kmsTrust{getenv: env, insecure: true}, "vault-transit:///transit/keys/k?tls=false", true},
		// Every endpoint a URI names is checked, STS's as KMS's (a fake
		// STS could vouch for the wrong account).
		{"recorded STS endpoint", kmsTrust{}, aws("http://127.0.0.1:4566") + "&AWS_STS_ENDPOINT=https://sts.evil.example", false},
		{"recorded STS endpoint first", kmsTrust{}, aws("https://kms.evil.example") + "&AWS_STS_ENDPOINT=http://127.0.0.1:4567", false},
		{"STS endpoint in clear", kmsTrust{allowed: []string{"kms.corp.example", "sts.corp.example"}}, aws("https://kms.corp.example") + "&AWS_STS_ENDPOINT=http://sts.corp.example", false},
		{"both allowed", kmsTrust{allowed: []string{"kms.corp.example", "sts.corp.example"}}, aws("https://kms.corp.example") + "&AWS_STS_ENDPOINT=https://sts.corp.example", true},
		{"both loopback", kmsTrust{}, aws("http://127.0.0.1:4566") + "&AWS_STS_ENDPOINT=http://127.0.0.1:4567", true},
	}
	for _, c := range cases {
		err := c.trust.check(c.uri)
		if (err == nil) != c.ok {
			t.Errorf("%s: check(%s) = %v, want ok=%v", c.name, c.uri, err, c.ok)
		}
	}
}
