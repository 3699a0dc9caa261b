package commands

// TestProvidersE2E's verify-destroyed matrix: the scenario cells and their run.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/verify"
)

type e2eVerify struct {
	Verdict  string         `json:"verdict"`
	Reason   string         `json:"reason"`
	Checks   []verify.Check `json:"checks"`
	KMSCalls KMSCalls       `json:"kms_calls"`
}

func (v e2eVerify) outcomes(check string) []string {
	var o []string
	for _, c := range v.Checks {
		if c.Check == check {
			o = append(o, c.Outcome)
		}
	}
	return o
}

// e2eCell is one cell of the matrix: set up a cluster, put its key in a
// state, and return the keyrings (and samples) to verify.
type e2eCell struct {
	name    string
	verdict string
	code    int
	setup   func(t *testing.T, w *e2eWorld) (args []string, check func(t *testing.T, v e2eVerify))
}

var verdictCodes = map[string]int{verify.Destroyed: 0, verify.Revoked: ExitVerdictRevoked, verify.Accessible: ExitAccessible, verify.Inconclusive: ExitInconclusive}

// checkProve is the name of verify-destroyed's check of a pinned key.
const checkProve = "prove CMEK key destroyed"

// hookCell: a 2-node cluster whose key is then put in a state by hook.
func hookCell(name, verdict string) e2eCell {
	return e2eCell{name: name, verdict: verdict, code: verdictCodes[verdict], setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		if h := w.hooks[name]; h != nil {
			h(t, w, uri)
		}
		return keyringArgs(dirs...), nil
	}}
}

