// Package backup is the file format of cmekctl's encrypted backups: a
// versioned, length-prefixed header naming the backup key and carrying it
// wrapped by each region's CMEK key, followed by a pkg/stream stream sealed
// with the backup key, whose first chunk authenticates the header bytes.
//
// Keys come from the caller: this package never talks to a KMS. docs/backup-format.md
// describes the bytes.
//
// Writing:
//
//	w, err := backup.NewWriter(out, hdr, backupKey, stream.Options{Parallel: n})
//	io.Copy(w, in); w.Close()
//
// Reading, when the key is found from the header (the usual case):
//
//	hdr, r, err := backup.Open(in, func(h *backup.Header) ([]byte, error) { ... unwrap h.Wraps ... }, opt)
//	io.Copy(out, r) // error, never io.EOF, on any tampering or truncation
//
// or in two steps: backup.ReadHeader, then backup.NewReader with the key.
package backup

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/stream"
)

const (
	// Magic starts every cmekctl backup file.
	Magic = "CMEKBAK\x00"
	// Version is the format version this package writes: its stream is a
	// pkg/stream version 2 stream (module-generated nonces).
	Version = 2
	// VersionV1 is the first format, still read: its stream is a pkg/stream
	// version 1 stream (counter nonces), which FIPS 140-only mode refuses.
	VersionV1 = 1
	// MaxHeaderSize bounds the header length field, so that a hostile length
	// cannot make a reader allocate without limit.
	MaxHeaderSize = 1 << 20
	// prefixSize is magic + version byte + 4-byte header length.
	prefixSize = len(Magic) + 1 + 4
	// keyCheckSize is the size of the key check value in the header.
	keyCheckSize = 16
	keyCheckInfo = "cmekctl backup key check v1"
	// minWrappedSize: a wrapped 256-bit key is longer than the key (every
	// AEAD adds a tag), so a "wrapped" key of 32 bytes or fewer is refused as
	// a likely plaintext key.
	minWrappedSize = 33

	KindFull        = "full"
	KindIncremental = "incremental"
)

var (
	// ErrNotBackup: the input does not start with the magic. A backup taken
	// before CMEK was enabled is an unencrypted dump and lands here.
	ErrNotBackup = errors.New("not a cmekctl backup (taken before CMEK was enabled?)")
	// ErrUnknownVersion: the version byte is not one this cmekctl reads.
	ErrUnknownVersion = errors.New("unknown backup format version")
	// ErrTruncatedHeader: the input ends inside the magic, version, length or header.
	ErrTruncatedHeader = errors.New("backup header truncated")
	// ErrBadHeader: the header is too large, not valid JSON, has unknown
	// fields, or fails validation.
	ErrBadHeader = errors.New("malformed backup header")
	// ErrWrongKey: the key given does not match the header's key check: the
	// wrong backup key (or a corrupted key check).
	ErrWrongKey = errors.New("wrong backup key")
)

// RegionWrap is the backup key wrapped by one region's CMEK key.
type RegionWrap struct {
	Region     string `json:"region"`
	CMEKURI    string `json:"cmek_uri"` // stored redacted (provider.RedactURI)
	KeyVersion string `json:"key_version"`
	Wrapped    []byte `json:"wrapped"`
}

// Header is a backup file's header.
type Header struct {
	// Version is the format version, from the version byte (Version or
	// VersionV1). NewWriter ignores it and writes Version.
	Version int
	// ID names this backup; NewWriter makes a random one when it is empty.
	ID          string
	ClusterID   string
	BackupKeyID string
	Kind        string // KindFull or KindIncremental
	Parent      string // the full backup's ID, for an incremental
	Created     time.Time
	// ChunkSize is the stream's chunk size; NewWriter sets it from its options.
	ChunkSize int
	Wraps     []RegionWrap

	keyCheck []byte
	raw      []byte // the header bytes as read: the stream's additional data
}

// headerJSON is the header on the wire.
type headerJSON struct {
	ID          string       `json:"id"`
	ClusterID   string       `json:"cluster_id"`
	BackupKeyID string       `json:"backup_key_id"`
	Kind        string       `json:"kind"`
	Parent      string       `json:"parent,omitempty"`
	Created     time.Time    `json:"created"`
	ChunkSize   int          `json:"chunk_size"`
	KeyCheck    []byte       `json:"key_check"`
	Wraps       []RegionWrap `json:"wraps"`
}

func keyCheck(key []byte) ([]byte, error) {
	if len(key) != stream.KeySize {
		return nil, fmt.Errorf("backup: backup key is %d bytes, want %d", len(key), stream.KeySize)
	}
	kc, err := hkdf.Key(sha256.New, key, nil, keyCheckInfo, keyCheckSize)
	if err != nil {
		return nil, fmt.Errorf("backup: key check: %w", err)
	}
	return kc, nil
}

