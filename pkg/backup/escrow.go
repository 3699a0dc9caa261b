package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

const (
	// EscrowFormat names the escrow file format in its "format" field.
	EscrowFormat = "cmekctl-backup-key-escrow"
	// EscrowVersion is the escrow format version this package writes and reads.
	EscrowVersion = 1
	// MaxEscrowSize bounds an escrow file that ParseEscrow accepts.
	MaxEscrowSize = 16 << 20
	// KindBackupKey is the kind of every escrowed key today.
	KindBackupKey = "backup"
)

var (
	// ErrNotEscrow: the input is not a cmekctl escrow file.
	ErrNotEscrow = errors.New("not a cmekctl backup-key escrow file")
	// ErrUnknownEscrowVersion: an escrow version this cmekctl does not read.
	ErrUnknownEscrowVersion = errors.New("unknown escrow format version")
	// ErrBadEscrow: malformed JSON, unknown fields, or invalid content.
	ErrBadEscrow = errors.New("malformed escrow file")
)

// EscrowKey is one backup key in an escrow file: its wraps only, never the
// plaintext key.
type EscrowKey struct {
	ID      string       `json:"id"`
	Label   string       `json:"label,omitempty"`
	Created time.Time    `json:"created"`
	Kind    string       `json:"kind"` // KindBackupKey; Marshal fills it in when empty
	Wraps   []RegionWrap `json:"wraps"`
}

// Escrow is the portable file of wrapped backup keys (backup-keys export /
// import). It is JSON; Parse refuses unknown fields and versions.
type Escrow struct {
	Format    string      `json:"format"`  // EscrowFormat; Marshal fills it in
	Version   int         `json:"version"` // EscrowVersion; Marshal fills it in
	ClusterID string      `json:"cluster_id"`
	Keys      []EscrowKey `json:"keys"`
}

func (e *Escrow) validate() error {
	switch {
	case e.Format != EscrowFormat:
		return fmt.Errorf("format %q, want %q: %w", e.Format, EscrowFormat, ErrNotEscrow)
	case e.Version != EscrowVersion:
		return fmt.Errorf("version %d, this cmekctl reads version %d (upgrade cmekctl?): %w", e.Version, EscrowVersion, ErrUnknownEscrowVersion)
	case e.ClusterID == "":
		return fmt.Errorf("no cluster ID: %w", ErrBadEscrow)
	}
	seen := map[string]bool{}
	for i, k := range e.Keys {
		what := fmt.Sprintf("key %d", i)
		if k.ID != "" {
			what = "key " + k.ID
		}
		switch {
		case k.ID == "":
			return fmt.Errorf("%s: no ID: %w", what, ErrBadEscrow)
		case seen[k.ID]:
			return fmt.Errorf("%s: listed twice: %w", what, ErrBadEscrow)
		case k.Kind != KindBackupKey:
			return fmt.Errorf("%s: kind %q, want %q: %w", what, k.Kind, KindBackupKey, ErrBadEscrow)
		case k.Created.IsZero():
			return fmt.Errorf("%s: no creation time: %w", what, ErrBadEscrow)
		}
		if err := validWraps(what, k.Wraps); err != nil {
			return fmt.Errorf("%w: %w", err, ErrBadEscrow)
		}
		seen[k.ID] = true
	}
	return nil
}

// Marshal returns the escrow file's bytes (indented JSON, trailing newline),
// after filling in Format, Version and empty Kinds and validating the
// content. CMEK URIs are written redacted (provider.RedactURI). It never holds a plaintext key: a "wrapped" key of 32 bytes or
// fewer is refused.
func (e Escrow) Marshal() ([]byte, error) {
	if e.Format == "" {
		e.Format = EscrowFormat
	}
	if e.Version == 0 {
		e.Version = EscrowVersion
	}
	e.Keys = append([]EscrowKey(nil), e.Keys...)
	for i := range e.Keys {
		if e.Keys[i].Kind == "" {
			e.Keys[i].Kind = KindBackupKey
		}
		e.Keys[i].Wraps = redactWraps(e.Keys[i].Wraps)
	}
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("escrow: %w", err)
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("escrow: encode: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseEscrow parses an escrow file. It reads the format and version first,
// so that a file of another version says so (ErrUnknownEscrowVersion) rather
// than failing on the fields it does not know; then decodes strictly.
func ParseEscrow(b []byte) (*Escrow, error) {
	if len(b) > MaxEscrowSize {
		return nil, fmt.Errorf("escrow: %d bytes, more than %d: %w", len(b), MaxEscrowSize, ErrBadEscrow)
	}
	var probe struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&probe); err != nil {
		return nil, fmt.Errorf("escrow: %v: %w", err, ErrNotEscrow)
	}
	if probe.Format != EscrowFormat {
		return nil, fmt.Errorf("escrow: format %q: %w", probe.Format, ErrNotEscrow)
	}
	if probe.Version != EscrowVersion {
		return nil, fmt.Errorf("escrow: version %d, this cmekctl reads version %d (upgrade cmekctl?): %w", probe.Version, EscrowVersion, ErrUnknownEscrowVersion)
	}
	var e Escrow
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("escrow: %v: %w", err, ErrBadEscrow)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("escrow: data after the JSON object: %w", ErrBadEscrow)
	}
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("escrow: %w", err)
	}
	return &e, nil
}
