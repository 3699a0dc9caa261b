package keyring_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixed returns n deterministic test-only bytes (never a real key).
func fixed(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256([]byte(label + "/" + string(rune('a'+i))))
		out = append(out, h[:]...)
	}
	return out[:n]
}

func fixedID(label string) string { return hex.EncodeToString(fixed(label, 32)) }

// goldenKeyring is a valid v2 keyring made of fixed test-only data: two
// store keys (one previous), two data keys (one retired), a backup key, an
// unlock record, two stores (one confirmed, one handed the active key).
func goldenKeyring() *keyring.Keyring {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s1, s2 := fixedID("store-1"), fixedID("store-2")
	d1, d2 := fixedID("data-1"), fixedID("data-2")
	return &keyring.Keyring{
		Format: keyring.FormatName, Version: keyring.FormatVersion,
		ClusterID: "golden-cluster", Region: "golden-region", Node: "golden-node",
		EnabledAt: t0,
		StoreWrap: keyring.StoreWrap{Generation: 2, CMEKURI: "file-kms:///golden/kms/key", CMEKVersion: "1",
			WrappedAt: t0.Add(time.Hour), KeyIDs: []string{s2, s1}, Wrapped: fixed("store-wrap", 4+12+64+16)},
		StoreKeys: []keyring.StoreKey{
			{ID: s1, State: keyring.StatePrevious, Created: t0},
			{ID: s2, State: keyring.StateActive, Created: t0.Add(time.Hour)},
		},
		DataKeys: []keyring.DataKey{
			{ID: d1, State: keyring.StateRetired, Created: t0, StoreKeyID: s2, Wrapped: fixed("data-1-wrap", 12+32+16)},
			{ID: d2, State: keyring.StateActive, Created: t0.Add(2 * time.Hour), StoreKeyID: s2, Wrapped: fixed("data-2-wrap", 12+32+16)},
		},
		BackupKeys: []keyring.BackupKey{{ID: fixedID("backup-1"), Label: "nightly", Created: t0.Add(3 * time.Hour),
			Wraps: []keyring.RegionWrap{{Region: "golden-region", CMEKURI: "file-kms:///golden/kms/key", CMEKVersion: "1", Wrapped: fixed("backup-wrap", 4+12+32+16)}}}},
		Unlocks: []keyring.UnlockRecord{{Dir: "/run/cmekctl", Files: []string{"/run/cmekctl/active.key", "/run/cmekctl/old.key"}, Format: keyring.FormatCockroachV1, At: t0.Add(4 * time.Hour)}},
		Stores: []keyring.StoreState{
			{Path: "/mnt/d1", On: keyring.KeyRef{ID: s2, Format: keyring.FormatCockroachV1}, StartedAt: t0.Add(5 * time.Hour), Replaced: []string{s1}},
			{Path: "/mnt/d2", On: keyring.KeyRef{ID: s1, Format: keyring.FormatCockroachV1}, Handed: &keyring.KeyRef{ID: s2, Format: keyring.FormatCockroachV2}, HandedAt: t0.Add(4 * time.Hour)},
		},
		LastOp:  "0123456789abcdef",
		Updated: t0.Add(4 * time.Hour),
	}
}

