package keyring

import (
	"io"
	"os"
	"syscall"
)

// Telling this cluster's store-key files from another's: a CockroachDB
// store-key file names its key (cockroach-v1: the first 32 bytes are the
// key ID; cockroach-v2: the JWKS kid), and the keyrings know every store key
// of their cluster by ID. verify-destroyed reports a file in an unlock
// directory whose key no keyring given knows as another cluster's, not as
// evidence against this one (two clusters' nodes unlocked into one
// directory, a stray file from another drill).

// StoreKeyIDs returns every store-key ID the group's keyrings know: listed
// in any state, in the wrapped bundle, in a wrap the CMEK history kept, or
// recorded as what a store runs on or was handed.
func (g *Group) StoreKeyIDs() map[string]bool {
	ids := map[string]bool{}
	for _, n := range g.Nodes {
		kr := n.KR
		for _, s := range kr.StoreKeys {
			ids[s.ID] = true
		}
		for _, id := range kr.StoreWrap.KeyIDs {
			ids[id] = true
		}
		if kr.History != nil {
			for _, w := range kr.History.StoreWraps {
				for _, id := range w.KeyIDs {
					ids[id] = true
				}
			}
		}
		for _, s := range append([]StoreState{kr.Unrecorded}, kr.Stores...) {
			for _, r := range s.MayBeOn() {
				if !r.Plain() {
					ids[r.ID] = true
				}
			}
		}
	}
	return ids
}

// StoreKeyFileID returns the ID of the store key a CockroachDB store-key
// file holds (cockroach-v1 or cockroach-v2), or "" when path is not such a
// file (a raw key, a temporary or damaged file, something unreadable). Only
// a regular file of at most 64 KiB is read (a link or FIFO put there is not
// followed or opened; a file swapped while opened is not read); the key it
// holds is wiped.
func StoreKeyFileID(path string) string {
	li, err := os.Lstat(path)
	if err != nil || !li.Mode().IsRegular() {
		return ""
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !os.SameFile(li, fi) || !fi.Mode().IsRegular() || fi.Size() > 64<<10 {
		return ""
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	defer Wipe(data)
	if err != nil {
		return ""
	}
	id, _, key, err := ParseStoreKeyFile(data)
	Wipe(key)
	if err != nil {
		return ""
	}
	return id
}
