//go:build linux

package commands

// Keyring trust (rule 19 of docs/threat-model.md): with a cluster config in
// use, a keyring whose recorded CMEK URI was changed to another key, at an
// endpoint the endpoint checks allow, is refused before any KMS call. On the
// code before it, each of these verbs dialled the swapped key.

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeClusterConfig writes a config (mode 0600) of cluster c1 whose region
// east has key cmek and the node east-1 at kr; extra goes into the region,
// more (other regions) after it.
func writeClusterConfig(t *testing.T, e *hostileEnv, cmek, kr, extra string, more ...string) string {
	t.Helper()
	cfg := e.path("cluster.yaml")
	body := "# the operator's cluster\ncluster_id: c1\nregions:\n  - name: east\n    cmek: " + cmek + "\n" + extra +
		"    nodes:\n      - {name: east-1, keyring: " + kr + "}\n" + strings.Join(more, "")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// refusedVerbs are the verbs that dial a keyring's recorded keys.
func refusedVerbs(cfg, kr string) [][]string {
	return [][]string{
		{"backup-keys", "create", "--config", cfg},
		{"rotate", "store-key", "--config", cfg},
		{"unlock", "--config", cfg, "--keyring", kr, "--out", filepath.Join(os.TempDir(), "never"), "--allow-disk", "--store-path", "*"},
		{"status", "--config", cfg},
		{"verify-destroyed", "--config", cfg},
	}
}

func expectKeyringRefused(t *testing.T, e *hostileEnv, args []string, kr, swapped, configKey string) {
	t.Helper()
	code, _, errOut := e.run(t, args...)
	if code != ExitForeign {
		t.Errorf("cmekctl %s on a keyring swapped to %s: exit %d, want %d (foreign)\n%s", strings.Join(args[:2], " "), swapped, code, ExitForeign, errOut)
		return
	}
	want := "keyring " + kr + " records CMEK key " + redact(swapped) + " for region east, but config file "
	if !strings.Contains(errOut, want) || !strings.Contains(errOut, " names "+configKey+": refusing to dial a key the config does not name") {
		t.Errorf("the refusal does not name the keyring, the recorded key and the config's key:\n%s", errOut)
	}
	if !strings.Contains(errOut, "cmekctl: hint: if "+redact(swapped)+" is your key") || strings.Count(strings.TrimSpace(errOut), "\n") != 1 {
		t.Errorf("want one error line and one hint line, got:\n%s", errOut)
	}
}

func TestSwappedKeyringKeyRefusedByConfig(t *testing.T) {
	e := newHostileEnv(t)
	kr, uri := e.enable(t, "east")
	cfg := writeClusterConfig(t, e, uri, kr, "")
	e.ok(t, "status", "--config", cfg) // the genuine keyring is accepted
	before, err := os.ReadFile(filepath.Join(kr, "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("aws-kms at a loopback endpoint", func(t *testing.T) {
		tr := newTrap(t)
		swapped := tr.forgedURIs()["aws"] // loopback: the endpoint checks let it through
		tamperCMEKURI(t, kr, swapped)
		for _, args := range refusedVerbs(cfg, kr) {
			expectKeyringRefused(t, e, args, kr, swapped, uri)
		}
		tr.mustBeUntouched(t)
	})

	t.Run("another file-kms key", func(t *testing.T) {
		other := "file-kms://" + e.path("kms/other")
		e.ok(t, "kms", "create", other)
		keyFile := e.path("kms/other.key.json")
		// Reading a file whose atime is older than its mtime sets its atime
		// (relatime): a read of the swapped key would show there.
		old := time.Now().Add(-time.Hour)
		setAtime := func(p string) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, old, fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}
		atime := func(p string) time.Time {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			return time.Unix(st.Atim.Sec, st.Atim.Nsec)
		}
		probe := e.path("kms/probe")
		if err := os.WriteFile(probe, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		setAtime(probe)
		_, _ = os.ReadFile(probe)
		atimeWorks := atime(probe).After(old.Add(time.Minute))
		tamperCMEKURI(t, kr, other)
		setAtime(keyFile)
		for _, args := range refusedVerbs(cfg, kr) {
			expectKeyringRefused(t, e, args, kr, other, uri)
		}
		if !atimeWorks {
			t.Logf("this filesystem does not update atime on read: the refusals are checked, not the key file's atime")
		} else if a := atime(keyFile); a.After(old.Add(time.Minute)) {
			t.Errorf("the swapped key's file %s was read (atime %v): cmekctl used a key the config does not name", keyFile, a)
		}
	})

	// Put back, the keyring is accepted again; nothing was changed by the refusals.
	if err := os.WriteFile(filepath.Join(kr, "keyring.json"), before, 0o600); err != nil {
		t.Fatal(err)
	}
	e.ok(t, "backup-keys", "create", "--config", cfg)
}

// TestRotateCMEKUpdatesConfig: rotate cmek --cmek with a cluster config
// moves the region's cmek to the new key and keeps the old one in
// previous_cmek (comments kept), so the keyring's history stays trusted and
// every verb goes on; a config without previous_cmek refuses the history
// key, and the hint's fix (previous_cmek) makes it trusted.
func TestRotateCMEKUpdatesConfig(t *testing.T) {
	e := newHostileEnv(t)
	kr, uri := e.enable(t, "east")
	cfg := writeClusterConfig(t, e, uri, kr, "")
	next := "file-kms://" + e.path("kms/east2")
	e.ok(t, "kms", "create", next)
	e.ok(t, "rotate", "cmek", "--config", cfg, "--cmek", next)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "    cmek: " + next + "\n    previous_cmek:\n      - " + uri + "\n"
	if !strings.Contains(string(b), want) || !strings.Contains(string(b), "# the operator's cluster") {
		t.Fatalf("config after rotate cmek lacks %q (or its comment):\n%s", want, b)
	}
	for _, args := range [][]string{{"backup-keys", "create"}, {"status"}, {"rotate", "store-key"}} {
		e.ok(t, append(args, "--config", cfg)...)
	}
	// The old key is in the keyring's history: a config that names only
	// the new key refuses it, before any KMS call.
	cfg = writeClusterConfig(t, e, next, kr, "")
	code, _, errOut := e.run(t, "status", "--config", cfg)
	if code != ExitForeign || !strings.Contains(errOut, "records CMEK key "+uri+" for region east") || !strings.Contains(errOut, "add it to previous_cmek:") {
		t.Fatalf("history key not in the config: exit %d\n%s", code, errOut)
	}
	cfg = writeClusterConfig(t, e, next, kr, "    previous_cmek: ["+uri+"]\n")
	e.ok(t, "status", "--config", cfg)
}

// TestKeyringOutsideConfigRefused: with a config in use, a keyring of a
// region or a cluster the config does not describe names keys nothing vouches for.
func TestKeyringOutsideConfigRefused(t *testing.T) {
	e := newHostileEnv(t)
	kr, uri := e.enable(t, "east")
	wkr, wuri := e.enable(t, "west")
	cfg := writeClusterConfig(t, e, uri, kr, "")
	code, _, errOut := e.run(t, "backup-keys", "create", "--config", cfg, "--keyring", wkr)
	if code != ExitForeign || !strings.Contains(errOut, "for region west, which config file "+cfg+" does not list") {
		t.Errorf("a keyring of a region the config lacks: exit %d\n%s", code, errOut)
	}
	other := e.path("cluster2.yaml")
	if err := os.WriteFile(other, []byte("cluster_id: c2\nregions:\n  - {name: east, cmek: \""+uri+"\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = e.run(t, "backup-keys", "create", "--config", other, "--keyring", kr)
	if code != ExitForeign || !strings.Contains(errOut, `is of cluster "c1", and config file `+other+` describes cluster "c2"`) {
		t.Errorf("a keyring of another cluster: exit %d\n%s", code, errOut)
	}
	// Another region's key of the config is not this region's.
	both := writeClusterConfig(t, e, uri, kr, "", "  - name: west\n    cmek: "+wuri+"\n    nodes: [{name: west-1, keyring: "+wkr+"}]\n")
	e.ok(t, "status", "--config", both)
	tamperCMEKURI(t, kr, wuri)
	code, _, errOut = e.run(t, "status", "--config", both)
	if code != ExitForeign || !strings.Contains(errOut, "records CMEK key "+wuri+" for region east, but config file "+both+" names "+uri) {
		t.Errorf("east's keyring naming west's key: exit %d\n%s", code, errOut)
	}
}
