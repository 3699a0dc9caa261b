package commands

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/stream"
	"github.com/cmekctl/cmekctl/pkg/verify"
)

// DrillOptions are drill's options.
type DrillOptions struct {
	Dir      string
	Keep     bool
	Provider string
	CMEK     string
	// Existing names a key that exists and may be disabled and destroyed
	// (with Yes, or typed confirmation on a terminal).
	Existing string
	Yes      bool
}

// drillCaps are what a KMS can show in a drill.
type drillCaps struct {
	versions   bool // the KMS names key versions in its wraps
	disable    bool // the KMS can disable a key
	destroyNow bool // the KMS destroys at once (not after a pending window)
	noProof    bool // the KMS never proves destruction (verify-destroyed's best is REVOKED)
	note       string
}

var providerSchemes = map[string]string{"file": "file-kms", "aws": "aws-kms", "gcp": "gcp-kms", "vault": "vault-transit"}

func capsOf(scheme string) drillCaps {
	switch scheme {
	case "aws-kms":
		return drillCaps{disable: true, note: "AWS KMS names no key versions and destroys only after a 7-day window"}
	case "gcp-kms":
		return drillCaps{versions: true, disable: true, note: "GCP Cloud KMS destroys only after the key's destroy-scheduled window"}
	case "vault-transit":
		return drillCaps{versions: true, destroyNow: true, noProof: true,
			note: "Vault transit cannot disable a key: revoke access by policy; a deleted transit key reads like one that never existed and transit/restore brings it back, so verify-destroyed's best is REVOKED"}
	}
	return drillCaps{versions: true, disable: true, destroyNow: true}
}

