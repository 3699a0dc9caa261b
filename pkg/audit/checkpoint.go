package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// Checkpoint is a signed head of the log: its last entry's sequence number
// and hash, signed with Ed25519. Stored somewhere the log's writer cannot
// change (an auditor's mailbox, a WORM bucket), it lets audit verify detect
// what the hash chain alone cannot: a truncated tail, entries deleted and
// the rest re-chained, the log deleted whole, or an older copy put back.
type Checkpoint struct {
	Path      string    `json:"path"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	PublicKey string    `json:"public_key"` // hex Ed25519
	Signature string    `json:"signature"`  // hex, over the fields above
}

func (c Checkpoint) signed() []byte {
	c.Signature = ""
	b, _ := json.Marshal(c)
	return b
}

// KeyID is a short fingerprint of a checkpoint's public key.
func (c Checkpoint) KeyID() string {
	b, _ := hex.DecodeString(c.PublicKey)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// LoadOrCreateSigningKey reads an Ed25519 seed (32 bytes, mode 0600) from
// path, or makes one there if the file does not exist.
func LoadOrCreateSigningKey(path string) (ed25519.PrivateKey, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		if err := safefile.WriteFile(safefile.OS{}, path, seed, 0o600); err != nil {
			return nil, fmt.Errorf("checkpoint key: %w", err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	if err := safefile.CheckPrivate(safefile.OS{}, path, false); err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("checkpoint key %s: %d bytes, want a %d-byte Ed25519 seed", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// MakeCheckpoint signs the head of entries.
func MakeCheckpoint(path string, entries []Entry, key ed25519.PrivateKey, now time.Time) (Checkpoint, error) {
	if len(entries) == 0 {
		return Checkpoint{}, errors.New("the audit log is empty: nothing to checkpoint")
	}
	if p := Verify(entries); len(p) > 0 {
		return Checkpoint{}, fmt.Errorf("the audit log's chain is broken at line %d (%s): a checkpoint would vouch for it", p[0].Line, p[0].Reason)
	}
	last := entries[len(entries)-1]
	if last.Seq == 0 {
		return Checkpoint{}, errors.New("the log's last entry has no sequence number (written by an older cmekctl): run any audited verb first")
	}
	c := Checkpoint{Path: path, Seq: last.Seq, Hash: last.Hash, Time: now.UTC(), PublicKey: hex.EncodeToString(key.Public().(ed25519.PublicKey))}
	c.Signature = hex.EncodeToString(ed25519.Sign(key, c.signed()))
	return c, nil
}

// CheckSignature verifies the checkpoint's signature with its public key,
// and with want (hex) when given.
func (c Checkpoint) CheckSignature(want string) error {
	pub, err := hex.DecodeString(c.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("checkpoint: not an Ed25519 public key")
	}
	if want != "" && want != c.PublicKey {
		return fmt.Errorf("checkpoint: signed by key %s, not the expected one", c.KeyID())
	}
	sig, err := hex.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.signed(), sig) {
		return errors.New("checkpoint: the signature does not verify: the checkpoint was altered")
	}
	return nil
}

// VerifyAgainst checks entries against a checkpoint: the checkpoint's head
// must be in the log, with its hash, and the chain up to it intact.
func VerifyAgainst(entries []Entry, c Checkpoint) []Problem {
	out := Verify(entries)
	if len(entries) == 0 {
		return append(out, Problem{Line: 0, Reason: fmt.Sprintf("the log is empty or gone, but a checkpoint of %s vouches for %d entries", c.Time.Format(time.RFC3339), c.Seq)})
	}
	for i, e := range entries {
		if e.Seq == c.Seq {
			if e.Hash != c.Hash {
				out = append(out, Problem{Line: i + 1, Reason: fmt.Sprintf("entry %d is not the one the checkpoint signed: the log was rewritten (entries deleted or changed, and the chain recomputed)", c.Seq)})
			}
			return out
		}
	}
	last := entries[len(entries)-1]
	return append(out, Problem{Line: len(entries), Reason: fmt.Sprintf("the log ends at entry %d, but the checkpoint signed entry %d: the tail was cut, or an older copy put back", last.Seq, c.Seq)})
}
