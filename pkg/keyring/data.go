package keyring

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cmekctl/cmekctl/pkg/stream"
)

// The data plane: what a node's storage calls to seal data with the active
// data key and to open data with whichever data key sealed it.
//
// A data file is: the magic "CMEKDATA", a version byte, a big-endian uint32
// length, a JSON header naming the cluster, region, node and data key, then a
// pkg/stream stream whose chunk 0 authenticates all the bytes before it.
// Version 2 (written) carries a stream of format v2; version 1 (still read,
// except in FIPS 140-only mode) a stream of format v1.

var dataMagic = []byte("CMEKDATA")

const (
	dataVersion   = 2
	dataVersionV1 = 1
	maxDataHeader = 64 << 10
)

// ErrNotData is returned for input that is not a cmekctl data file.
var ErrNotData = errors.New("not a cmekctl data file")

// DataHeader names the key that sealed a data file.
type DataHeader struct {
	ClusterID string `json:"cluster_id"`
	Region    string `json:"region"`
	Node      string `json:"node"`
	DataKeyID string `json:"data_key_id"`
}

// Sealer holds an unwrapped data key for a while: the data plane's handle.
type Sealer struct {
	kr   *Keyring
	keys map[string][]byte // data key ID → key
}

// Close wipes the data keys.
func (s *Sealer) Close() {
	for _, k := range s.keys {
		Wipe(k)
	}
	s.keys = nil
}

// OpenSealer unwraps the region's store keys (one KMS call) and the node's
// data keys, for sealing with the active one and opening with any.
func OpenSealer(ctx context.Context, env Env, s Store) (*Sealer, error) {
	kr, err := s.Load()
	if err != nil {
		return nil, err
	}
	if r := kr.Revoked; r != nil {
		return nil, fmt.Errorf("%s: %w (%s): data can no longer be sealed or opened", s.Dir, ErrRevoked, r.Reason)
	}
	return NewSealer(ctx, env, kr)
}

// NewSealer unwraps the keyring's keys without looking at its revocation
// mark: verify-destroyed uses it to try what an attacker with the keyring
// and KMS access could do.
func NewSealer(ctx context.Context, env Env, kr *Keyring) (*Sealer, error) {
	b, err := UnwrapBundle(ctx, env, kr.ClusterID, kr.Region, kr.StoreWrap)
	if err != nil {
		return nil, err
	}
	defer b.Wipe()
	sl := &Sealer{kr: kr, keys: map[string][]byte{}}
	for i := range kr.DataKeys {
		dk, err := openDataKey(kr, b, &kr.DataKeys[i])
		if err != nil {
			sl.Close()
			return nil, err
		}
		sl.keys[kr.DataKeys[i].ID] = dk
	}
	return sl, nil
}

// Seal writes src to dst sealed with the active data key.
func (s *Sealer) Seal(dst io.Writer, src io.Reader, opt stream.Options) (DataHeader, error) {
	h := DataHeader{ClusterID: s.kr.ClusterID, Region: s.kr.Region, Node: s.kr.Node, DataKeyID: s.kr.ActiveDataKey().ID}
	hb, err := json.Marshal(h)
	if err != nil {
		return h, err
	}
	head := make([]byte, 0, len(dataMagic)+5+len(hb))
	head = append(head, dataMagic...)
	head = append(head, dataVersion)
	head = binary.BigEndian.AppendUint32(head, uint32(len(hb)))
	head = append(head, hb...)
	if _, err := dst.Write(head); err != nil {
		return h, err
	}
	w, err := stream.NewWriter(dst, s.keys[h.DataKeyID], head, opt)
	if err != nil {
		return h, err
	}
	if _, err := io.Copy(w, src); err != nil {
		return h, err
	}
	return h, w.Close()
}

// ReadDataHeader reads a data file's header and returns it with its raw
// bytes (the stream's additional data), whose version byte says the stream's
// format (dataStreamVersion).
func ReadDataHeader(r io.Reader) (DataHeader, []byte, error) {
	var h DataHeader
	fixed := make([]byte, len(dataMagic)+5)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return h, nil, fmt.Errorf("%w: too short", ErrNotData)
	}
	if !bytes.Equal(fixed[:len(dataMagic)], dataMagic) {
		return h, nil, fmt.Errorf("%w: bad magic", ErrNotData)
	}
	if v := fixed[len(dataMagic)]; v != dataVersion && v != dataVersionV1 {
		return h, nil, fmt.Errorf("%w: data format version %d is unknown to this cmekctl", ErrNotData, v)
	}
	n := binary.BigEndian.Uint32(fixed[len(dataMagic)+1:])
	if n == 0 || n > maxDataHeader {
		return h, nil, fmt.Errorf("%w: header length %d out of range", ErrNotData, n)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(r, hb); err != nil {
		return h, nil, fmt.Errorf("%w: truncated header", ErrNotData)
	}
	dec := json.NewDecoder(bytes.NewReader(hb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || h.DataKeyID == "" {
		return h, nil, fmt.Errorf("%w: damaged header", ErrNotData)
	}
	return h, append(fixed, hb...), nil
}

// Open writes the plaintext of the data file src to dst, using the data key
// that sealed it. No plaintext of a chunk that fails authentication is
// written.
func (s *Sealer) Open(dst io.Writer, src io.Reader, opt stream.Options) (DataHeader, error) {
	// ReadDataHeader reads exactly the header: the stream reads src itself.
	h, head, err := ReadDataHeader(src)
	if err != nil {
		return h, err
	}
	if h.ClusterID != s.kr.ClusterID || h.Region != s.kr.Region || h.Node != s.kr.Node {
		return h, fmt.Errorf("%w: the data was sealed on node %q of region %q, cluster %q; this keyring is node %q of region %q, cluster %q", ErrForeign, h.Node, h.Region, h.ClusterID, s.kr.Node, s.kr.Region, s.kr.ClusterID)
	}
	key, ok := s.keys[h.DataKeyID]
	if !ok {
		return h, fmt.Errorf("%w: data key %s that sealed the data is not in this keyring", ErrForeign, short(h.DataKeyID))
	}
	opt.Version = dataStreamVersion(head)
	r, err := stream.NewReader(src, key, head, opt)
	if err != nil {
		return h, err
	}
	_, err = io.Copy(dst, r)
	return h, err
}

// dataStreamVersion is the stream format of the data file whose header bytes
// (from ReadDataHeader) are head.
func dataStreamVersion(head []byte) int {
	if head[len(dataMagic)] == dataVersionV1 {
		return stream.V1
	}
	return stream.V2
}
