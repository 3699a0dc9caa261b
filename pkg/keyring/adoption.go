package keyring

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Adoption: which store key each CockroachDB store of a node runs on.
//
// CockroachDB keeps a store's data keys in a registry encrypted with the
// store key it last ran on; at start that key must be given as key= or
// old-key=, and key= becomes the store's key. cmekctl cannot see the store,
// so it records, per store, the key the store is known to run on (On: the
// last confirmed start, an adopted key, or plain) and the key it was last
// handed as key= (Handed) until a start is confirmed (cmekctl node started).
// Until then the store may be on either. No key a store may be on is ever
// dropped from the bundle: validate refuses to write such a keyring.

// maxBundle bounds the keys of a store-key bundle.
const maxBundle = 64

// ErrUsage marks input refused before anything was changed (a store path
// CockroachDB would refuse, a format change of a store key, an unknown key
// ID, a key file that is not one): the commands exit with the usage code.
var ErrUsage = errors.New("refused")

// HintError is an error with advice for the operator's hint line.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

func refusef(hint, format string, args ...any) error {
	return &HintError{Err: fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...), Hint: hint}
}

// KeyRef names a store key and the file format a store was given it in.
// The zero KeyRef is "plain": no store key (an unencrypted store).
type KeyRef struct {
	ID     string `json:"id,omitempty"`
	Format string `json:"format,omitempty"`
}

// Plain reports whether r is no key.
func (r KeyRef) Plain() bool { return r.ID == "" }

func (r KeyRef) String() string {
	if r.Plain() {
		return "plain"
	}
	return short(r.ID) + " (" + r.Format + ")"
}

