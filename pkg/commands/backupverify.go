package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/cmekctl/cmekctl/pkg/backup"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

// BackupVerifyOptions are backup verify's options.
type BackupVerifyOptions struct {
	Keyrings []string
	Parallel int
	Paths    []string
}

const backupVerifyLong = `Prove that backup files can be restored now, without writing anything: for
each file the header is read and checked against the keyrings (the backup's
cluster, and a backup key the keyrings record; the KMS dialled is the one the
keyrings name, never one from the file), the backup key is unwrapped with a
region's CMEK key (one KMS unwrap per distinct backup key, not per file),
and every chunk is authenticated, the final chunk must be present and
nothing may follow it. The plaintext never leaves memory.

FILE may be a backup file, a directory (its regular files, not its
subdirectories; hidden files are skipped) or a glob. A named pipe given by
name is read as a stream. One
report row per file: backup ID, backup key, the region whose CMEK key
unwrapped it, bytes and chunks authenticated, RESTORABLE or not with the
reason. A bad file (not a backup, unreadable, of another cluster) gets its
row and the others are still verified.

The exit status is the worst class among the files, in this order:
  22 wrong-key       a chunk or the header does not authenticate (tampered or damaged)
   4 corrupt         truncated, data after the final chunk, not a backup, unreadable
   6 foreign         a backup of another cluster
  50 not-restorable  no region's CMEK key unwraps the backup key (refused, disabled
                     or destroyed: one class, the reason says which), or the
                     keyrings do not record it; or a version 1 backup in
                     FIPS 140-only mode (decrypt it with a standard build,
                     then encrypt it again)
  23 kms-unavailable the KMS did not answer: nothing is known
   0 ok              every file is RESTORABLE

Before a revocation drill destroys a CMEK key, every backup should be
RESTORABLE; afterwards, every backup under that key should exit 50.`

func newCmdBackupVerify(f *Factory, p func() printer) *cobra.Command {
	o := &BackupVerifyOptions{}
	c := &cobra.Command{
		Use:   "verify --keyring DIR... FILE|DIR|GLOB...",
		Short: "Prove backup files restorable: unwrap their keys and authenticate every chunk, writing nothing",
		Long:  backupVerifyLong,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Paths = args
			return backupVerifyRun(cmd.Context(), f, p(), o)
		},
	}
	c.Flags().StringArrayVar(&o.Keyrings, "keyring", nil, "keyring directory (repeat; one per region that may restore)")
	addSelectors(c)
	parallelFlag(c, &o.Parallel, "verify files, and chunks within a file,")
	_ = c.MarkFlagRequired("keyring")
	return c
}