// redactWraps copies wraps with their CMEK URIs redacted: a URI may carry
// credentials (CREDENTIALS=, AWS_SECRET_ACCESS_KEY=, ...) that must not be
// written into a backup or an escrow file.
func redactWraps(wraps []RegionWrap) []RegionWrap {
	if wraps == nil {
		return nil
	}
	out := make([]RegionWrap, len(wraps))
	for i, w := range wraps {
		w.CMEKURI = provider.RedactURI(w.CMEKURI)
		out[i] = w
	}
	return out
}

func validWraps(what string, wraps []RegionWrap) error {
	if len(wraps) == 0 {
		return fmt.Errorf("%s: no wrapped key: nothing could restore it", what)
	}
	seen := map[string]bool{}
	for i, w := range wraps {
		switch {
		case w.Region == "":
			return fmt.Errorf("%s: wrap %d: no region", what, i)
		case seen[w.Region]:
			return fmt.Errorf("%s: region %q wrapped twice", what, w.Region)
		case w.CMEKURI == "":
			return fmt.Errorf("%s: region %q: no CMEK URI", what, w.Region)
		case len(w.Wrapped) < minWrappedSize:
			return fmt.Errorf("%s: region %q: wrapped key is %d bytes, too short to be a wrapped 256-bit key (a plaintext key?)", what, w.Region, len(w.Wrapped))
		}
		seen[w.Region] = true
	}
	return nil
}

func (h *Header) validate() error {
	switch {
	case h.ID == "":
		return errors.New("no backup ID")
	case h.ClusterID == "":
		return errors.New("no cluster ID")
	case h.BackupKeyID == "":
		return errors.New("no backup key ID")
	case h.Kind != KindFull && h.Kind != KindIncremental:
		return fmt.Errorf("kind %q is neither %q nor %q", h.Kind, KindFull, KindIncremental)
	case h.Kind == KindIncremental && h.Parent == "":
		return errors.New("incremental backup without a parent")
	case h.Kind == KindFull && h.Parent != "":
		return errors.New("full backup with a parent")
	case h.Created.IsZero():
		return errors.New("no creation time")
	case h.ChunkSize < 1 || h.ChunkSize > stream.MaxChunkSize:
		return fmt.Errorf("chunk size %d out of range 1..%d", h.ChunkSize, stream.MaxChunkSize)
	case len(h.keyCheck) != keyCheckSize:
		return fmt.Errorf("key check is %d bytes, want %d", len(h.keyCheck), keyCheckSize)
	}
	return validWraps("backup", h.Wraps)
}

// encode returns the prefix and header bytes: everything before the stream.
func (h *Header) encode() ([]byte, error) {
	body, err := json.Marshal(headerJSON{
		ID: h.ID, ClusterID: h.ClusterID, BackupKeyID: h.BackupKeyID, Kind: h.Kind,
		Parent: h.Parent, Created: h.Created, ChunkSize: h.ChunkSize,
		KeyCheck: h.keyCheck, Wraps: h.Wraps,
	})
	if err != nil {
		return nil, fmt.Errorf("backup: encode header: %w", err)
	}
	if len(body) > MaxHeaderSize {
		return nil, fmt.Errorf("backup: header is %d bytes, more than %d: %w", len(body), MaxHeaderSize, ErrBadHeader)
	}
	b := make([]byte, 0, prefixSize+len(body))
	b = append(b, Magic...)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...), nil
}

// NewID returns a new random backup ID (32 hex digits), for a caller that
// reports the ID of the backup it writes.
func NewID() (string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("backup: backup ID: %w", err)
	}
	return hex.EncodeToString(id[:]), nil
}

// NewWriter writes the magic, version and header to dst, then returns the
// stream that seals the backup's contents with key (the plaintext backup
// key), its first chunk authenticating every header byte. hdr.ChunkSize is
// taken from opt, hdr.ID is filled in when empty, hdr.Created when zero,
// and the CMEK URIs are stored redacted. Close writes the final chunk and
// must be called; it does not close dst.
func NewWriter(dst io.Writer, hdr Header, key []byte, opt stream.Options) (io.WriteCloser, error) {
	h := hdr
	h.Version = Version
	h.ChunkSize = opt.ChunkSize
	if h.ChunkSize == 0 {
		h.ChunkSize = stream.DefaultChunkSize
	}
	if h.ID == "" {
		id, err := NewID()
		if err != nil {
			return nil, err
		}
		h.ID = id
	}
	if h.Created.IsZero() {
		h.Created = time.Now().UTC()
	}
	h.Wraps = redactWraps(hdr.Wraps)
	kc, err := keyCheck(key)
	if err != nil {
		return nil, err
	}
	h.keyCheck = kc
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("backup: header: %w", err)
	}
	raw, err := h.encode()
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(raw); err != nil {
		return nil, fmt.Errorf("backup: write header: %w", err)
	}
	w, err := stream.NewWriter(dst, key, raw, opt)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return w, nil
}

