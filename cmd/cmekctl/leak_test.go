package main

// Leak scan (issue 9): run representative cmekctl commands as child
// processes, learn every plaintext key they made (the canaries), and look
// for each canary, raw, in hex (lower and upper case) and in base64 (std
// and URL alphabets, padded and not), in everything a key must not reach:
// stdout and stderr of every command (error paths included), the audit log,
// every file under the test's directories except the two kinds of file
// whose job is to hold a key (unlock's store-key files and file-kms's key
// files), and the argv and environment of every child process.
//
// Canaries, all learnt without touching non-test code:
//   - file-kms key material: read from the KMS's key file (every version);
//   - store keys: unwrapped through the Go API (keyring.UnwrapBundle), and
//     checked against unlock's cockroach-v1 active.key (32-byte ID + key);
//   - data keys: opened from the keyring with the store key and the
//     binding keyring.DataBinding (AES-256-GCM, nonce first: the format
//     sealLocal writes), each checked to authenticate;
//   - backup keys: keyring.UnwrapBackupKey for each key in the keyrings.
//
// The drill makes and destroys keys of its own in its sandbox: they cannot
// be learnt, so its output is scanned for the canaries above only.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/audit"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/keywrap"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

type canary struct {
	what string
	key  []byte
}

// encodings of b that a leak could take.
func encodings(b []byte) map[string][]byte {
	h := hex.EncodeToString(b)
	return map[string][]byte{
		"raw":           b,
		"hex":           []byte(h),
		"HEX":           []byte(strings.ToUpper(h)),
		"base64":        []byte(base64.StdEncoding.EncodeToString(b)),
		"base64-nopad":  []byte(base64.RawStdEncoding.EncodeToString(b)),
		"base64url":     []byte(base64.URLEncoding.EncodeToString(b)),
		"base64url-raw": []byte(base64.RawURLEncoding.EncodeToString(b)),
	}
}

type leakScan struct {
	t        *testing.T
	tmp      string
	outputs  []struct{ what, data string } // stdout, stderr, argv, env of each child
	canaries []canary
}