// badFiles derives one file per failure class from the golden keyring. The
// name's prefix is the class: version- (ErrVersion) or corrupt- (ErrCorrupt).
func badFiles(t *testing.T, good []byte) map[string][]byte {
	mut := func(f func(k *keyring.Keyring)) []byte {
		k := goldenKeyring()
		f(k)
		b, err := keyring.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out := map[string][]byte{
		"version-3.json":              mut(func(k *keyring.Keyring) { k.Version = 3 }),
		"version-missing.json":        bytes.Replace(good, []byte(`"version": 2,`), nil, 1),
		"corrupt-v1-with-stores.json": mut(func(k *keyring.Keyring) { k.Version = 1 }),
		"corrupt-store-not-in-bundle.json": mut(func(k *keyring.Keyring) {
			k.StoreKeys = append(k.StoreKeys, keyring.StoreKey{ID: fixedID("store-0"), State: keyring.StateRetired})
			k.Stores[1].On.ID = fixedID("store-0")
		}),
		"corrupt-store-bad-format.json": mut(func(k *keyring.Keyring) { k.Stores[0].On.Format = keyring.FormatRaw }),
		"corrupt-store-twice.json":      mut(func(k *keyring.Keyring) { k.Stores[1].Path = k.Stores[0].Path }),
		"corrupt-bundle-sizes.json":     mut(func(k *keyring.Keyring) { k.StoreWrap.KeySizes = []int{32} }),
		"corrupt-empty.json":            {},
		"corrupt-garbage.bin":           fixed("garbage", 300),
		"corrupt-null.json":             []byte("null\n"),
		"corrupt-array.json":            []byte("[]\n"),
		"corrupt-other-json.json":       []byte(`{"keys":[{"kty":"oct","kid":"00","alg":"cockroach-aes-256-ctr-v2","k":"AAAA"}]}` + "\n"),
		"corrupt-other-format.json":     bytes.Replace(good, []byte(`"cmekctl-keyring"`), []byte(`"cmekctl-file-kms"`), 1),
		"corrupt-unknown-field.json":    bytes.Replace(good, []byte(`"format":`), []byte(`"plaintext_key": "AAAA",`+"\n  "+`"format":`), 1),
		"corrupt-trailing-data.json":    append(append([]byte{}, good...), "{}\n"...),
		"corrupt-two-active.json":       mut(func(k *keyring.Keyring) { k.DataKeys[0].State = keyring.StateActive }),
		"corrupt-no-active.json":        mut(func(k *keyring.Keyring) { k.DataKeys[1].State = keyring.StateRetired }),
		"corrupt-bundle-unlisted.json":  mut(func(k *keyring.Keyring) { k.StoreWrap.KeyIDs[1] = fixedID("nowhere") }),
		"corrupt-no-bundle.json":        mut(func(k *keyring.Keyring) { k.StoreWrap.Wrapped = nil }),
		"corrupt-data-key-orphan.json":  mut(func(k *keyring.Keyring) { k.DataKeys[0].StoreKeyID = fixedID("nowhere") }),
		"corrupt-no-node.json":          mut(func(k *keyring.Keyring) { k.Node = "" }),
		"corrupt-wrong-type.json":       bytes.Replace(good, []byte(`"generation": 2`), []byte(`"generation": "2"`), 1),
		"corrupt-bad-base64.json":       bytes.Replace(good, []byte(`"wrapped": "`), []byte(`"wrapped": "!!`), 1),
		"corrupt-head-not-active.json": mut(func(k *keyring.Keyring) {
			k.StoreWrap.KeyIDs[0], k.StoreWrap.KeyIDs[1] = k.StoreWrap.KeyIDs[1], k.StoreWrap.KeyIDs[0]
		}),
		"corrupt-three-in-bundle.json": mut(func(k *keyring.Keyring) { k.StoreWrap.KeyIDs = append(k.StoreWrap.KeyIDs, k.StoreWrap.KeyIDs[1]) }),
	}
	for _, cut := range []int{1, len(good) / 4, len(good) / 2, len(good) * 3 / 4, len(good) - 3} {
		out[fmt.Sprintf("corrupt-truncated-%04d.json", cut)] = good[:cut]
	}
	return out
}

const goldenName = "keyring-v2.json"

func TestGolden(t *testing.T) {
	good, err := keyring.Marshal(goldenKeyring())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		os.MkdirAll("testdata", 0o755)
		for _, pat := range []string{"testdata/version-*", "testdata/corrupt-*", "testdata/" + goldenName} {
			old, _ := filepath.Glob(pat)
			for _, f := range old {
				os.Remove(f)
			}
		}
		if err := os.WriteFile(filepath.Join("testdata", goldenName), good, 0o644); err != nil {
			t.Fatal(err)
		}
		for name, data := range badFiles(t, good) {
			if err := os.WriteFile(filepath.Join("testdata", name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	disk, err := os.ReadFile(filepath.Join("testdata", goldenName))
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update)", err)
	}
	if !bytes.Equal(disk, good) {
		t.Fatalf("testdata/%s differs from what Marshal writes now: the format changed (if on purpose, bump FormatVersion, then -update)", goldenName)
	}
	k, err := keyring.Parse(disk)
	if err != nil {
		t.Fatalf("golden keyring refused: %v", err)
	}
	again, _ := keyring.Marshal(k)
	if !bytes.Equal(again, disk) {
		t.Fatal("Parse∘Marshal does not round-trip the golden keyring")
	}
	if k.ActiveDataKey().ID != fixedID("data-2") || k.ActiveStoreKey().ID != fixedID("store-2") || k.DataKey(fixedID("data-1")) == nil {
		t.Fatal("golden keyring parsed to the wrong keys")
	}
}

// A version-1 keyring (testdata/keyring-v1.json, written by the cmekctl of
// format 1) is read and upgraded: its stores may be on either key of its
// bundle, in the format of its last unlock; it is written back as version 2.
func TestReadV1(t *testing.T) {
	data, err := os.ReadFile("testdata/keyring-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.Parse(data)
	if err != nil {
		t.Fatalf("a version-1 keyring is refused: %v", err)
	}
	if k.Version != keyring.FormatVersion {
		t.Fatalf("version %d after reading, want %d", k.Version, keyring.FormatVersion)
	}
	st := k.Store("/mnt/data")
	want := []keyring.KeyRef{{ID: fixedID("store-1"), Format: keyring.FormatCockroachV1}, {ID: fixedID("store-2"), Format: keyring.FormatCockroachV1}}
	if got := st.MayBeOn(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("an upgraded store may be on %v, want %v", got, want)
	}
	b, _ := keyring.Marshal(k)
	if !bytes.Contains(b, []byte(`"version": 2,`)) {
		t.Fatal("an upgraded keyring is not written as version 2")
	}
	if _, err := keyring.Parse(b); err != nil {
		t.Fatalf("the upgraded keyring is refused: %v", err)
	}
}

// Every failure class: Parse and Store.Load refuse it with its error class,
// the error is one line naming the file, and the file is left untouched.
func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*-*.*")
	var n int
	for _, f := range files {
		name := filepath.Base(f)
		var want, notWant error
		switch {
		case strings.HasPrefix(name, "version-"):
			want, notWant = keyring.ErrVersion, keyring.ErrCorrupt
		case strings.HasPrefix(name, "corrupt-"):
			want, notWant = keyring.ErrCorrupt, keyring.ErrVersion
		default:
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			data, _ := os.ReadFile(f)
			if _, err := keyring.Parse(data); !errors.Is(err, want) || errors.Is(err, notWant) {
				t.Fatalf("Parse: %v, want %v", err, want)
			}
			dir := filepath.Join(t.TempDir(), "node")
			os.Mkdir(dir, 0o700)
			p := filepath.Join(dir, keyring.FileName)
			os.WriteFile(p, data, 0o600)
			data0, mode0, mtime0 := fileInfo(t, p)
			s := keyring.Store{Dir: dir, LockWait: time.Second}
			_, err := s.Load()
			if !errors.Is(err, want) {
				t.Fatalf("Load: %v, want %v", err, want)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, p) {
				t.Fatalf("Load: message %q is not one line naming the file", msg)
			}
			if want == keyring.ErrVersion && !strings.Contains(err.Error(), "use a cmekctl that knows it") {
				t.Fatalf("Load: message %q does not say what to do", err)
			}
			// A writer refuses it too, and writes nothing.
			k := newKMS(t)
			if _, err := rotate(context.Background(), k.env(), []string{dir}, nil, keyring.OpRotateDataKey, keyring.RotateOptions{}); !errors.Is(err, want) {
				t.Fatalf("rotate: %v, want %v", err, want)
			}
			data1, mode1, mtime1 := fileInfo(t, p)
			if !bytes.Equal(data0, data1) || mode0 != mode1 || !mtime0.Equal(mtime1) {
				t.Fatal("the refused keyring was changed")
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 2 { // keyring.json, keyring.lock
				t.Fatalf("%d files in the directory after a refusal", len(ents))
			}
		})
	}
	if n < 20 {
		t.Fatalf("only %d failure-class files in testdata (run go test -run TestGolden -update)", n)
	}
}

// FuzzParse: the parser never panics, every error is ErrCorrupt or
// ErrVersion, and Parse∘Marshal round-trips whatever Parse accepts.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := keyring.Parse(data)
		if err != nil {
			if !errors.Is(err, keyring.ErrCorrupt) && !errors.Is(err, keyring.ErrVersion) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		b, err := keyring.Marshal(k)
		if err != nil {
			t.Fatalf("Marshal of an accepted keyring: %v", err)
		}
		k2, err := keyring.Parse(b)
		if err != nil {
			t.Fatalf("Parse refuses what Marshal wrote: %v\n%s", err, b)
		}
		b2, _ := keyring.Marshal(k2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("Parse∘Marshal does not round-trip:\n%s\n%s", b, b2)
		}
	})
}
