package backup

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testEscrow() Escrow {
	return Escrow{
		ClusterID: "cluster-a",
		Keys: []EscrowKey{
			{ID: "bk-0001", Label: "nightly", Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Wraps: testHeader().Wraps},
			{ID: "bk-0002", Created: time.Date(2025, 2, 2, 3, 4, 5, 0, time.UTC), Kind: KindBackupKey, Wraps: testHeader().Wraps[:1]},
		},
	}
}

func TestEscrowGolden(t *testing.T) {
	path := filepath.Join("testdata", "escrow-v1.json")
	b, err := testEscrow().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("Marshal no longer writes %s (a format change needs a new version):\n%s", path, b)
	}
	e, err := ParseEscrow(want)
	if err != nil {
		t.Fatal(err)
	}
	exp := testEscrow()
	exp.Format, exp.Version, exp.Keys[0].Kind = EscrowFormat, EscrowVersion, KindBackupKey
	if !reflect.DeepEqual(*e, exp) {
		t.Fatalf("parsed %+v\nwant %+v", *e, exp)
	}
}

func TestEscrowRefuses(t *testing.T) {
	good, err := testEscrow().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"unknown field", strings.Replace(s, `"cluster_id"`, `"plaintext":"x", "cluster_id"`, 1), ErrBadEscrow},
		{"unknown key field", strings.Replace(s, `"label"`, `"key":"AAAA", "label"`, 1), ErrBadEscrow},
		{"version 2 with new fields", strings.Replace(strings.Replace(s, `"version": 1`, `"version": 2`, 1), `"cluster_id"`, `"new":1, "cluster_id"`, 1), ErrUnknownEscrowVersion},
		{"version 0", strings.Replace(s, `"version": 1`, `"version": 0`, 1), ErrUnknownEscrowVersion},
		{"other format", strings.Replace(s, EscrowFormat, "sops", 1), ErrNotEscrow},
		{"not json", "hello", ErrNotEscrow},
		{"a backup file", "CMEKBAK\x00\x01", ErrNotEscrow},
		{"trailing data", s + "{}", ErrBadEscrow},
		{"no cluster", strings.Replace(s, `"cluster_id": "cluster-a"`, `"cluster_id": ""`, 1), ErrBadEscrow},
		{"duplicate id", strings.Replace(s, `"bk-0002"`, `"bk-0001"`, 1), ErrBadEscrow},
		{"other kind", strings.Replace(s, `"kind": "backup"`, `"kind": "data"`, 1), ErrBadEscrow},
		{"plaintext-sized wrap", strings.Replace(s, `"wrapped": "`, `"wrapped": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "x": "`, 1), ErrBadEscrow},
	}
	for _, c := range cases {
		if _, err := ParseEscrow([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := ParseEscrow(make([]byte, MaxEscrowSize+1)); !errors.Is(err, ErrBadEscrow) {
		t.Errorf("oversized file: %v", err)
	}
}

func TestEscrowMarshalRefuses(t *testing.T) {
	for name, f := range map[string]func(*Escrow){
		"plaintext key": func(e *Escrow) {
			e.Keys[0].Wraps = []RegionWrap{{Region: "r", CMEKURI: "file-kms:///k", Wrapped: make([]byte, 32)}}
		},
		"no wraps":   func(e *Escrow) { e.Keys[0].Wraps = nil },
		"no id":      func(e *Escrow) { e.Keys[1].ID = "" },
		"no cluster": func(e *Escrow) { e.ClusterID = "" },
		"no created": func(e *Escrow) { e.Keys[0].Created = time.Time{} },
		"version 2":  func(e *Escrow) { e.Version = 2 },
	} {
		e := testEscrow()
		f(&e)
		if _, err := e.Marshal(); err == nil {
			t.Errorf("%s: marshalled", name)
		}
	}
}

func TestEscrowRedactsURIs(t *testing.T) {
	e := testEscrow()
	e.Keys[0].Wraps = append([]RegionWrap(nil), e.Keys[0].Wraps...)
	e.Keys[0].Wraps[0].CMEKURI = "aws-kms:///alias/k?REGION=us-east-1&AUTH=specified&AWS_ACCESS_KEY_ID=AKIA1&AWS_SECRET_ACCESS_KEY=s3cr3t"
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("s3cr3t")) {
		t.Fatal("escrow file carries the URI's secret")
	}
	if e.Keys[0].Wraps[0].CMEKURI == "" || !strings.Contains(e.Keys[0].Wraps[0].CMEKURI, "s3cr3t") {
		t.Fatal("Marshal changed the caller's value")
	}
}

func FuzzParseEscrow(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "escrow-v1.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"format":"cmekctl-backup-key-escrow","version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEscrow(b)
		if err != nil {
			if !errors.Is(err, ErrBadEscrow) && !errors.Is(err, ErrNotEscrow) && !errors.Is(err, ErrUnknownEscrowVersion) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		// What parses marshals again, and parses back to the same value.
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("parsed but does not marshal: %v", err)
		}
		again, err := ParseEscrow(out)
		if err != nil {
			t.Fatalf("marshalled output does not parse: %v", err)
		}
		if !reflect.DeepEqual(normalize(*e), normalize(*again)) {
			t.Fatalf("round trip changed the escrow:\n%+v\n%+v", *e, *again)
		}
	})
}

// normalize drops what a JSON round trip may legitimately change: time zone
// representation and URI redaction (idempotent, so one pass suffices).
func normalize(e Escrow) Escrow {
	e.Keys = append([]EscrowKey(nil), e.Keys...)
	for i := range e.Keys {
		e.Keys[i].Created = e.Keys[i].Created.UTC()
		e.Keys[i].Wraps = redactWraps(e.Keys[i].Wraps)
	}
	return e
}