func (s *leakScan) run(want int, args ...string) string {
	s.t.Helper()
	c := cliCmd(s.t, s.tmp, args...)
	s.outputs = append(s.outputs,
		struct{ what, data string }{"argv of cmekctl " + args[0], strings.Join(c.Args, "\x00")},
		struct{ what, data string }{"environment of cmekctl " + args[0], strings.Join(c.Env, "\x00")})
	code, out, errOut := cliRun(s.t, s.tmp, args...)
	if code != want {
		s.t.Fatalf("cmekctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	s.outputs = append(s.outputs,
		struct{ what, data string }{"stdout of cmekctl " + strings.Join(args[:min(2, len(args))], " "), out},
		struct{ what, data string }{"stderr of cmekctl " + strings.Join(args[:min(2, len(args))], " "), errOut})
	return out
}

func (s *leakScan) add(what string, key []byte) {
	if len(key) < 16 {
		s.t.Fatalf("canary %s is %d bytes: too short to scan for", what, len(key))
	}
	for _, c := range s.canaries {
		if bytes.Equal(c.key, key) {
			return
		}
	}
	s.canaries = append(s.canaries, canary{what, bytes.Clone(key)})
}

// harvest learns the plaintext keys of the keyrings and of the file-kms
// key files under kmsDir.
func (s *leakScan) harvest(kmsDir string, dirs []string) {
	t := s.t
	ents, err := os.ReadDir(kmsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".key.json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(kmsDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Versions []struct {
				ID       int    `json:"id"`
				Material []byte `json:"material"`
				Sealed   []byte `json:"sealed"`
			} `json:"versions"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("file-kms key file %s: %v", e.Name(), err)
		}
		// Format 2 seals each version's material under the key's secret
		// file (filekms erase.go): the secret is a canary too, and the
		// material is unsealed with it.
		keyName := strings.TrimSuffix(e.Name(), ".key.json")
		secret, _ := os.ReadFile(filepath.Join(kmsDir, keyName+".secret"))
		if len(secret) > 0 {
			s.add("file-kms "+keyName+" secret", secret)
		}
		for _, v := range st.Versions {
			if len(v.Sealed) > 0 && len(secret) > 0 {
				m, err := keywrap.Open(secret, v.Sealed, []byte("cmekctl file-kms material\x00"+keyName+"\x00"+strconv.Itoa(v.ID)))
				if err != nil {
					t.Fatalf("file-kms %s version %d: unseal: %v", keyName, v.ID, err)
				}
				v.Material = m
			}
			if len(v.Material) > 0 {
				s.add(fmt.Sprintf("file-kms %s version %d", e.Name(), v.ID), v.Material)
			}
		}
	}
	ctx := context.Background()
	env := keyring.Env{Open: registry.Default().Open, Now: time.Now}
	var stores []keyring.Store
	for _, d := range dirs {
		stores = append(stores, keyring.Store{Dir: d})
		s.harvestKeyring(d)
	}
	g, err := keyring.LoadGroup(ctx, stores, false)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, bk := range g.BackupKeys() {
		k, _, err := keyring.UnwrapBackupKey(ctx, env, g.Cluster, bk, "")
		if err != nil {
			t.Fatal(err)
		}
		s.add("backup key "+keyring.Short(bk.ID), k)
	}
}

// harvestKeyring learns the store keys and data keys of the keyring in d
// (a node's keyring, or a --store node's local cache).
func (s *leakScan) harvestKeyring(d string) {
	t := s.t
	ctx := context.Background()
	env := keyring.Env{Open: registry.Default().Open, Now: time.Now}
	kr, err := keyring.Store{Dir: d}.Load()
	if err != nil {
		t.Fatal(err)
	}
	b, err := keyring.UnwrapBundle(ctx, env, kr.ClusterID, kr.Region, kr.StoreWrap)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range b.IDs {
		s.add("store key "+keyring.Short(id), b.Keys[i])
	}
	for _, dk := range kr.DataKeys {
		kek := b.Key(dk.StoreKeyID)
		if kek == nil {
			t.Fatalf("data key %s: store key %s not in the bundle", dk.ID, dk.StoreKeyID)
		}
		// nonce || ciphertext || tag: the layout NewGCMWithRandomNonce
		// opens, which fips140=only allows (the FIPS pass runs this too).
		blk, _ := aes.NewCipher(kek)
		aead, _ := cipher.NewGCMWithRandomNonce(blk)
		pt, err := aead.Open(nil, nil, dk.Wrapped, keyring.DataBinding(kr.ClusterID, kr.Region, kr.Node, dk.ID, dk.StoreKeyID))
		if err != nil {
			t.Fatalf("data key %s of %s does not open with the test's reading of the format: %v", dk.ID, d, err)
		}
		s.add("data key "+keyring.Short(dk.ID)+" of "+kr.Node, pt)
	}
}

// storePaths runs the --store verbs against a directory store, cluster c2
// in one region under CMEK key cmek, and returns the two
// nodes' local caches (keyrings). Config init and set run here too.
func (s *leakScan) storePaths(cmek string) (string, string) {
	p := func(name string) string { return filepath.Join(s.tmp, name) }
	if err := os.Mkdir(p("store"), 0o700); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Mkdir(p("storecheck"), 0o700); err != nil {
		s.t.Fatal(err)
	}
	st := "file://" + p("store")
	at := []string{"--store", st, "--cluster-id", "c2"}
	node := func(n string) []string {
		return append(slices.Clone(at), "--region", "r1", "--node", n, "--keyring", p(n+"cache"))
	}
	unlock := func(n string) {
		s.run(0, append(append([]string{"unlock"}, node(n)...), "--out", p(n+"out"), "--allow-disk", "--store-path", "/mnt/d1", "-o", "json")...)
	}
	s.run(0, "store", "check", "file://"+p("storecheck"), "-o", "json")
	s.run(0, append(append([]string{"enable"}, at...), "--region", "r1", "--cmek", cmek, "--node", "s1", "--node", "s2", "-o", "json")...)
	unlock("s1")
	unlock("s2")
	s.run(0, append([]string{"node", "started"}, node("s1")...)...)
	s.run(0, append(append([]string{"status"}, at...), "-o", "json")...)
	s.run(0, append(append([]string{"rotate", "store-key"}, at...), "--dry-run", "-o", "json")...)
	s.run(0, append(append([]string{"rotate", "store-key"}, at...), "-o", "json")...)
	s.run(0, append(append([]string{"node", "agent"}, node("s1")...), "--once", "-o", "json")...)
	unlock("s1")
	unlock("s2")
	s.run(0, "config", "init", "--config", p("cfg/cluster.yaml"), "--cluster-id", "c2")
	s.run(0, "config", "set", "--config", p("cfg/cluster.yaml"), "store", st)
	s.run(0, "config", "view", "--config", p("cfg/cluster.yaml"), "-o", "json")
	return p("s1cache"), p("s2cache")
}

// TestLeakScan: no canary, in any encoding, anywhere it must not be.
func TestLeakScan(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes: not in -short")
	}
	tmp := t.TempDir()
	s := &leakScan{t: t, tmp: tmp}
	kmsDir := filepath.Join(tmp, "kms")
	if err := os.Mkdir(kmsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(tmp, "plain.txt")
	if err := os.WriteFile(plain, bytes.Repeat([]byte("INSERT INTO t VALUES (42);\n"), 500), 0o600); err != nil {
		t.Fatal(err)
	}
	east, west := "file-kms://"+filepath.Join(kmsDir, "east"), "file-kms://"+filepath.Join(kmsDir, "west")
	e1, e2, w1 := filepath.Join(tmp, "e1"), filepath.Join(tmp, "e2"), filepath.Join(tmp, "w1")
	run, run2 := filepath.Join(tmp, "run"), filepath.Join(tmp, "run2")
	p := func(name string) string { return filepath.Join(tmp, name) }

	// The audit log's MAC chain from the start: its starting key, exported
	// for the auditor, is a secret too (a canary below).
	s.run(0, "audit", "init", "--export-key", p("audit-start.key"))
	s.run(0, "kms", "create", east)
	s.run(0, "kms", "create", west)
	s.run(0, "kms", "describe", east, "-o", "json")
	s.run(0, "enable", "--cluster-id", "c1", "--region", "east", "--cmek", east, "--keyring", e1, "--node", "e1", "--keyring", e2, "--node", "e2")
	s.run(0, "enable", "--cluster-id", "c1", "--region", "west", "--cmek", west, "--keyring", w1, "--node", "w1", "-o", "json")
	s.run(0, "status", "--keyring", e1, "--keyring", e2, "--keyring", w1, "-o", "json")
	s.run(0, "unlock", "--keyring", e1, "--out", run, "--allow-disk", "--store-path", "/mnt/data1")
	s.run(0, "data", "encrypt", "--keyring", e1, plain, p("d1.bin"))
	s.run(0, "data", "decrypt", "--keyring", e1, p("d1.bin"), p("d1.out"))
	s.run(0, "rotate", "data-key", "--keyring", e1, "--keyring", e2)
	s.run(0, "rotate", "store-key", "--keyring", e1, "--keyring", e2, "-o", "json")
	s.run(0, "kms", "rotate", east)
	s.run(0, "rotate", "cmek", "--keyring", e1, "--keyring", e2)
	s.run(0, "unlock", "--keyring", e1, "--out", run2, "--allow-disk", "--store-path", "/mnt/data1", "--format", "cockroach-v2", "-o", "json")
	s.run(0, "data", "encrypt", "--keyring", e2, plain, p("d2.bin"))
	s.run(0, "data", "decrypt", "--keyring", e1, p("d1.bin"), p("d1b.out"))
	s.run(0, "backup-keys", "create", "--keyring", e1, "--keyring", w1, "--label", "nightly", "-o", "json")
	s.run(0, "backup", "encrypt", "--keyring", e1, "--keyring", w1, plain, p("full.cmek"))
	s.run(0, "backup", "encrypt", "--keyring", e1, "--keyring", w1, "--incremental-of", p("full.cmek"), plain, p("incr.cmek"))
	s.run(0, "backup", "decrypt", "--keyring", e1, "--keyring", w1, p("full.cmek"), p("full.out"))
	s.run(0, "backup-keys", "list", "--keyring", e1, "-o", "json")
	s.run(0, "backup-keys", "verify", "--keyring", e1, "--keyring", w1)
	s.run(0, "backup-keys", "export", "--keyring", e1, "--keyring", w1, "--out", p("escrow.json"))
	s.run(0, "backup", "verify", "--keyring", e1, "--keyring", w1, "-o", "json", p("full.cmek"), p("incr.cmek"))
	s.run(0, "audit", "--help")
	// The shared keyring store (a directory store): enable, unlock, node
	// started, status, a store-key rotation planned and made, the node
	// agent, store check; then each node's local cache is harvested.
	sc1, sc2 := s.storePaths(east)
	// Error paths: tampered data and backups, a wrong keyring.
	d1, err := os.ReadFile(p("d1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	d1[len(d1)-3] ^= 1
	if err := os.WriteFile(p("d1.bad"), d1, 0o600); err != nil {
		t.Fatal(err)
	}
	s.run(22, "data", "decrypt", "--keyring", e1, p("d1.bad"), p("bad.out"))
	s.run(6, "data", "decrypt", "--keyring", w1, p("d1.bin"), p("bad2.out"))
	s.run(4, "backup", "decrypt", "--keyring", e1, plain, p("bad3.out"))

	// Every key is known now, while the KMS still answers.
	s.harvest(kmsDir, []string{e1, e2, w1})
	s.harvestKeyring(sc1)
	s.harvestKeyring(sc2)
	// The audit checkpoint's signing seed is a secret too.
	s.run(0, "audit", "checkpoint", "--key", p("cp.key"), "--out", p("cp.json"))
	s.run(0, "audit", "verify", "--checkpoint", p("cp.json"))
	seed, err := os.ReadFile(p("cp.key"))
	if err != nil {
		t.Fatal(err)
	}
	s.add("audit checkpoint seed", seed)
	start, err := audit.ReadExportedKey(p("audit-start.key"))
	if err != nil {
		t.Fatal(err)
	}
	startKey, _ := hex.DecodeString(start.Key)
	s.add("audit MAC chain starting key", startKey)
	// unlock's cockroach-v1 file is the 32-byte store-key ID and the key:
	// the harvest must have found that key (else the canaries are wrong).
	ak, err := os.ReadFile(filepath.Join(run, "active.key"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range s.canaries {
		if len(ak) == 64 && bytes.Equal(c.key, ak[32:]) {
			found = true
		}
	}
	if !found {
		t.Fatalf("unlock's active.key (%d bytes) holds no store key the harvest found", len(ak))
	}

	// The scanner finds what is there: file-kms's secret file holds the
	// key's secret raw, unlock's file the store key raw.
	kf, err := os.ReadFile(filepath.Join(kmsDir, "east.secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, probe := range [][]byte{kf, ak} {
		n := 0
		for _, c := range s.canaries {
			for _, pat := range encodings(c.key) {
				if bytes.Contains(probe, pat) {
					n++
				}
			}
		}
		if n == 0 {
			t.Fatalf("the scanner finds no canary in a file that holds one: it would miss a leak")
		}
	}

	// Destructive verbs and the verdicts, after the harvest.
	s.run(31, "verify-destroyed", "--keyring", e1, "--keyring", e2, "--sample", p("d1.bin"), "-o", "json")
	s.run(0, "revoke", "--keyring", e1, "--keyring", e2, "--kms-action", "disable", "--yes", "--reason", "leak scan")
	// ACCESSIBLE still: the backup keys are wrapped by west's key too.
	s.run(31, "verify-destroyed", "--keyring", e1, "--keyring", e2, "--sample", p("d1.bin"))
	s.run(8, "unlock", "--keyring", e1, "--out", run, "--allow-disk", "--store-path", "/mnt/data1")
	s.run(0, "kms", "disable", west)
	s.run(20, "rotate", "data-key", "--keyring", w1)
	s.run(0, "drill", "--dir", p("sandbox"), "-o", "json")
	s.run(0, "drill")

	// Scan.
	type hit struct{ canary, enc, where string }
	var hits []hit
	var scanned int64
	scan := func(where string, data []byte) {
		scanned += int64(len(data))
		for _, c := range s.canaries {
			for enc, pat := range encodings(c.key) {
				if bytes.Contains(data, pat) {
					hits = append(hits, hit{c.what, enc, where})
				}
			}
		}
	}
	for _, o := range s.outputs {
		scan(o.what, []byte(o.data))
	}
	var files, skipped int
	err = filepath.WalkDir(tmp, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(tmp, path)
		// The files whose job is to hold a key.
		if (strings.HasSuffix(path, ".key.json") || strings.HasSuffix(path, ".secret")) && filepath.Dir(path) == kmsDir ||
			slices.Contains([]string{run, run2, p("s1out"), p("s2out")}, filepath.Dir(path)) && strings.HasSuffix(path, ".key") ||
			path == p("cp.key") || path == p("audit-start.key") || path == audit.KeyFile(filepath.Join(tmp, "state", "cmekctl", "audit.log")) {
			skipped++
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		scan(rel, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	auditLog, err := os.ReadFile(filepath.Join(tmp, "state", "cmekctl", "audit.log"))
	if err != nil || len(auditLog) == 0 {
		t.Fatalf("no audit log to scan (%v): the scan would prove nothing about it", err)
	}
	// Every verb above appended under the MAC chain: it verifies whole.
	s.run(0, "audit", "verify", "--key", p("audit-start.key"))
	var encs int
	for _, c := range s.canaries {
		encs += len(encodings(c.key))
	}
	t.Logf("leak scan: %d canaries (%d patterns) over %d bytes: %d command outputs/argv/env, %d files (audit log %d bytes included), %d key files skipped; hits %d",
		len(s.canaries), encs, scanned, len(s.outputs), files, len(auditLog), skipped, len(hits))
	kinds := map[string]int{}
	for _, c := range s.canaries {
		kinds[strings.Fields(c.what)[0]]++
	}
	t.Logf("canaries by kind: %v", kinds)
	for _, h := range hits {
		t.Errorf("LEAK: %s (%s) found in %s", h.canary, h.enc, h.where)
	}
	if len(s.canaries) < 8 {
		t.Errorf("only %d canaries: the harvest missed keys", len(s.canaries))
	}
}
