// Package audit is cmekctl's append-only audit log: one JSON line per key
// operation (wrap, unwrap, rotate, revoke, verify, backup-key use, and every
// failure), fsynced, mode 0600, never a secret. Each line carries the hash of
// the previous one, so a deletion or an edit in the middle is detected by
// Verify.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Entry is one line of the log.
type Entry struct {
	// Seq numbers the entries 1, 2, 3...: a checkpoint names the head by it.
	Seq        uint64    `json:"seq,omitempty"`
	Time       time.Time `json:"time"`
	User       string    `json:"user"`
	Host       string    `json:"host"`
	Verb       string    `json:"verb"`
	Op         string    `json:"op,omitempty"` // wrap, unwrap, describe, rewrap, or the verb's summary
	Cluster    string    `json:"cluster,omitempty"`
	Region     string    `json:"region,omitempty"`
	Node       string    `json:"node,omitempty"`
	KeyIDs     []string  `json:"key_ids,omitempty"`
	CMEKURI    string    `json:"cmek_uri,omitempty"`
	KeyVersion string    `json:"key_version,omitempty"`
	// Dir is the directory a verb wrote plaintext keys to (unlock's --out).
	Dir        string `json:"dir,omitempty"`
	RequestID  string `json:"kms_request_id,omitempty"`
	Result     string `json:"result"` // ok, error, or a verdict
	ErrorClass string `json:"error_class,omitempty"`
	Error      string `json:"error,omitempty"`
	Prev       string `json:"prev"`
	Hash       string `json:"hash"`
	// MAC (format 2) is HMAC-SHA256 of Hash under the entry's key in the
	// forward-secure chain audit init starts (see macchain.go); outside
	// the hash, so a format-1 reader still checks the chain.
	MAC string `json:"mac,omitempty"`
}

// genesis is the "previous hash" of the first line.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// DefaultPath is $XDG_STATE_HOME/cmekctl/audit.log, or
// ~/.local/state/cmekctl/audit.log.
func DefaultPath(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cmekctl", "audit.log")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "cmekctl", "audit.log")
	}
	return ""
}

// Log appends entries to one file.
type Log struct {
	path string
	mu   sync.Mutex
	user string
	host string
	now  func() time.Time
}

// Open prepares the log at path (its directory is created 0700).
func Open(path string, now func() time.Time) (*Log, error) {
	if path == "" {
		return nil, errors.New("audit log: no path: set --audit-log, XDG_STATE_HOME or HOME")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{path: path, now: now}
	if u, err := user.Current(); err == nil {
		l.user = u.Username
	}
	l.host, _ = os.Hostname()
	if now == nil {
		l.now = time.Now
	}
	return l, nil
}

// Path is the log's file.
func (l *Log) Path() string { return l.path }

func hashOf(e Entry) string {
	e.Hash, e.MAC = "", ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Append writes one entry (time, user, host, chain filled in), fsynced,
// under an exclusive lock so concurrent cmekctl processes chain correctly.
func (l *Log) Append(e Entry) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lock, err := l.lock()
	if err != nil {
		return err
	}
	defer lock.Release()
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND|safefile.NoFollow, 0o600) // never through a planted symlink
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("audit log: %s has mode %04o: run chmod 0600 %s", l.path, fi.Mode().Perm(), l.path)
	}
	last, err := lastEntry(f)
	if err != nil {
		return err
	}
	e.Time, e.User, e.Host, e.Prev, e.Seq = l.now().UTC(), l.user, l.host, last.Hash, last.Seq+1
	e.Hash = hashOf(e)
	next, err := macEntry(l.path, &last, &e)
	if err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit log: fsync: %w", err)
	}
	if next != nil {
		// Forward only: the key of the entry just written is overwritten.
		defer next.wipe()
		return writeKeyFile(KeyFile(l.path), *next)
	}
	return nil
}

// lock takes the log's lock file (the writer's MAC key is under it too).
func (l *Log) lock() (*safefile.Lock, error) {
	lock, err := safefile.Acquire(context.Background(), l.path+".lock", 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return lock, nil
}

// lastEntry reads the log's last line (reading the tail only); an empty
// log gives the genesis hash and sequence 0.
func lastEntry(f *os.File) (Entry, error) {
	fi, err := f.Stat()
	if err != nil {
		return Entry{}, err
	}
	if fi.Size() == 0 {
		return Entry{Hash: genesis}, nil
	}
	const tail = 64 << 10
	off := max(fi.Size()-tail, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return Entry{}, err
	}
	buf = bytes.TrimRight(buf, "\n")
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	var e Entry
	if err := json.Unmarshal(buf, &e); err != nil || e.Hash == "" {
		return Entry{}, fmt.Errorf("audit log: the last line of %s is damaged: check it with cmekctl audit verify", f.Name())
	}
	return e, nil
}

// Read returns every entry of the log at path, in order.
func Read(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("audit log line %d: not a JSON entry", n)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Problem is a break in the chain.
type Problem struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Verify checks every line's hash and its link to the previous line.
func Verify(entries []Entry) []Problem {
	var out []Problem
	prev := genesis
	var prevSeq uint64
	for i, e := range entries {
		switch {
		case e.Seq != 0 && prevSeq != 0 && e.Seq != prevSeq+1:
			out = append(out, Problem{Line: i + 1, Reason: fmt.Sprintf("sequence %d follows %d: entries were deleted or inserted", e.Seq, prevSeq)})
		case e.Prev != prev:
			out = append(out, Problem{Line: i + 1, Reason: "does not follow the previous line: a line was deleted or inserted before it"})
		case hashOf(e) != e.Hash:
			out = append(out, Problem{Line: i + 1, Reason: "its content does not match its hash: the line was edited"})
		}
		prev, prevSeq = e.Hash, e.Seq
	}
	return out
}