var e2eCells = []e2eCell{
	hookCell(cellEnabled, verify.Accessible),
	hookCell(cellDisabled, verify.Revoked),
	hookCell(cellPending, verify.Revoked),
	hookCell(cellDestroyed, verify.Destroyed),
	hookCell(cellDenied, verify.Revoked),
	hookCell(cellUnreachable, verify.Inconclusive),
	hookCell(cellThrottled, verify.Inconclusive),
	{name: cellHistory, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		// Key A wraps the store key and a backup; rotate cmek --cmek B and
		// backup-keys rewrap move everything to B; B is destroyed. A still
		// opens the old wraps (kept in the history) and the backup's header.
		old := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", old, 2)
		tmp := t.TempDir()
		in, bak := filepath.Join(tmp, "dump.sql"), filepath.Join(tmp, "full.cmek")
		if err := os.WriteFile(in, []byte("INSERT INTO t VALUES (1);"), 0o600); err != nil {
			t.Fatal(err)
		}
		w.ok(t, nil, append([]string{"backup", "encrypt"}, append(keyringArgs(dirs...), in, bak)...)...)
		cur := w.newKey(t)
		w.ok(t, nil, append([]string{"rotate", "cmek", "--cmek", cur, "-o", "json"}, keyringArgs(dirs...)...)...)
		w.ok(t, nil, append([]string{"backup-keys", "rewrap", "-o", "json"}, keyringArgs(dirs...)...)...)
		w.hooks[cellDestroyed](t, w, cur)
		return append(keyringArgs(dirs...), "--sample", bak), func(t *testing.T, v e2eVerify) {
			for _, check := range []string{"unwrap replaced store-key wrap", "unwrap replaced backup-key wrap", "unwrap backup header wrap"} {
				if o := v.outcomes(check); !slices.Equal(o, []string{verify.OutAccessible}) {
					t.Errorf("%s: %v, want the earlier key to open it", check, o)
				}
			}
			if o := v.outcomes(checkProve); len(o) != 2 {
				t.Errorf("prove checks %v, want one per CMEK key (the earlier and the current)", o)
			}
			// Once the earlier key is destroyed too, nothing opens.
			w.hooks[cellDestroyed](t, w, old)
			r := w.run(t, append([]string{"verify-destroyed", "-o", "json", "--sample", bak}, keyringArgs(dirs...)...)...)
			var after e2eVerify
			if err := json.Unmarshal([]byte(r.out), &after); err != nil {
				t.Fatal(err)
			}
			want := verify.Destroyed
			if o := w.verdict[cellDestroyed]; o != "" {
				want = o
			}
			if after.Verdict != want {
				t.Errorf("both keys destroyed: %s, want %s\n%s", after.Verdict, want, checksText(after))
			}
		}
	}},
	{name: cellWrongPlace, verdict: verify.Inconclusive, code: ExitInconclusive, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		w.hooks[cellWrongPlace](t, w, uri)
		return keyringArgs(dirs...), func(t *testing.T, v e2eVerify) {
			for _, c := range v.Checks {
				if c.Outcome == verify.OutDestroyed {
					t.Errorf("%s on %s: destroyed (%s), but the key was only asked about in the wrong place", c.Check, c.Target, c.Result)
				}
			}
			if o := v.outcomes(checkProve); len(o) != 1 {
				t.Errorf("prove checks %v, want one", o)
			}
		}
	}},
	{name: cellImported, verdict: verify.Revoked, code: ExitVerdictRevoked, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri, destroy := w.imported(t, w)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		destroy(t)
		return keyringArgs(dirs...), func(t *testing.T, v e2eVerify) {
			if o := v.outcomes(checkProve); !slices.Equal(o, []string{verify.OutRevoked}) {
				t.Errorf("describe: outcomes %v, want the KMS to say the material could come back", o)
			}
			for _, c := range v.Checks {
				if c.Check == checkProve && !strings.Contains(c.Result, "recoverable") {
					t.Errorf("describe: %q does not say recoverable", c.Result)
				}
			}
		}
	}},
	{name: cellOneRegion, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		cluster := "c-" + e2eRand()
		revoke := w.hooks[cellDisabled]
		if revoke == nil {
			revoke = w.hooks[cellDenied] // Vault: a policy denying the key
		}
		var all []string
		for i, region := range []string{"r1", "r2", "r3"} {
			uri := w.newKey(t)
			dirs, _ := w.enable(t, cluster, region, uri, 1)
			all = append(all, dirs...)
			if i > 0 {
				revoke(t, w, uri)
			}
		}
		return keyringArgs(all...), func(t *testing.T, v e2eVerify) {
			var acc []string
			for _, c := range v.Checks {
				if c.Check == "unwrap store key" && c.Outcome == verify.OutAccessible {
					acc = append(acc, c.Target)
				}
			}
			if len(acc) != 1 || !strings.Contains(acc[0], "region r1") {
				t.Errorf("accessible store keys %v, want region r1's only", acc)
			}
			if o := v.outcomes("unwrap store key"); len(o) != 3 {
				t.Errorf("store-key unwraps %v, want one per region", o)
			}
		}
	}},
	{name: cellLeftover, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		w.ok(t, nil, "unlock", "--keyring", dirs[0], "--out", filepath.Join(t.TempDir(), "unlocked"), "--allow-disk", "--store-path", "/mnt/data1", "-o", "json")
		w.hooks[cellDestroyed](t, w, uri) // even with the key destroyed
		return keyringArgs(dirs...), func(t *testing.T, v e2eVerify) {
			for _, c := range v.Checks {
				if c.Outcome == verify.OutAccessible && c.Check != "search for unwrapped key files" {
					t.Errorf("check %q on %s is accessible; only the files left on disk should be", c.Check, c.Target)
				}
			}
			if o := v.outcomes("search for unwrapped key files"); slices.Index(o, verify.OutAccessible) < 0 {
				t.Errorf("search for key files: %v, want a file found", o)
			}
			want := verify.OutDestroyed
			if w.verdict[cellDestroyed] == verify.Revoked {
				want = verify.OutRevoked
			}
			if o := v.outcomes("unwrap store key"); !slices.Equal(o, []string{want}) {
				t.Errorf("store-key unwrap: %v, want %s", o, want)
			}
		}
	}},
	{name: cellStray, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		// unlock, then the temporary file a kill at unlock's rename
		// leaves: revoke must purge it with the rest of the directory. A
		// key file in a directory no record names (a hand copy) is found
		// with --unlock-dir.
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		run := filepath.Join(t.TempDir(), "run")
		w.ok(t, nil, "unlock", "--keyring", dirs[0], "--out", run, "--allow-disk", "--store-path", "/mnt/data1", "-o", "json")
		stray := filepath.Join(run, ".active.key.tmp-4242")
		copyDir := t.TempDir()
		copied := filepath.Join(copyDir, "store.key")
		for _, f := range []string{stray, copied} {
			if err := os.WriteFile(f, make([]byte, 32), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		w.ok(t, nil, append([]string{"revoke", "--kms-action", "none", "--yes", "-o", "json"}, keyringArgs(dirs...)...)...)
		if _, err := os.Lstat(stray); !os.IsNotExist(err) {
			t.Errorf("revoke left %s in the unlock directory: %v", stray, err)
		}
		w.hooks[cellDestroyed](t, w, uri)
		return append(keyringArgs(dirs...), "--unlock-dir", copyDir), func(t *testing.T, v e2eVerify) {
			var found []string
			for _, c := range v.Checks {
				if c.Outcome == verify.OutAccessible {
					found = append(found, c.Target)
				}
			}
			if !slices.Equal(found, []string{copied}) {
				t.Errorf("accessible %v, want only the key file in --unlock-dir (%s)", found, copied)
			}
		}
	}},
	{name: cellSample, verdict: verify.Accessible, code: ExitAccessible, setup: func(t *testing.T, w *e2eWorld) ([]string, func(*testing.T, e2eVerify)) {
		uri := w.newKey(t)
		dirs, _ := w.enable(t, "c-"+e2eRand(), "r1", uri, 2)
		tmp := t.TempDir()
		in, sample := filepath.Join(tmp, "in"), filepath.Join(tmp, "sample.cmek")
		if err := os.WriteFile(in, []byte("rows of a table, sealed by node 1"), 0o600); err != nil {
			t.Fatal(err)
		}
		w.ok(t, nil, "data", "encrypt", "--keyring", dirs[0], in, sample)
		// The keyrings are revoked, but the key was left as it is.
		w.ok(t, nil, append([]string{"revoke", "--kms-action", "none", "--yes", "-o", "json"}, keyringArgs(dirs...)...)...)
		return append(keyringArgs(dirs...), "--sample", sample), func(t *testing.T, v e2eVerify) {
			if o := v.outcomes("decrypt sample"); !slices.Equal(o, []string{verify.OutAccessible}) {
				t.Errorf("decrypt sample: %v, want it decrypted", o)
			}
			if o := v.outcomes("node start (unlock)"); slices.Contains(o, verify.OutAccessible) {
				t.Errorf("node start: %v, want refused by the revocation mark", o)
			}
		}
	}},
}