// StoreState is what cmekctl knows of one CockroachDB store of the node.
type StoreState struct {
	// Path is the store's path as CockroachDB knows it, or "*".
	Path string `json:"path,omitempty"`
	// On is the key the store is known to run on (plain: none).
	On KeyRef `json:"on,omitzero"`
	// Handed is the key it was last handed as key=, when that differs from
	// On and no start has been confirmed since: the store may be on either.
	Handed    *KeyRef   `json:"handed,omitempty"`
	HandedAt  time.Time `json:"handed_at,omitzero"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// Replaced are store keys the store moved off: CockroachDB never lets a
	// store run on one again.
	Replaced []string `json:"replaced,omitempty"`
}

func (s StoreState) isZero() bool {
	return s.Path == "" && s.On.Plain() && s.Handed == nil && s.HandedAt.IsZero() && s.StartedAt.IsZero() && len(s.Replaced) == 0
}

// MayBeOn returns the keys the store may run on: On, then Handed.
func (s StoreState) MayBeOn() []KeyRef {
	out := []KeyRef{s.On}
	if s.Handed != nil {
		out = append(out, *s.Handed)
	}
	return out
}

// Confirmed reports whether the store is known to run on one key.
func (s StoreState) Confirmed() bool { return s.Handed == nil }

func validFileFormat(f string) bool { return f == FormatCockroachV1 || f == FormatCockroachV2 }

func (k *Keyring) validateStores(inBundle map[string]bool) error {
	check := func(what string, s StoreState) error {
		for _, r := range s.MayBeOn() {
			if r.Plain() {
				if r.Format != "" {
					return fmt.Errorf("%s: plain with a format", what)
				}
				continue
			}
			if !validFileFormat(r.Format) {
				return fmt.Errorf("%s: store key %s has format %q", what, short(r.ID), r.Format)
			}
			if !inBundle[r.ID] {
				return fmt.Errorf("%s may run on store key %s, which is not in the bundle", what, short(r.ID))
			}
		}
		if s.Handed != nil && *s.Handed == s.On {
			return fmt.Errorf("%s: handed the key it is on", what)
		}
		return nil
	}
	if k.Unrecorded.Path != "" || len(k.Unrecorded.Replaced) > 0 {
		return fmt.Errorf("unrecorded store state has a path")
	}
	if err := check("a store not yet unlocked", k.Unrecorded); err != nil {
		return err
	}
	paths := map[string]bool{}
	for _, s := range k.Stores {
		if s.Path == "" || paths[s.Path] {
			return fmt.Errorf("store path %q empty or listed twice", s.Path)
		}
		paths[s.Path] = true
		if err := check("store "+s.Path, s); err != nil {
			return err
		}
	}
	return nil
}

// upgradeV1 fills in a version-1 keyring's store records. Version 1 kept
// the active store key and the previous one and handed both (in the format
// of its last unlock): a store that was ever unlocked may be on either.
func (k *Keyring) upgradeV1() {
	k.Version = FormatVersion
	if len(k.Unlocks) == 0 {
		return // never unlocked: its stores are new, or not yet encrypted
	}
	last := k.Unlocks[0]
	for _, u := range k.Unlocks[1:] {
		if u.At.After(last.At) {
			last = u
		}
	}
	format := last.Format
	if format != FormatCockroachV2 {
		format = FormatCockroachV1 // raw files were never loadable by CockroachDB
	}
	ids := k.StoreWrap.KeyIDs
	if len(ids) == 1 {
		k.Unrecorded = StoreState{Handed: &KeyRef{ID: ids[0], Format: format}}
		return
	}
	k.Unrecorded = StoreState{On: KeyRef{ID: ids[1], Format: format}, Handed: &KeyRef{ID: ids[0], Format: format}}
}

// Store returns the record of the store at path: its own, or the state of
// a store not yet recorded.
func (k *Keyring) Store(path string) StoreState {
	for _, s := range k.Stores {
		if s.Path == path {
			return s
		}
	}
	s := k.Unrecorded
	s.Path = path
	return s
}

func (k *Keyring) putStore(s StoreState) {
	for i := range k.Stores {
		if k.Stores[i].Path == s.Path {
			k.Stores[i] = s
			return
		}
	}
	k.Stores = append(k.Stores, s)
}

// NeededStoreKeys returns the IDs of the store keys some store of this node
// may run on (the recorded stores and any not yet recorded).
func (k *Keyring) NeededStoreKeys() []string {
	var out []string
	add := func(s StoreState) {
		for _, r := range s.MayBeOn() {
			if !r.Plain() && !slices.Contains(out, r.ID) {
				out = append(out, r.ID)
			}
		}
	}
	add(k.Unrecorded)
	for _, s := range k.Stores {
		add(s)
	}
	slices.Sort(out)
	return out
}

// Handover is what a store is given at start: key= and old-key=.
type Handover struct {
	Path string `json:"path"`
	Key  KeyRef `json:"key"`
	Old  KeyRef `json:"old_key"`
	// Note says why the store is not moved to the active store key.
	Note string `json:"note,omitempty"`
}

// PlanHandover says what unlock hands the store at path: the active store
// key (in format, or the store's own format when format is ""), with the key
// the store runs on as old-key. When the store may be on two keys (a hand-over
// without a confirmed start) neither of which is the active one, it is handed
// the newer of the two with the older as old-key: whichever it is on, it
// starts; the next unlock after `node started` moves it on. A format change
// of a key the store may be on is refused (CockroachDB cannot open a
// registry written under a key loaded from the other format).
func (k *Keyring) PlanHandover(path, format string) (Handover, error) {
	if format != "" && !validFileFormat(format) {
		return Handover{}, refusef("use --format cockroach-v1 or cockroach-v2", "format %q is not a CockroachDB store-key format", format)
	}
	st := k.Store(path)
	active := k.StoreWrap.KeyIDs[0]
	h := Handover{Path: path}
	var ref *KeyRef
	for _, r := range st.MayBeOn() {
		if r.ID == active {
			ref = &r
		}
	}
	switch {
	case ref != nil:
		if format != "" && format != ref.Format {
			return Handover{}, refusef(fmt.Sprintf("keep --format %s for this store, or run cmekctl rotate store-key and unlock with --format %s: the new key is written in %s and the current one stays in %s", ref.Format, format, format, ref.Format),
				"store %s runs on store key %s in %s form, and CockroachDB cannot open its registry with the same key in %s form", path, short(active), ref.Format, format)
		}
		h.Key = *ref
		for _, r := range st.MayBeOn() {
			if r.ID != active {
				h.Old = r
			}
		}
	case st.Handed != nil:
		h.Key, h.Old = *st.Handed, st.On
		h.Note = fmt.Sprintf("store %s may run on %s or %s (no start confirmed since it was handed the second): it is handed that one again; after cmekctl node started, the next unlock moves it to the active store key %s", path, st.On, st.Handed, short(active))
	default:
		f := format
		if f == "" {
			f = st.On.Format
		}
		if f == "" {
			f = FormatCockroachV1
		}
		h.Key, h.Old = KeyRef{ID: active, Format: f}, st.On
	}
	if slices.Contains(st.Replaced, h.Key.ID) {
		return Handover{}, refusef("restore the newest copy of this keyring; cmekctl status shows the keys each store runs on",
			"store %s moved off store key %s, and CockroachDB never reactivates a replaced key: this keyring is inconsistent", path, short(h.Key.ID))
	}
	return h, nil
}

// RecordHanded records that the stores were handed hs (by unlock, which
// names every store of the node). The unrecorded state becomes the records
// of the stores named, so a store path seen later is a new store.
func (k *Keyring) RecordHanded(hs []Handover, now time.Time) {
	for _, h := range hs {
		st := k.Store(h.Path)
		if h.Key != st.On {
			key := h.Key
			st.Handed, st.HandedAt = &key, now
		}
		k.putStore(st)
	}
	k.Unrecorded = StoreState{}
}

// RecordStarted records that the store at path started: it now runs on the
// key it was last handed, or on activeID when given (what `cockroach debug
// encryption-active-key` printed). An ID the keyring does not hold, or one
// the store moved off, is refused and nothing changes.
func (k *Keyring) RecordStarted(path, activeID string, now time.Time) (StoreState, error) {
	known := slices.ContainsFunc(k.Stores, func(s StoreState) bool { return s.Path == path })
	if !known && len(k.Stores) > 0 {
		var paths []string
		for _, s := range k.Stores {
			paths = append(paths, s.Path)
		}
		return StoreState{}, refusef("name a store path unlock was given ("+strings.Join(paths, ", ")+")", "no store %s on node %s: unlock was never given it", path, k.Node)
	}
	st := k.Store(path)
	target := st.On
	if st.Handed != nil {
		target = *st.Handed
	}
	if activeID != "" {
		if activeID == "plain" || strings.EqualFold(activeID, "plaintext") {
			activeID = ""
		}
		found := false
		for _, r := range st.MayBeOn() {
			if r.ID == activeID {
				target, found = r, true
			}
		}
		switch {
		case found:
		case slices.Contains(st.Replaced, activeID):
			return StoreState{}, refusef("the keyring is older than the store: restore its newest copy", "store %s reports store key %s, which it had moved off", path, short(activeID))
		case activeID != "" && slices.Contains(k.StoreWrap.KeyIDs, activeID):
			// CockroachDB's own word: the key is in the bundle, so take it.
			f := target.Format
			if f == "" {
				f = FormatCockroachV1
			}
			target = KeyRef{ID: activeID, Format: f}
		default:
			return StoreState{}, refusef("check --store-path and --keyring; if this keyring was restored from a copy, restore the newest one (the store runs on a key it does not hold)",
				"store %s reports store key %s, which this keyring does not hold", path, Short(orPlain(activeID)))
		}
	}
	if target != st.On && !st.On.Plain() && !slices.Contains(st.Replaced, st.On.ID) {
		st.Replaced = append(st.Replaced, st.On.ID)
	}
	st.On, st.Handed, st.HandedAt, st.StartedAt = target, nil, time.Time{}, now
	k.putStore(st)
	return st, nil
}

func orPlain(id string) string {
	if id == "" {
		return "plain"
	}
	return id
}

// ParseActiveKeyID takes what `cockroach debug encryption-active-key`
// prints (TYPE:ID, e.g. AES128_CTR:9f…) or a bare key ID.
func ParseActiveKeyID(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		typ := strings.ToLower(s[:i])
		s = strings.TrimSpace(s[i+1:])
		if strings.Contains(typ, "plain") && s == "" {
			return "plain"
		}
	}
	if strings.EqualFold(s, "plaintext") {
		return "plain"
	}
	return s
}

