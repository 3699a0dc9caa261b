package audit

// The forward-secure MAC chain (entries of format 2).
//
// audit init draws a random 32-byte key k_s for the log's next entry s,
// exports it to a file for the auditor, and leaves it in the writer's key
// file (<log>.mackey, 0600). Each entry n then carries
//
//	mac = HMAC-SHA256(k_n, "cmekctl audit entry " || hash_n)
//
// and once it is written the writer replaces k_n by
//
//	k_{n+1} = HMAC-SHA256(k_n, "cmekctl audit next key")
//
// overwriting the key file in place: the writer only ever holds the key of
// the entry it has not written yet. HMAC is one-way, so whoever takes the
// key file (or the host) cannot compute any earlier key: entries already
// written cannot be edited, deleted and re-chained, or forged. The writer's
// key also cannot be moved back, so a cut tail is seen too (the key is
// further along than the log). The auditor, holding k_s, recomputes every
// key and MAC (audit verify --key FILE).
//
// Entries without a MAC (format 1, written before audit init or by an
// older cmekctl) keep their hash chain and verify as before; the MAC field
// is outside the hash, so an older cmekctl still checks a newer log's
// chain.

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

const (
	keyFileSuffix  = ".mackey"
	keyFileMagic   = "cmekctl-audit-mackey-1"
	exportFormat   = "cmekctl-audit-key-1"
	labelEntry     = "cmekctl audit entry "
	labelNext      = "cmekctl audit next key"
	keyFileRecSize = len(keyFileMagic) + 1 + 20 + 1 + 64 + 1
)

// chainKey is the key of entry Seq.
type chainKey struct {
	Seq uint64
	Key []byte
}

func (k chainKey) next() chainKey {
	m := hmac.New(sha256.New, k.Key)
	m.Write([]byte(labelNext))
	return chainKey{Seq: k.Seq + 1, Key: m.Sum(nil)}
}

func (k chainKey) wipe() { clear(k.Key) }

func entryMAC(key []byte, hash string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(labelEntry + hash))
	return hex.EncodeToString(m.Sum(nil))
}

// KeyFile is the writer's key file of the log at path.
func KeyFile(path string) string { return path + keyFileSuffix }

// readKeyFile reads the writer's current key; ok is false when there is
// none (the log has no MAC chain).
func readKeyFile(path string) (k chainKey, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|safefile.NoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return chainKey{}, false, nil
	}
	if err != nil {
		return chainKey{}, false, fmt.Errorf("audit key file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return chainKey{}, false, fmt.Errorf("audit key file %s: not a regular file of mode 0600: run chmod 0600 %s", path, path)
	}
	b := make([]byte, keyFileRecSize+1)
	n, _ := f.Read(b)
	defer clear(b)
	k, err = parseKeyRecord(b[:n])
	if err != nil {
		return chainKey{}, false, fmt.Errorf("audit key file %s: %w", path, err)
	}
	return k, true, nil
}

func parseKeyRecord(b []byte) (chainKey, error) {
	fields := bytes.Fields(b)
	if len(b) != keyFileRecSize || len(fields) != 3 || string(fields[0]) != keyFileMagic {
		return chainKey{}, errors.New("damaged or of an unknown format")
	}
	seq, err := strconv.ParseUint(string(fields[1]), 10, 64)
	key := make([]byte, 32)
	if _, herr := hex.Decode(key, fields[2]); err != nil || herr != nil {
		return chainKey{}, errors.New("damaged")
	}
	return chainKey{Seq: seq, Key: key}, nil
}

// writeKeyFile overwrites the key file in place (one fixed-size record),
// so the key it held is not left in another block of the file.
func writeKeyFile(path string, k chainKey) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|safefile.NoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("audit key file: %w", err)
	}
	defer f.Close()
	rec := fmt.Appendf(nil, "%s %020d %x\n", keyFileMagic, k.Seq, k.Key)
	defer clear(rec)
	if _, err := f.WriteAt(rec, 0); err != nil {
		return fmt.Errorf("audit key file: %w", err)
	}
	if err := f.Truncate(int64(len(rec))); err != nil {
		return fmt.Errorf("audit key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit key file: fsync: %w", err)
	}
	return nil
}