// verifyResult is one file's row.
type verifyResult struct {
	File        string `json:"file"`
	BackupID    string `json:"backup_id,omitempty"`
	BackupKeyID string `json:"backup_key_id,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Version     int    `json:"format_version,omitempty"`
	Region      string `json:"region,omitempty"` // whose CMEK key unwrapped the backup key
	Bytes       int64  `json:"bytes"`            // plaintext bytes authenticated
	Chunks      int64  `json:"chunks"`           // chunks authenticated
	Restorable  bool   `json:"restorable"`
	Class       string `json:"class,omitempty"` // the exit-code name of the failure
	Reason      string `json:"reason,omitempty"`
	code        int
}

type backupVerifyReport struct {
	ClusterID     string            `json:"cluster_id"`
	Files         []verifyResult    `json:"files"`
	Restorable    int               `json:"restorable"`
	NotRestorable int               `json:"not_restorable"`
	KMSCalls      KMSCalls          `json:"kms_calls"`
	Unwrapped     map[string]string `json:"unwrapped_keys,omitempty"` // backup key ID → region
}

// verifySeverity orders the classes for the exit status: the worst first.
var verifySeverity = []int{ExitMisuse, ExitCorrupt, ExitForeign, ExitNotRestorable, ExitKMSUnavailable, ExitFailure}

func worse(a, b int) int {
	rank := func(c int) int {
		for i, s := range verifySeverity {
			if s == c {
				return i
			}
		}
		return len(verifySeverity)
	}
	if a == ExitOK {
		return b
	}
	if b == ExitOK || rank(a) <= rank(b) {
		return a
	}
	return b
}

func className(code int) string {
	for _, r := range exitTable {
		if r.code == code {
			return r.name
		}
	}
	return strconv.Itoa(code)
}

// keyCache unwraps each backup key once, whichever file asks first.
type keyCache struct {
	mu   sync.Mutex
	g    *keyring.Group
	env  keyring.Env
	ctx  context.Context
	done map[string]*unwrapped
}

type unwrapped struct {
	key    []byte
	region string
	err    error
	code   int
}

func (c *keyCache) get(id string) *unwrapped {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u, ok := c.done[id]; ok {
		return u
	}
	u := &unwrapped{}
	c.done[id] = u
	var bk *keyring.BackupKey
	for _, k := range c.g.BackupKeys() {
		if k.ID == id {
			bk = &k
			break
		}
	}
	if bk == nil {
		u.err = fmt.Errorf("backup key %s is not recorded in these keyrings (import it with cmekctl backup-keys import, or give the keyrings that have it)", keyring.Short(id))
		u.code = ExitNotRestorable
		return u
	}
	u.key, u.region, u.err = keyring.UnwrapBackupKey(c.ctx, c.env, c.g.Cluster, *bk, "")
	if u.err != nil {
		u.code = ExitNotRestorable
		if code := ExitCode(u.err); code == ExitKMSUnavailable {
			u.code = code
		}
		u.err = fmt.Errorf("no region's CMEK key unwraps backup key %s (%s): %s", keyring.Short(id), kmsWhy(u.err), oneLine(u.err.Error()))
	}
	return u
}

// kmsWhy names what the KMS said, for the reason column.
func kmsWhy(err error) string {
	var pe *provider.Error
	if errors.As(err, &pe) {
		switch pe.Class {
		case provider.Revoked:
			return "key refused: disabled, pending deletion or access denied"
		case provider.Destroyed:
			return "key destroyed"
		case provider.Transient:
			return "KMS unavailable"
		}
	}
	return "unwrap failed"
}

func (c *keyCache) wipe() {
	for _, u := range c.done {
		keyring.Wipe(u.key)
	}
}

func backupVerifyRun(ctx context.Context, f *Factory, p printer, o *BackupVerifyOptions) error {
	if err := checkParallel(&o.Parallel); err != nil {
		return err
	}
	g, err := keyring.LoadGroup(ctx, f.stores(o.Keyrings), false)
	if err != nil {
		return err
	}
	defer g.Close()
	s := f.newSession()
	rep, worst := verifyBackups(ctx, f.env(s), g, o.Paths, o.Parallel)
	rep.KMSCalls = s.Counts()
	if err := p.print(rep, verifyTable(rep)); err != nil {
		return err
	}
	if worst != ExitOK {
		return &ExitError{Code: worst, Err: fmt.Errorf("backup verify: %d of %d files are not restorable (worst: %s)", rep.NotRestorable, len(rep.Files), className(worst)),
			Hint: "the reason column says why for each file; exit codes: cmekctl backup verify --help"}
	}
	return nil
}

// verifyBackups verifies the files that paths name against the keyrings of
// g, parallel cores in all, and returns the report and the worst class
// (ExitOK when every file is restorable). The drill uses it too.
func verifyBackups(ctx context.Context, env keyring.Env, g *keyring.Group, paths []string, parallel int) (backupVerifyReport, int) {
	files := expandVerifyPaths(paths)
	cache := &keyCache{g: g, env: env, ctx: ctx, done: map[string]*unwrapped{}}
	defer cache.wipe()

	// Files in parallel, and the rest of the cores inside each file.
	workers := max(1, min(parallel, len(files)))
	per := max(1, parallel/workers)
	results := make([]verifyResult, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				results[i] = verifyFile(ctx, g.Cluster, cache, files[i], per)
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()

	rep := backupVerifyReport{ClusterID: g.Cluster, Files: results, Unwrapped: map[string]string{}}
	worst := ExitOK
	for i := range rep.Files {
		r := &rep.Files[i]
		if r.Restorable {
			rep.Restorable++
		} else {
			rep.NotRestorable++
			r.Class = className(r.code)
			worst = worse(worst, r.code)
		}
	}
	for id, u := range cache.done {
		if u.err == nil {
			rep.Unwrapped[id] = u.region
		}
	}
	return rep, worst
}

func verifyTable(rep backupVerifyReport) table {
	t := table{Headers: []string{"file", "backup", "backup key", "region", "bytes", "chunks", "result", "reason"}}
	for _, r := range rep.Files {
		res := "RESTORABLE"
		if !r.Restorable {
			res = "NOT RESTORABLE"
		}
		t.Rows = append(t.Rows, []string{r.File, dash(keyring.Short(r.BackupID)), dash(keyring.Short(r.BackupKeyID)), dash(r.Region),
			strconv.FormatInt(r.Bytes, 10), strconv.FormatInt(r.Chunks, 10), res, dash(r.Reason)})
	}
	return t
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// verifyPath is one file to verify, or an argument that named none.
type verifyPath struct {
	path string
	err  error
	code int
}

// expandVerifyPaths turns the arguments into files: a directory's entries
// (not its subdirectories, nor hidden files such as the temporary files
// cmekctl writes beside an output), a glob's matches, or the file itself.
func expandVerifyPaths(args []string) []verifyPath {
	var out []verifyPath
	for _, a := range args {
		fi, err := os.Stat(a)
		switch {
		case err != nil && strings.ContainsAny(a, "*?["):
			m, gerr := filepath.Glob(a)
			if gerr != nil || len(m) == 0 {
				out = append(out, verifyPath{path: a, err: errors.New("no file matches this pattern"), code: ExitCorrupt})
				continue
			}
			sort.Strings(m)
			for _, p := range m {
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					continue
				}
				out = append(out, verifyPath{path: p})
			}
		case err != nil:
			out = append(out, verifyPath{path: a, err: fmt.Errorf("cannot read it: %v", unwrapPathErr(err)), code: ExitCorrupt})
		case fi.IsDir():
			ents, err := os.ReadDir(a)
			if err != nil {
				out = append(out, verifyPath{path: a, err: fmt.Errorf("cannot list the directory: %v", unwrapPathErr(err)), code: ExitCorrupt})
				continue
			}
			n := 0
			for _, e := range ents {
				// Regular files only: a named pipe in a directory would
				// wait for a writer (name it to read it).
				if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
					continue
				}
				out = append(out, verifyPath{path: filepath.Join(a, e.Name())})
				n++
			}
			if n == 0 {
				out = append(out, verifyPath{path: a, err: errors.New("directory holds no files: no backup to verify"), code: ExitCorrupt})
			}
		default:
			out = append(out, verifyPath{path: a})
		}
	}
	return out
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// verifyFile checks one file end to end; its plaintext goes to io.Discard.
func verifyFile(ctx context.Context, cluster string, cache *keyCache, vp verifyPath, parallel int) verifyResult {
	r := verifyResult{File: vp.path}
	fail := func(code int, err error) verifyResult {
		r.code, r.Reason = code, oneLine(err.Error())
		return r
	}
	if vp.err != nil {
		return fail(vp.code, vp.err)
	}
	fh, err := os.Open(vp.path)
	if err != nil {
		return fail(ExitCorrupt, fmt.Errorf("cannot read it: %v", unwrapPathErr(err)))
	}
	defer fh.Close()
	h, err := backup.ReadHeader(fh)
	if err != nil {
		return fail(ExitCorrupt, err)
	}
	r.BackupID, r.BackupKeyID, r.Kind, r.Version = h.ID, h.BackupKeyID, h.Kind, h.Version
	if h.ClusterID != cluster {
		return fail(ExitForeign, fmt.Errorf("a backup of cluster %q; the keyrings are of cluster %q", h.ClusterID, cluster))
	}
	u := cache.get(h.BackupKeyID)
	if u.err != nil {
		return fail(u.code, u.err)
	}
	r.Region = u.region
	br, err := backup.NewReader(&ctxReader{ctx: ctx, f: fh}, h, u.key, stream.Options{Parallel: parallel})
	if err != nil {
		return fail(streamClass(err), err)
	}
	n, err := io.Copy(io.Discard, br)
	r.Bytes = n
	r.Chunks = n / int64(h.ChunkSize)
	if err != nil {
		return fail(streamClass(err), err)
	}
	if n%int64(h.ChunkSize) != 0 || n == 0 {
		r.Chunks++ // the final chunk: short, or the empty one of an empty backup
	}
	r.Restorable = true
	return r
}

// streamClass is the class of a stream failure: tampering (22), or a cut or
// extended file (4).
func streamClass(err error) int {
	switch {
	case errors.Is(err, stream.ErrTruncated), errors.Is(err, stream.ErrTrailingData):
		return ExitCorrupt
	case errors.Is(err, stream.ErrAuth), errors.Is(err, backup.ErrWrongKey):
		return ExitMisuse
	case errors.Is(err, stream.ErrFIPSV1):
		return ExitNotRestorable
	}
	if c := ExitCode(err); c != ExitFailure {
		return c
	}
	return ExitCorrupt
}

// ctxReader is the backup file, read sequentially or at offsets, that stops
// once the run is interrupted.
type ctxReader struct {
	ctx context.Context
	f   *os.File
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.f.Read(p)
}

func (c *ctxReader) ReadAt(p []byte, off int64) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.f.ReadAt(p, off)
}

func (c *ctxReader) Seek(off int64, whence int) (int64, error) { return c.f.Seek(off, whence) }
func (c *ctxReader) Stat() (os.FileInfo, error)                { return c.f.Stat() }