func newCmdDrill(f *Factory, p func() printer) *cobra.Command {
	opts := &DrillOptions{}
	cmd := &cobra.Command{
		Use:   "drill [--dir DIR]",
		Short: "Rehearse the whole CMEK lifecycle in a sandbox on the embedded KMS",
		Long: `Run the whole lifecycle in a sandbox directory on the embedded file-kms, with
no cloud account: create a CMEK key; enable one region with three nodes;
encrypt sample data on each node; rotate the data key, the store key, and the
CMEK key to a new version; read all data back; disable the CMEK key and show
that unlock and decrypt now fail; destroy the key and show that nothing can
be decrypted. It prints a table of steps with what each showed, and exits
with 60 if any step did not behave.

The drill creates its own key: --cmek names a key that does not exist yet in
your KMS (the default is a new file-kms key in the sandbox). A key that
already exists is disabled and destroyed by the drill, so it is refused unless
you confirm: on a terminal by typing its URI, in a script with --yes and
--destroy-existing naming the same key. Nothing is done before that.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return drillRun(cmd.Context(), f, p(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "sandbox directory (default: a new temporary directory, removed afterwards)")
	cmd.Flags().BoolVar(&opts.Keep, "keep", false, "keep the temporary sandbox for inspection")
	cmd.Flags().StringVar(&opts.Provider, "provider", "file", "KMS to rehearse on: file, aws, gcp or vault (with --cmek)")
	cmd.Flags().StringVar(&opts.CMEK, "cmek", "", "a TEST key in your KMS to rehearse on, not created yet: the drill creates it, then disables and destroys it")
	addURIFileFlag(cmd, "cmek")
	cmd.Flags().StringVar(&opts.Existing, "destroy-existing", "", "rehearse on this EXISTING key (the --cmek key again): it is disabled and destroyed; with --yes in a script")
	cmd.Flags().BoolVar(&opts.Yes, "yes", false, "with --destroy-existing: confirm without a prompt")
	_ = cmd.RegisterFlagCompletionFunc("provider", cobra.FixedCompletions([]string{"file", "aws", "gcp", "vault"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type drillStep struct {
	Step     string   `json:"step"`
	Expected string   `json:"expected"`
	Observed string   `json:"observed"`
	OK       bool     `json:"ok"`
	KMSCalls KMSCalls `json:"kms_calls"`
}

type drillReport struct {
	Dir   string      `json:"dir"`
	CMEK  string      `json:"cmek_uri"`
	Note  string      `json:"note,omitempty"`
	Steps []drillStep `json:"steps"`
	OK    bool        `json:"ok"`
}

type drill struct {
	ctx    context.Context
	f      *Factory
	rep    drillReport
	stores []keyring.Store
	sample map[string][]byte // node dir → plaintext
	sealed map[string][]byte // node dir → ciphertext
	// backupFile is the backup the drill proves restorable, then not
	// (drillbackup.go).
	backupFile string
}

// step runs fn in a fresh KMS session and records what it showed.
func (d *drill) step(name, expected string, fn func(s *kmsSession) (string, bool)) {
	s := d.f.newSession()
	observed, ok := fn(s)
	d.rep.Steps = append(d.rep.Steps, drillStep{Step: name, Expected: expected, Observed: observed, OK: ok, KMSCalls: s.Counts()})
	if d.f.IO.IsStderrTTY() {
		mark := "ok"
		if !ok {
			mark = "FAILED"
		}
		fmt.Fprintf(d.f.IO.ErrOut, "  %-6s %s\n", mark, name)
	}
}

func drillRun(ctx context.Context, f *Factory, p printer, o *DrillOptions) error {
	dir := o.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "cmekctl-drill-")
		if err != nil {
			return err
		}
		dir = tmp
		if !o.Keep {
			defer os.RemoveAll(tmp)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dir, _ = filepath.Abs(dir)
	d := &drill{ctx: ctx, f: f, sample: map[string][]byte{}, sealed: map[string][]byte{}}
	d.rep.Dir = dir
	scheme, ok := providerSchemes[o.Provider]
	if !ok {
		return usageError("use --provider file, aws, gcp or vault", "unknown --provider %q", o.Provider)
	}
	uri := "file-kms://" + filepath.Join(dir, "kms", "cmek")
	if o.CMEK != "" {
		uri = o.CMEK
	} else if scheme != "file-kms" {
		return usageError("give a test key of that KMS: --cmek "+scheme+"://...", "--provider %s needs --cmek", o.Provider)
	}
	if !strings.HasPrefix(uri, scheme+"://") {
		return usageError("make --provider and the --cmek URI agree", "--cmek %s is not a %s URI", redact(uri), scheme)
	}
	if err := drillKeyIsNew(ctx, f, uri, o); err != nil {
		return err
	}
	caps := capsOf(scheme)
	d.rep.CMEK, d.rep.Note = redact(uri), caps.note
	for i := 1; i <= 3; i++ {
		d.stores = append(d.stores, keyring.Store{Dir: filepath.Join(dir, fmt.Sprintf("n%d", i), "cmek")})
	}
	admin := func(s *kmsSession, op func(provider.Admin) (provider.KeyState, error)) (provider.KeyState, error) {
		k, err := s.Open(uri)
		if err != nil {
			return provider.KeyState{}, err
		}
		a, _ := provider.AsAdmin(k)
		return op(a)
	}

	var version0 string
	d.step("create CMEK key", "an enabled key", func(s *kmsSession) (string, bool) {
		k, err := s.Open(uri)
		if err != nil {
			return err.Error(), false
		}
		st, err := k.Describe(ctx)
		verb := "using the existing key"
		if err == nil && st.State == provider.StateNotFound {
			verb = "created"
			st, err = admin(s, func(a provider.Admin) (provider.KeyState, error) { return a.Create(ctx) })
		}
		if err != nil {
			return err.Error(), false
		}
		version0 = st.PrimaryVersion
		return fmt.Sprintf("%s: %s, primary version %s", verb, st.State, st.PrimaryVersion), st.State == provider.StateEnabled
	})
	d.step("enable region r1 with 3 nodes", "3 keyrings; 1 KMS wrap", func(s *kmsSession) (string, bool) {
		req := keyring.EnableRequest{Cluster: "drill-cluster", Region: "r1", CMEK: uri}
		for i, st := range d.stores {
			req.Nodes = append(req.Nodes, keyring.EnableNode{Store: st, Name: fmt.Sprintf("n%d", i+1)})
		}
		res, err := keyring.Enable(ctx, f.env(s), req)
		if err != nil {
			return err.Error(), false
		}
		c := s.Counts()
		return fmt.Sprintf("%d keyrings, %d wrap", len(res.Nodes), c.Wrap), len(res.Nodes) == 3 && c.Wrap == 1
	})
	d.step("encrypt sample data on each node", "3 sealed files, 1 unwrap each", func(s *kmsSession) (string, bool) {
		for _, st := range d.stores {
			pt := make([]byte, 200<<10)
			_, _ = rand.Read(pt)
			ct, err := sealWith(ctx, f.env(s), st, pt)
			if err != nil {
				return err.Error(), false
			}
			d.sample[st.Dir], d.sealed[st.Dir] = pt, ct
		}
		return fmt.Sprintf("%d files of 200 KiB sealed", len(d.sealed)), s.Counts().Unwrap == 3
	})
	rotate := func(op string, opt keyring.RotateOptions, wantUnwrap, wantWrap int64) func(s *kmsSession) (string, bool) {
		return func(s *kmsSession) (string, bool) {
			g, err := keyring.LoadGroup(ctx, d.stores, true)
			if err != nil {
				return err.Error(), false
			}
			defer g.Close()
			res, err := keyring.Rotate(ctx, f.env(s), g, op, opt)
			if err != nil {
				return err.Error(), false
			}
			c := s.Counts()
			return fmt.Sprintf("%d nodes rotated; %d unwrap, %d wrap", len(res.Nodes), c.Unwrap, c.Wrap), c.Unwrap == wantUnwrap && c.Wrap == wantWrap && len(res.Nodes) == 3
		}
	}
	d.step("rotate data-key", "3 nodes; 1 unwrap, 0 wrap", rotate(keyring.OpRotateDataKey, keyring.RotateOptions{}, 1, 0))
	d.step("rotate store-key", "3 nodes; 1 unwrap, 1 wrap", rotate(keyring.OpRotateStoreKey, keyring.RotateOptions{}, 1, 1))
	var wrapVersion0 string
	d.step("rotate the CMEK key to a new version", "a new primary version", func(s *kmsSession) (string, bool) {
		if kr, err := d.stores[0].Load(); err == nil {
			wrapVersion0 = kr.StoreWrap.CMEKVersion
		}
		st, err := admin(s, func(a provider.Admin) (provider.KeyState, error) { return a.Rotate(ctx) })
		if err != nil {
			return err.Error(), false
		}
		if !caps.versions {
			return "rotated; this KMS names no versions", true
		}
		return fmt.Sprintf("primary version %s (was %s)", st.PrimaryVersion, version0), st.PrimaryVersion != version0
	})
	d.step("rotate cmek (same URI, new version)", "3 nodes; 1 unwrap, 1 wrap; store key wrapped by the new version", func(s *kmsSession) (string, bool) {
		obs, ok := rotate(keyring.OpRotateCMEK, keyring.RotateOptions{}, 1, 1)(s)
		kr, err := d.stores[0].Load()
		if err != nil {
			return err.Error(), false
		}
		if !caps.versions {
			return obs, ok
		}
		return obs + "; wrapped by version " + kr.StoreWrap.CMEKVersion, ok && kr.StoreWrap.CMEKVersion != wrapVersion0
	})
	d.step("read all data back", "every file decrypts to its plaintext", func(s *kmsSession) (string, bool) {
		for _, st := range d.stores {
			pt, err := openWith(ctx, f.env(s), st, d.sealed[st.Dir])
			if err != nil {
				return err.Error(), false
			}
			if !bytes.Equal(pt, d.sample[st.Dir]) {
				return "plaintext differs on " + st.Dir, false
			}
		}
		return "3 of 3 files read back, byte for byte", true
	})
	d.step("backup verify while enabled", "a new backup RESTORABLE: every chunk authenticated, 1 unwrap", func(s *kmsSession) (string, bool) {
		return d.drillBackup(s, dir)
	})
	d.step("node start (unlock) while enabled", "store-key files written", func(s *kmsSession) (string, bool) {
		out, cleanup, err := drillTmpfs()
		if err != nil {
			return err.Error(), false
		}
		defer cleanup()
		res, err := keyring.Unlock(ctx, f.env(s), d.stores[0], keyring.UnlockOptions{Out: out, AllowDisk: true, StorePath: "*", Probe: true})
		if err != nil {
			return err.Error(), false
		}
		return fmt.Sprintf("%d store-key files, 1 unwrap", len(res.Files)), len(res.Files) > 0 && s.Counts().Unwrap == 1
	})
	// Keep a store-key file on disk for the first verify, as a careless
	// node would, and check that verify-destroyed finds it.
	var unlockDir string
	var cleanupUnlock func()
	d.step("verify-destroyed while enabled", "ACCESSIBLE (keys unwrap, a store-key file is on disk)", func(s *kmsSession) (string, bool) {
		out, cleanup, err := drillTmpfs()
		if err != nil {
			return err.Error(), false
		}
		unlockDir, cleanupUnlock = out, cleanup
		if _, err := keyring.Unlock(ctx, f.env(s), d.stores[0], keyring.UnlockOptions{Out: out, AllowDisk: true, StorePath: "*", Probe: true}); err != nil {
			return err.Error(), false
		}
		rep, err := d.verify(s)
		if err != nil {
			return err.Error(), false
		}
		return verdictLine(rep), rep.Verdict == verify.Accessible
	})
	if cleanupUnlock != nil {
		defer cleanupUnlock()
	}
	action, wantState := kmsActionDisable, provider.StateDisabled
	if !caps.disable {
		action, wantState = kmsActionNone, provider.StateEnabled
	}
	d.step("revoke --kms-action "+action, "unlocked files purged, key "+string(wantState)+", keyrings marked revoked", func(s *kmsSession) (string, bool) {
		g, err := keyring.LoadGroup(ctx, d.stores, true)
		if err != nil {
			return err.Error(), false
		}
		defer g.Close()
		rep, err := executeRevoke(ctx, f, s, g, g.Nodes, []string{uri}, &RevokeOptions{KMSAction: action, Reason: "cmekctl drill"}, revokeReport{})
		if err != nil {
			return err.Error(), false
		}
		left, _ := os.ReadDir(unlockDir)
		k, err := s.Open(uri)
		if err != nil {
			return err.Error(), false
		}
		st, err := k.Describe(ctx)
		if err != nil {
			return err.Error(), false
		}
		return fmt.Sprintf("%d steps; %d files left in the unlock directory; key %s", len(rep.Steps), len(left), st.State),
			len(left) == 0 && st.State == wantState
	})
	revokedClass, revokedVerdict := provider.Revoked, verify.Revoked
	if !caps.disable {
		revokedClass, revokedVerdict = provider.ClassNone, verify.Accessible
	}
	d.step("unlock and decrypt after revoke", "unlock refused (exit 8); the KMS refuses the store key: "+classOrOK(revokedClass), func(s *kmsSession) (string, bool) {
		out, cleanup, err := drillTmpfs()
		if err != nil {
			return err.Error(), false
		}
		defer cleanup()
		_, uerr := keyring.Unlock(ctx, f.env(s), d.stores[0], keyring.UnlockOptions{Out: out, AllowDisk: true, StorePath: "*", Probe: true})
		failed := d.decryptFailures(s, revokedClass)
		return fmt.Sprintf("unlock: exit %d; decrypt with the KMS: %s on %d of 3 nodes", ExitCode(uerr), classOrOK(revokedClass), failed),
			ExitCode(uerr) == ExitRevokedKeyring && failed == 3
	})
	d.step("verify-destroyed after revoke", revokedVerdict, func(s *kmsSession) (string, bool) {
		rep, err := d.verify(s)
		if err != nil {
			return err.Error(), false
		}
		return verdictLine(rep), rep.Verdict == revokedVerdict
	})
	destroyedClass, destroyedVerdict := provider.Destroyed, verify.Destroyed
	if !caps.destroyNow || caps.noProof {
		destroyedClass, destroyedVerdict = provider.Revoked, verify.Revoked
	}
	d.step("destroy the CMEK key", "key destroyed, or scheduled for destruction where the KMS has a window", func(s *kmsSession) (string, bool) {
		st, err := admin(s, func(a provider.Admin) (provider.KeyState, error) { return a.Destroy(ctx) })
		if err != nil {
			return err.Error(), false
		}
		if !caps.destroyNow {
			return string(st.State), st.State == provider.StatePendingDeletion
		}
		return string(st.State), st.State == provider.StateDestroyed || st.State == provider.StateNotFound
	})
	d.step("decrypt after destroy", "fails on every node: "+string(destroyedClass), func(s *kmsSession) (string, bool) {
		failed := d.decryptFailures(s, destroyedClass)
		return fmt.Sprintf("decrypt failed %s on %d of 3 nodes", destroyedClass, failed), failed == 3
	})
	d.step("backup verify after destroy", "the backup NOT RESTORABLE (not-restorable, exit 50)", d.drillBackupGone)
	d.step("verify-destroyed after destroy", destroyedVerdict, func(s *kmsSession) (string, bool) {
		rep, err := d.verify(s)
		if err != nil {
			return err.Error(), false
		}
		return verdictLine(rep), rep.Verdict == destroyedVerdict
	})

	d.rep.OK = true
	for _, s := range d.rep.Steps {
		d.rep.OK = d.rep.OK && s.OK
	}
	t := table{Headers: []string{"#", "step", "expected", "observed", "ok"}}
	for i, s := range d.rep.Steps {
		ok := "ok"
		if !s.OK {
			ok = "FAILED"
		}
		t.Rows = append(t.Rows, []string{fmt.Sprint(i + 1), s.Step, s.Expected, s.Observed, ok})
	}
	if err := p.print(d.rep, t); err != nil {
		return err
	}
	if !d.rep.OK {
		return exitf(ExitDrillFailed, "drill failed: a step did not behave (see the table)")
	}
	if p.text() && f.IO.IsStdoutTTY() {
		fmt.Fprintf(f.IO.Out, "\nDrill passed: every step behaved. Sandbox: %s\n", dir)
	}
	return nil
}

// drillTmpfs returns a private directory on /dev/shm when it is tmpfs (so
// the drill's unlock writes no key to disk), or in the temp directory.
func drillTmpfs() (string, func(), error) {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "cmekctl-drill-unlock-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

func sealWith(ctx context.Context, env keyring.Env, st keyring.Store, pt []byte) ([]byte, error) {
	sl, err := keyring.OpenSealer(ctx, env, st)
	if err != nil {
		return nil, err
	}
	defer sl.Close()
	var buf bytes.Buffer
	_, err = sl.Seal(&buf, bytes.NewReader(pt), stream.Options{})
	return buf.Bytes(), err
}

func openWith(ctx context.Context, env keyring.Env, st keyring.Store, ct []byte) ([]byte, error) {
	sl, err := keyring.OpenSealer(ctx, env, st)
	if err != nil {
		return nil, err
	}
	defer sl.Close()
	var buf bytes.Buffer
	_, err = sl.Open(&buf, bytes.NewReader(ct), stream.Options{})
	return buf.Bytes(), err
}

// verify runs verify-destroyed's checks on the drill's keyrings and samples.
func (d *drill) verify(s *kmsSession) (verify.Report, error) {
	g, err := keyring.LoadGroup(d.ctx, d.stores, false)
	if err != nil {
		return verify.Report{}, err
	}
	return collectEvidence(d.ctx, d.f, s, g, &VerifyOptions{}, nil)
}

func classOrOK(c provider.Class) string {
	if c == provider.ClassNone {
		return "still decrypts"
	}
	return string(c)
}

// decryptFailures tries to open each node's sample with the KMS, ignoring
// the keyrings' revocation marks (as an attacker with the files would), and
// counts the failures of the given class.
func (d *drill) decryptFailures(s *kmsSession, class provider.Class) int {
	n := 0
	for _, st := range d.stores {
		kr, err := st.Load()
		if err != nil {
			continue
		}
		sl, err := keyring.NewSealer(d.ctx, d.f.env(s), kr)
		if provider.Classify(err) == class {
			n++
		}
		if err == nil {
			sl.Close()
		}
	}
	return n
}

func verdictLine(rep verify.Report) string {
	return fmt.Sprintf("%s: %s", rep.Verdict, rep.Reason)
}