// macEntry fills in e.MAC with the writer's key, if the log has a chain.
// It returns the key to store once e is written (nil: no chain).
func macEntry(path string, last, e *Entry) (*chainKey, error) {
	k, ok, err := readKeyFile(KeyFile(path))
	if err != nil || !ok {
		return nil, err
	}
	if k.Seq == last.Seq && last.MAC != "" && hmac.Equal([]byte(last.MAC), []byte(entryMAC(k.Key, last.Hash))) {
		// The last append stopped between its entry and the key's advance.
		old := k
		k = k.next()
		old.wipe()
	}
	if k.Seq != e.Seq {
		k.wipe()
		return nil, fmt.Errorf("audit log: the MAC key is at entry %d but the log's next entry is %d: the log was cut or rewritten, or its key file replaced; check it with cmekctl audit verify --key FILE", k.Seq, e.Seq)
	}
	e.MAC = entryMAC(k.Key, e.Hash)
	n := k.next()
	k.wipe()
	return &n, nil
}

// ExportedKey is the starting key of a MAC chain, for the auditor: whoever
// holds it can check the log, and forge it, so it is kept away from the
// log's writer.
type ExportedKey struct {
	Format  string    `json:"format"`
	Log     string    `json:"log"`
	Seq     uint64    `json:"seq"` // the first entry the key MACs
	Key     string    `json:"key"` // hex
	Created time.Time `json:"created"`
}

// Init starts a MAC chain at the log's next entry: it writes the starting
// key to exportPath (create-only, 0600) and to the writer's key file, then
// appends an "audit init" entry, the chain's first. A log that has a chain
// already is refused unless force: a new chain restarts the auditor's
// trust at its first entry.
func (l *Log) Init(exportPath string, force bool) (ExportedKey, error) {
	x, err := l.startChain(exportPath, force)
	if err != nil {
		return ExportedKey{}, err
	}
	return x, l.Append(Entry{Verb: "audit init", Op: "command", Result: "ok"})
}

