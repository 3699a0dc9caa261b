package keyring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/cmekctl/cmekctl/pkg/safefile"
)

// JournalName is the intent journal's file name, kept in the keyring
// directory of the first node (by path) of a multi-node operation.
const JournalName = "journal.json"

// ErrPending is returned when another kind of operation is half done.
var ErrPending = errors.New("an interrupted operation is pending")

// Journal records a multi-node operation before any keyring is written, so
// that running the same command again finishes it without doubling it. It
// holds wrapped keys only, never a plaintext key.
type Journal struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Op      string    `json:"op"`
	Started time.Time `json:"started"`
	// Nodes are the keyring directories the operation applies to.
	Nodes []string `json:"nodes"`
	// Wraps are the new store-key bundles, per region.
	Wraps map[string]StoreWrap `json:"wraps,omitempty"`

	dir string
}

// Dir is the keyring directory holding the journal.
func (j *Journal) Dir() string { return j.dir }

func readJournal(fsys safefile.FS, dir string) (*Journal, error) {
	data, err := fsys.ReadFile(filepath.Join(dir, JournalName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j Journal
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Format != "cmekctl-journal" || j.Version != 1 {
		return nil, fmt.Errorf("%w: journal %s is damaged: remove it only after checking every node with cmekctl status", ErrCorrupt, filepath.Join(dir, JournalName))
	}
	j.dir = dir
	return &j, nil
}

// FindJournal returns the pending journal among the group's keyrings.
func (g *Group) FindJournal() (*Journal, error) {
	for _, n := range g.Nodes {
		var j *Journal
		err := n.Store.with(func(d safefile.DirFS) (err error) {
			j, err = readJournal(d, n.Store.Dir)
			return err
		})
		if err != nil || j != nil {
			return j, err
		}
	}
	return nil, nil
}

func (g *Group) writeJournal(j *Journal) error {
	first := g.Nodes[0]
	for _, n := range g.Nodes[1:] {
		if n.Store.Dir < first.Store.Dir {
			first = n
		}
	}
	j.Format, j.Version, j.dir = "cmekctl-journal", 1, first.Store.Dir
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return first.Store.with(func(d safefile.DirFS) error {
		return safefile.WriteFile(d, filepath.Join(j.dir, JournalName), data, 0o600)
	})
}

func (g *Group) removeJournal(j *Journal) error {
	for _, n := range g.Nodes {
		if n.Store.Dir == j.dir {
			return n.Store.with(func(d safefile.DirFS) error {
				if err := d.Remove(filepath.Join(j.dir, JournalName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				return d.SyncDir(j.dir)
			})
		}
	}
	return nil
}