// rotatedBundle is a store-key rotation's new bundle: a new key first, then
// the outgoing active keys (kept one more rotation, so a keyring restored from
// a copy one rotation old still holds the key its stores may have moved to;
// one per bundle of a split region), then every key a store of the nodes may
// still run on. Keys no store needs are wiped. It takes ownership of b's keys.
func rotatedBundle(b *Bundle, actives []string, nodes []*Node) (*Bundle, error) {
	keep := slices.Clone(actives)
	for _, n := range nodes {
		for _, id := range n.KR.NeededStoreKeys() {
			if slices.Contains(keep, id) {
				continue
			}
			if b.Key(id) == nil {
				b.Wipe()
				return nil, fmt.Errorf("node %s: a store may run on store key %s, which the region's bundle does not hold", n.KR.Node, short(id))
			}
			keep = append(keep, id)
		}
	}
	if len(keep)+1 > maxBundle {
		b.Wipe()
		return nil, refusef("restart the nodes whose stores are behind and run cmekctl node started for each, then rotate again",
			"the stores of this region may run on %d different store keys: too many to keep", len(keep))
	}
	nb := &Bundle{IDs: []string{newStoreKeyID()}, Keys: [][]byte{newKey()}, meta: b.meta}
	for i, id := range b.IDs {
		if slices.Contains(keep, id) {
			nb.IDs, nb.Keys = append(nb.IDs, id), append(nb.Keys, b.Keys[i])
		} else {
			Wipe(b.Keys[i])
		}
	}
	return nb, nil
}

// adoptedFormat is the file format of an adopted key, as the region's
// keyring records it for its stores.
func adoptedFormat(kr *Keyring, id string) string {
	for _, s := range append([]StoreState{kr.Unrecorded}, kr.Stores...) {
		for _, r := range s.MayBeOn() {
			if r.ID == id {
				return r.Format
			}
		}
	}
	if b, err := hex.DecodeString(id); err == nil && len(b) == KeySize && hex.EncodeToString(b) == id {
		return FormatCockroachV1
	}
	return FormatCockroachV2
}