// ReadHeader reads the magic, version and header from src, and nothing
// beyond them, so that src is left at the start of the stream. The header is
// not yet authenticated: that happens when the first chunk is opened.
// Errors wrap ErrNotBackup, ErrUnknownVersion, ErrTruncatedHeader or
// ErrBadHeader.
func ReadHeader(src io.Reader) (*Header, error) {
	prefix := make([]byte, prefixSize)
	n, err := io.ReadFull(src, prefix)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("backup: read header: %w", err)
	}
	m := min(n, len(Magic))
	switch {
	case n == 0:
		return nil, fmt.Errorf("backup: empty input: %w", ErrNotBackup)
	case !bytes.Equal(prefix[:m], []byte(Magic[:m])):
		return nil, fmt.Errorf("backup: %w", ErrNotBackup)
	case n < prefixSize:
		return nil, fmt.Errorf("backup: %d bytes, ends inside the format prefix: %w", n, ErrTruncatedHeader)
	}
	v := prefix[len(Magic)]
	if v != Version && v != VersionV1 {
		return nil, fmt.Errorf("backup: version %d, this cmekctl reads versions %d and %d (upgrade cmekctl?): %w", v, VersionV1, Version, ErrUnknownVersion)
	}
	size := binary.BigEndian.Uint32(prefix[len(Magic)+1:])
	if size == 0 || size > MaxHeaderSize {
		return nil, fmt.Errorf("backup: header length %d out of range 1..%d: %w", size, MaxHeaderSize, ErrBadHeader)
	}
	raw := make([]byte, prefixSize+int(size))
	copy(raw, prefix)
	if n, err := io.ReadFull(src, raw[prefixSize:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("backup: header: %d of %d bytes: %w", n, size, ErrTruncatedHeader)
		}
		return nil, fmt.Errorf("backup: read header: %w", err)
	}
	h, err := parseHeader(raw[prefixSize:])
	if err != nil {
		return nil, fmt.Errorf("backup: header: %v: %w", err, ErrBadHeader)
	}
	h.Version = int(v)
	h.raw = raw
	return h, nil
}

func parseHeader(body []byte) (*Header, error) {
	var j headerJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the header object")
	}
	h := &Header{
		ID: j.ID, ClusterID: j.ClusterID, BackupKeyID: j.BackupKeyID, Kind: j.Kind,
		Parent: j.Parent, Created: j.Created, ChunkSize: j.ChunkSize,
		Wraps: j.Wraps, keyCheck: j.KeyCheck,
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// NewReader returns the backup's contents, read from src (positioned after
// the header, as ReadHeader leaves it) and opened with key. hdr must come
// from ReadHeader. A key that does not match the header's key check fails
// here with ErrWrongKey; tampering and truncation fail while reading, with
// the stream package's errors (stream.ErrAuth, stream.ErrTruncated,
// stream.ErrTrailingData), never io.EOF. opt.ChunkSize and opt.Version are
// ignored: the header's chunk size is used, and the stream version that the
// file's version implies. A version 1 file in FIPS 140-only mode fails here
// with stream.ErrFIPSV1.
func NewReader(src io.Reader, hdr *Header, key []byte, opt stream.Options) (io.Reader, error) {
	if hdr == nil || hdr.raw == nil {
		return nil, errors.New("backup: header not read by ReadHeader")
	}
	kc, err := keyCheck(key)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(kc, hdr.keyCheck) != 1 {
		return nil, fmt.Errorf("backup: backup key %s: %w", hdr.BackupKeyID, ErrWrongKey)
	}
	opt.ChunkSize = hdr.ChunkSize
	opt.Version = StreamVersion(hdr.Version)
	r, err := stream.NewReader(src, key, hdr.raw, opt)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return errPrefix{r}, nil
}

// StreamVersion is the pkg/stream format version of a backup file of format
// version v.
func StreamVersion(v int) int {
	if v == VersionV1 {
		return stream.V1
	}
	return stream.V2
}

// errPrefix names the backup package in the stream's errors, io.EOF aside.
type errPrefix struct{ r io.Reader }

func (e errPrefix) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("backup: %w", err)
	}
	return n, err
}

func (e errPrefix) WriteTo(w io.Writer) (int64, error) {
	n, err := e.r.(io.WriterTo).WriteTo(w)
	if err != nil {
		err = fmt.Errorf("backup: %w", err)
	}
	return n, err
}

// Open reads the header from src, asks unwrap for the backup key (the
// caller tries the header's Wraps against its regions' CMEK keys), and
// returns the header and the contents. unwrap's error is returned wrapped.
// The key slice stays the caller's: Open keeps no reference to it.
func Open(src io.Reader, unwrap func(*Header) ([]byte, error), opt stream.Options) (*Header, io.Reader, error) {
	h, err := ReadHeader(src)
	if err != nil {
		return nil, nil, err
	}
	key, err := unwrap(h)
	if err != nil {
		return h, nil, fmt.Errorf("backup: unwrap backup key %s: %w", h.BackupKeyID, err)
	}
	r, err := NewReader(src, h, key, opt)
	if err != nil {
		return h, nil, err
	}
	return h, r, nil
}