// startChain writes the starting key, under the log's lock.
func (l *Log) startChain(exportPath string, force bool) (ExportedKey, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lock, err := l.lock()
	if err != nil {
		return ExportedKey{}, err
	}
	defer lock.Release()
	last := Entry{Hash: genesis}
	f, err := os.OpenFile(l.path, os.O_RDONLY|safefile.NoFollow, 0)
	switch {
	case err == nil:
		last, err = lastEntry(f)
		f.Close()
		if err != nil {
			return ExportedKey{}, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return ExportedKey{}, fmt.Errorf("audit log: %w", err)
	}
	return l.initLocked(exportPath, force, last)
}

func (l *Log) initLocked(exportPath string, force bool, last Entry) (ExportedKey, error) {
	if _, ok, err := readKeyFile(KeyFile(l.path)); (ok || err != nil) && !force {
		return ExportedKey{}, fmt.Errorf("audit log %s has a MAC chain already (%s): its starting key was exported then; pass --force to start another", l.path, KeyFile(l.path))
	}
	k := chainKey{Seq: last.Seq + 1, Key: make([]byte, 32)}
	defer k.wipe()
	if _, err := rand.Read(k.Key); err != nil {
		return ExportedKey{}, err
	}
	x := ExportedKey{Format: exportFormat, Log: l.path, Seq: k.Seq, Key: hex.EncodeToString(k.Key), Created: l.now().UTC()}
	b, _ := json.MarshalIndent(x, "", "  ")
	defer clear(b)
	f, err := os.OpenFile(exportPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|safefile.NoFollow, 0o600)
	if err != nil {
		return ExportedKey{}, fmt.Errorf("export the audit key: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = writeKeyFile(KeyFile(l.path), k)
	}
	if err != nil {
		_ = os.Remove(exportPath)
		return ExportedKey{}, fmt.Errorf("export the audit key: %w", err)
	}
	x.Key = ""
	return x, nil
}

// ReadExportedKey reads a key audit init exported.
func ReadExportedKey(path string) (ExportedKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return ExportedKey{}, err
	}
	defer clear(b)
	var x ExportedKey
	if err := json.Unmarshal(b, &x); err != nil || x.Format != exportFormat || len(x.Key) != 64 || x.Seq == 0 {
		return ExportedKey{}, fmt.Errorf("%s: not an audit key exported by cmekctl audit init", path)
	}
	if _, err := hex.DecodeString(x.Key); err != nil {
		return ExportedKey{}, fmt.Errorf("%s: not an audit key exported by cmekctl audit init", path)
	}
	return x, nil
}

// VerifyMACs recomputes the MAC chain from the exported keys (one per
// audit init): every entry from the first key's entry on must carry the
// MAC of the key its sequence number derives, and the writer's key file
// (nil when it is missing) must be where the log ends. Entries before the
// first key's entry are left to the hash chain.
func VerifyMACs(entries []Entry, keys []ExportedKey, writer *ExportedKey) []Problem {
	if len(keys) == 0 {
		return nil
	}
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b ExportedKey) int { return cmp.Compare(a.Seq, b.Seq) })
	var out []Problem
	var cur chainKey
	derive := func(seq uint64) chainKey {
		i := chainStart(keys, seq)
		if keys[i].Seq > seq { // before the first chain
			return chainKey{}
		}
		if cur.Key == nil || cur.Seq > seq || chainStart(keys, cur.Seq) != i {
			kb, _ := hex.DecodeString(keys[i].Key)
			cur = chainKey{Seq: keys[i].Seq, Key: kb}
		}
		for cur.Seq < seq {
			cur = cur.next()
		}
		return cur
	}
	bound := uint64(len(entries)) + 1 // no honest log numbers further
	for i, e := range entries {
		if e.Seq > bound {
			out = append(out, Problem{Line: i + 1, Reason: fmt.Sprintf("entry %d: a sequence number beyond the log's length", e.Seq)})
			continue
		}
		k := derive(e.Seq)
		switch {
		case k.Key == nil:
			continue
		case e.MAC == "":
			out = append(out, Problem{Line: i + 1, Reason: fmt.Sprintf("entry %d has no MAC, but the MAC chain covers it: it was written without the writer's key, or its MAC stripped", e.Seq)})
		case !hmac.Equal([]byte(e.MAC), []byte(entryMAC(k.Key, hashOf(e)))):
			out = append(out, Problem{Line: i + 1, Reason: fmt.Sprintf("entry %d's MAC does not verify: the entry was changed, or forged without its key", e.Seq)})
		}
	}
	var lastSeq uint64
	if len(entries) > 0 {
		lastSeq = entries[len(entries)-1].Seq
	}
	if writer == nil {
		return append(out, Problem{Line: len(entries), Reason: "the writer's MAC key file is gone: the log's tail may have been cut (start another chain with audit init --force only once the log is explained)"})
	}
	switch {
	case writer.Seq > lastSeq+1:
		return append(out, Problem{Line: len(entries), Reason: fmt.Sprintf("the writer's MAC key is at entry %d, but the log ends at entry %d: the tail was cut (or the key file replaced)", writer.Seq, lastSeq)})
	case writer.Seq < lastSeq: // == lastSeq: the last append stopped before the key's advance
		return append(out, Problem{Line: len(entries), Reason: fmt.Sprintf("the log goes on to entry %d, past the writer's MAC key (entry %d): entries were added without it", lastSeq, writer.Seq)})
	}
	wk, _ := hex.DecodeString(writer.Key)
	defer clear(wk)
	if k := derive(writer.Seq); k.Key == nil || !hmac.Equal(k.Key, wk) {
		out = append(out, Problem{Line: len(entries), Reason: fmt.Sprintf("the writer's MAC key (entry %d) does not derive from the exported key(s): its key file was replaced, or a chain started that the auditor does not hold", writer.Seq)})
	}
	return out
}

// chainStart is the index of the latest chain started at or before entry
// seq (0 when seq is before every chain).
func chainStart(keys []ExportedKey, seq uint64) int {
	i := len(keys) - 1
	for i > 0 && keys[i].Seq > seq {
		i--
	}
	return i
}

// WriterKey reads the writer's key file of the log at path, as an
// ExportedKey (nil when there is none), for VerifyMACs.
func WriterKey(path string) (*ExportedKey, error) {
	k, ok, err := readKeyFile(KeyFile(path))
	if err != nil || !ok {
		return nil, err
	}
	defer k.wipe()
	return &ExportedKey{Format: exportFormat, Log: path, Seq: k.Seq, Key: hex.EncodeToString(k.Key)}, nil
}
