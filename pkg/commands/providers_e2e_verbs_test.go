package commands

// TestProvidersE2E's core verbs, run against every provider.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/awskms/awskmstest"
)

func testVerbs(t *testing.T, start func(*testing.T) *e2eWorld, figs *e2eFigures) {
	w := start(t)
	p := w.name

	if p == "file" {
		// A key directory others can read is refused as a permissions problem.
		open := filepath.Join(t.TempDir(), "kms")
		if err := os.Mkdir(open, 0o755); err != nil {
			t.Fatal(err)
		}
		r := w.run(t, "kms", "create", "file-kms://"+filepath.Join(open, "k1"))
		if r.code != ExitPermissions || strings.Contains(r.errOut, "did not authenticate") {
			t.Errorf("file kms create in a 0755 directory: exit %d, %q; want exit %d", r.code, r.errOut, ExitPermissions)
		}
	}

	// kms create / describe.
	curi := w.createURI(t)
	r := w.run(t, "kms", "create", "-o", "json", curi)
	var created provider.KeyState
	if r.code != 0 || json.Unmarshal([]byte(r.out), &created) != nil || created.State != provider.StateEnabled {
		t.Fatalf("%s kms create: exit %d, %s %s", p, r.code, r.out, r.errOut)
	}
	figs.add("kms create", p, r, nil)
	var desc provider.KeyState
	r = w.ok(t, &desc, "kms", "describe", "-o", "json", curi)
	if desc.State != provider.StateEnabled || desc.PrimaryVersion != created.PrimaryVersion {
		t.Fatalf("%s kms describe: %+v, want enabled with primary %s", p, desc, created.PrimaryVersion)
	}
	figs.add("kms describe", p, r, nil)
	uri := curi
	if p == "aws" {
		// The alias named the new key; the cluster uses its ARN.
		arn := created.Details["arn"]
		if arn == "" {
			t.Fatalf("aws kms create: no arn in %+v", created.Details)
		}
		uri = strings.Replace(curi, strings.SplitN(strings.TrimPrefix(curi, "aws-kms:///"), "?", 2)[0], arn, 1)
	}

	if p == "aws" {
		// A URI with credentials works for a KMS verb, never printing them,
		// but a keyring must not record it: enable refuses, writing nothing.
		// On the command line it is refused (secrets never on argv); from
		// --cmek-file it works.
		spec := w.specifiedURI(t, strings.SplitN(strings.TrimPrefix(uri, "aws-kms:///"), "?", 2)[0])
		if r := w.run(t, "kms", "describe", "-o", "json", spec); r.code != ExitUsage || strings.Contains(r.out+r.errOut, awskmstest.SecretKey) {
			t.Errorf("aws kms describe with AUTH=specified on argv: exit %d, secret printed: %v; want exit %d", r.code, strings.Contains(r.out+r.errOut, awskmstest.SecretKey), ExitUsage)
		}
		specFile := filepath.Join(t.TempDir(), "uri.txt")
		if err := os.WriteFile(specFile, []byte(spec+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var sd provider.KeyState
		r := w.ok(t, &sd, "kms", "describe", "-o", "json", "--cmek-file", specFile)
		if sd.State != provider.StateEnabled || strings.Contains(r.out+r.errOut, awskmstest.SecretKey) {
			t.Errorf("aws kms describe with AUTH=specified: state %s; secret printed: %v", sd.State, strings.Contains(r.out+r.errOut, awskmstest.SecretKey))
		}
		dir := filepath.Join(t.TempDir(), "n1")
		r = w.run(t, "enable", "--cluster-id", "c-e2e", "--region", "r1", "--cmek-file", specFile, "--keyring", dir, "--node", "n1", "-o", "json")
		if _, err := os.Stat(dir); r.code != ExitUsage || !strings.Contains(r.errOut, "credentials") || strings.Contains(r.errOut, awskmstest.SecretKey) || err == nil {
			t.Errorf("aws enable with AUTH=specified: exit %d, stderr %q, keyring written: %v; want exit %d naming the credentials, nothing written", r.code, r.errOut, err == nil, ExitUsage)
		}
	}

	// enable: 2 nodes, 1 wrap.
	var en enableReport
	dirs := make([]string, 2)
	base := t.TempDir()
	args := []string{"enable", "--cluster-id", "c-e2e", "--region", "r1", "--cmek", uri, "-o", "json"}
	for i := range dirs {
		dirs[i] = filepath.Join(base, fmt.Sprintf("n%d", i+1), "cmek")
		args = append(args, "--keyring", dirs[i], "--node", fmt.Sprintf("n%d", i+1))
	}
	r = w.ok(t, &en, args...)
	if len(en.Nodes) != 2 {
		t.Fatalf("%s enable: %d nodes", p, len(en.Nodes))
	}
	wantCalls(t, p, "enable", en.KMSCalls, 1, 0)
	sameCalls(t, p, "enable", en.KMSCalls, r)
	figs.add("enable (2 nodes)", p, r, &en.KMSCalls)
	kr := keyringArgs(dirs...)

	// status.
	var st statusReport
	r = w.ok(t, &st, append([]string{"status", "-o", "json"}, kr...)...)
	if len(st.Nodes) != 2 || len(st.KMS) != 1 || st.KMS[0].State == nil || st.KMS[0].State.State != provider.StateEnabled {
		t.Fatalf("%s status: %s", p, r.out)
	}
	if st.KMSCalls.Describe != 1 {
		t.Errorf("%s status: kms_calls %+v, want 1 describe", p, st.KMSCalls)
	}
	sameCalls(t, p, "status", st.KMSCalls, r)
	figs.add("status", p, r, &st.KMSCalls)
	version0 := st.Nodes[0].CMEKVersion

	// rotate data-key, store-key.
	var rot rotateReport
	r = w.ok(t, &rot, append([]string{"rotate", "data-key", "-o", "json"}, kr...)...)
	wantCalls(t, p, "rotate data-key", rot.KMSCalls, 0, 1)
	sameCalls(t, p, "rotate data-key", rot.KMSCalls, r)
	figs.add("rotate data-key", p, r, &rot.KMSCalls)
	rot = rotateReport{}
	r = w.ok(t, &rot, append([]string{"rotate", "store-key", "-o", "json"}, kr...)...)
	wantCalls(t, p, "rotate store-key", rot.KMSCalls, 1, 1)
	sameCalls(t, p, "rotate store-key", rot.KMSCalls, r)
	figs.add("rotate store-key", p, r, &rot.KMSCalls)

	// kms rotate: a new primary version (AWS: new material behind the ARN).
	r = w.run(t, "kms", "rotate", "-o", "json", uri)
	var krot provider.KeyState
	if r.code != 0 || json.Unmarshal([]byte(r.out), &krot) != nil {
		t.Fatalf("%s kms rotate: exit %d %s %s", p, r.code, r.out, r.errOut)
	}
	if p != "aws" && krot.PrimaryVersion == desc.PrimaryVersion {
		t.Errorf("%s kms rotate: primary version still %s", p, krot.PrimaryVersion)
	}
	figs.add("kms rotate", p, r, nil)

	// rotate cmek: the store key re-wrapped under the new version.
	rot = rotateReport{}
	r = w.ok(t, &rot, append([]string{"rotate", "cmek", "-o", "json"}, kr...)...)
	wantCalls(t, p, "rotate cmek", rot.KMSCalls, 1, 1)
	sameCalls(t, p, "rotate cmek", rot.KMSCalls, r)
	if rot.KMSCalls.Rewrap != 0 {
		t.Errorf("%s rotate cmek: %d rewrap", p, rot.KMSCalls.Rewrap)
	}
	figs.add("rotate cmek", p, r, &rot.KMSCalls)
	st = statusReport{}
	w.ok(t, &st, append([]string{"status", "--no-kms", "-o", "json"}, kr...)...)
	if p != "aws" && (st.Nodes[0].CMEKVersion == version0 || st.Nodes[0].CMEKVersion != krot.PrimaryVersion) {
		t.Errorf("%s rotate cmek: store key wrapped by version %q (was %q), want the new primary %q", p, st.Nodes[0].CMEKVersion, version0, krot.PrimaryVersion)
	}

	// data encrypt / decrypt.
	tmp := t.TempDir()
	plain := make([]byte, 300<<10)
	_, _ = rand.Read(plain)
	in, sealed, back := filepath.Join(tmp, "in"), filepath.Join(tmp, "sealed"), filepath.Join(tmp, "back")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.ok(t, nil, "data", "encrypt", "--keyring", dirs[0], in, sealed)
	if r.calls.Unwrap != 1 || r.calls.Wrap != 0 {
		t.Errorf("%s data encrypt: %+v, want 1 unwrap", p, r.calls)
	}
	figs.add("data encrypt", p, r, nil)
	r = w.ok(t, nil, "data", "decrypt", "--keyring", dirs[0], sealed, back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, plain) {
		t.Errorf("%s data decrypt: the plaintext differs", p)
	}
	figs.add("data decrypt", p, r, nil)

	// unlock --allow-disk: 1 unwrap; a new store gets the active key with
	// old-key=plain.
	var ul unlockReport
	out := filepath.Join(t.TempDir(), "unlocked")
	r = w.ok(t, &ul, "unlock", "--keyring", dirs[0], "--out", out, "--allow-disk", "--store-path", "/mnt/data1", "-o", "json")
	wantCalls(t, p, "unlock", ul.KMSCalls, 0, 1)
	sameCalls(t, p, "unlock", ul.KMSCalls, r)
	if len(ul.Files) != 1 || ul.OldKey != "plain" {
		t.Errorf("%s unlock: files %v, old-key %s, want active.key and plain", p, ul.Files, ul.OldKey)
	}
	figs.add("unlock --allow-disk", p, r, &ul.KMSCalls)

	// backup-keys create / verify / rewrap.
	var bk backupKeysReport
	r = w.ok(t, &bk, append([]string{"backup-keys", "create", "--label", "e2e", "-o", "json"}, kr...)...)
	wantCalls(t, p, "backup-keys create", bk.KMSCalls, 1, 0)
	sameCalls(t, p, "backup-keys create", bk.KMSCalls, r)
	figs.add("backup-keys create", p, r, &bk.KMSCalls)
	bk = backupKeysReport{}
	r = w.ok(t, &bk, append([]string{"backup-keys", "verify", "-o", "json"}, kr...)...)
	if len(bk.Keys) != 1 || !bk.Keys[0].Restorable {
		t.Errorf("%s backup-keys verify: %s", p, r.out)
	}
	wantCalls(t, p, "backup-keys verify", bk.KMSCalls, 0, 1)
	sameCalls(t, p, "backup-keys verify", bk.KMSCalls, r)
	figs.add("backup-keys verify", p, r, &bk.KMSCalls)
	bk = backupKeysReport{}
	r = w.ok(t, &bk, append([]string{"backup-keys", "rewrap", "-o", "json"}, kr...)...)
	if p == "vault" {
		if bk.KMSCalls.Rewrap != 1 || bk.KMSCalls.Unwrap != 0 || bk.KMSCalls.Wrap != 0 {
			t.Errorf("vault backup-keys rewrap: kms_calls %+v, want 1 rewrap (transit rewrap)", bk.KMSCalls)
		}
	} else {
		wantCalls(t, p, "backup-keys rewrap", bk.KMSCalls, 1, 1)
	}
	sameCalls(t, p, "backup-keys rewrap", bk.KMSCalls, r)
	figs.add("backup-keys rewrap", p, r, &bk.KMSCalls)

	// backup encrypt / decrypt.
	bin, bout, bback := filepath.Join(tmp, "dump"), filepath.Join(tmp, "dump.cmek"), filepath.Join(tmp, "dump.back")
	if err := os.WriteFile(bin, plain[:100<<10], 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.ok(t, nil, append(append([]string{"backup", "encrypt", "--label", "full-1"}, kr...), bin, bout)...)
	if r.calls.Wrap != 1 {
		t.Errorf("%s backup encrypt: %+v, want 1 wrap (a fresh backup key)", p, r.calls)
	}
	figs.add("backup encrypt (full)", p, r, nil)
	r = w.ok(t, nil, append(append([]string{"backup", "decrypt"}, kr...), bout, bback)...)
	if got, _ := os.ReadFile(bback); !bytes.Equal(got, plain[:100<<10]) {
		t.Errorf("%s backup decrypt: the plaintext differs", p)
	}
	if r.calls.Unwrap != 1 {
		t.Errorf("%s backup decrypt: %+v, want 1 unwrap", p, r.calls)
	}
	figs.add("backup decrypt", p, r, nil)

	// verify-destroyed on the live cluster (the matrix's first cell, counted).
	var vr e2eVerify
	r = w.run(t, append([]string{"verify-destroyed", "-o", "json"}, kr...)...)
	if err := json.Unmarshal([]byte(r.out), &vr); err != nil || r.code != ExitAccessible {
		t.Fatalf("%s verify-destroyed: exit %d, %v\n%s", p, r.code, err, r.errOut)
	}
	sameCalls(t, p, "verify-destroyed", vr.KMSCalls, r)
	figs.add("verify-destroyed (enabled, 2 nodes, 2 backup keys)", p, r, &vr.KMSCalls)
}