func testMatrix(t *testing.T, start func(*testing.T) *e2eWorld) {
	var name string
	var table []string
	for _, c := range e2eCells {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			w := start(t)
			name = w.name
			switch {
			case c.name == cellImported && w.imported == nil,
				w.cannot[c.name] != "":
				table = append(table, fmt.Sprintf("| %s | %s | not expressible: %s |", w.name, c.name, w.cannot[c.name]))
				if w.name == "vault" && (c.name == cellDisabled || c.name == cellPending) {
					// Say so, and show that cmekctl says so too.
					verb := map[string]string{cellDisabled: "disable", cellPending: "schedule-deletion"}[c.name]
					r := w.run(t, "kms", verb, w.newKey(t))
					if r.code != ExitUsage || !strings.Contains(r.errOut, "vault transit has no") || strings.Contains(r.errOut, "did not authenticate") {
						t.Errorf("vault kms %s: exit %d, %q: want a usage error (exit %d) that names the missing verb", verb, r.code, r.errOut, ExitUsage)
					}
					t.Logf("vault kms %s: exit %d: %s", verb, r.code, strings.TrimSpace(r.errOut))
				}
				return
			}
			args, check := c.setup(t, w)
			before := -1
			if w.attempts != nil {
				before = w.attempts(t)
			}
			r := w.run(t, append([]string{"verify-destroyed", "-o", "json"}, args...)...)
			c := c
			if o := w.verdict[c.name]; o != "" {
				c.verdict, c.code = o, verdictCodes[o]
				t.Logf("%s %s: %s, because %s", w.name, c.name, o, w.why[c.name])
			}
			var v e2eVerify
			if err := json.Unmarshal([]byte(r.out), &v); err != nil {
				t.Fatalf("%s %s: verify-destroyed exit %d, output not JSON: %v\nstderr: %s", w.name, c.name, r.code, err, r.errOut)
			}
			if v.Verdict != c.verdict || r.code != c.code {
				t.Errorf("%s %s: verdict %s exit %d, want %s exit %d\nreason: %s\nchecks: %s", w.name, c.name, v.Verdict, r.code, c.verdict, c.code, v.Reason, checksText(v))
			}
			if check != nil {
				check(t, v)
			}
			if c.name == cellThrottled && w.attempts != nil {
				// Every unwrap used the whole retry budget.
				n := w.attempts(t) - before
				unwraps := len(v.outcomes("unwrap store key")) + len(v.outcomes("unwrap backup key"))
				if n != unwraps*w.budget {
					t.Errorf("%s throttled: %d unwrap attempts for %d unwraps, want %d each (the retry budget)", w.name, n, unwraps, w.budget)
				}
			}
			if c.name == cellDisabled {
				// A revocation drill accepts REVOKED.
				if r := w.run(t, append([]string{"verify-destroyed", "--accept", "revoked", "-o", "json"}, args...)...); r.code != 0 {
					t.Errorf("%s disabled, --accept revoked: exit %d, want 0", w.name, r.code)
				}
			}
			note := ""
			if a := w.analogue[c.name]; a != "" {
				note = " (" + a + ")"
			}
			table = append(table, fmt.Sprintf("| %s | %s | %s, exit %d%s |", w.name, c.name, v.Verdict, r.code, note))
		})
	}
	t.Logf("%s matrix:\n%s", name, strings.Join(table, "\n"))
}

func checksText(v e2eVerify) string {
	var b strings.Builder
	for _, c := range v.Checks {
		fmt.Fprintf(&b, "\n  %s | %s | %s | %s | %s | %s", c.Target, c.Check, c.Outcome, c.Result, c.Class, c.KMSError)
	}
	return b.String()
}
