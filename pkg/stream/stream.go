// Package stream is cmekctl's chunked streaming AEAD: the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár), as age uses it, over AES-256-GCM.
//
// Wire format, version 2 (docs/backup-format.md has the full description,
// and version 1):
//
//	salt      16 bytes, random per stream
//	chunk 0   nonce0 || AES-256-GCM(K, nonce0, plaintext[0:C],  aad = A(0, last?) || header)
//	chunk 1   nonce1 || AES-256-GCM(K, nonce1, plaintext[C:2C], aad = A(1, last?))
//	...
//	chunk n   the final chunk, last flag set: 0 < len ≤ C bytes of plaintext,
//	          or empty only when the whole stream is empty
//
// where C is the chunk size (Options.ChunkSize, default 64 KiB), every chunk
// but the final one carries exactly C bytes of plaintext (C+28 bytes on the
// wire, so chunk i starts at 16 + i×(C+28)), K = HKDF-SHA256(key, salt,
// "cmekctl stream v2"), nonce_i is the 96-bit nonce that Go's cryptographic
// module drew for the chunk (cipher.NewGCMWithRandomNonce, which writes it
// before the ciphertext), and A(i, last) = the 8-byte big-endian chunk
// counter i || 0x01 if last else 0x00. The caller's header bytes follow A(0)
// in the additional data of chunk 0, so a changed header fails the first
// chunk.
//
// The counter and the last flag make reordering, dropping, truncating and
// extending the stream fail authentication; the reader tells these cases
// apart where it can (ErrAuth, ErrTruncated, ErrTrailingData). A stream is
// bounded to 2^32 chunks (MaxChunks): the limit on random 96-bit nonces
// under one key.
//
// Version 1 streams (counter nonces, cipher.NewGCM) are still read when the
// caller says so (Options.Version), except in FIPS 140-only mode, where they
// are refused with ErrFIPSV1. NewWriter writes version 2 only.
//
// The wire format does not depend on Options.Parallel: a stream written with
// any Parallel reads with any other.
package stream

import (
	"errors"
	"fmt"
)

const (
	// DefaultChunkSize is the plaintext size of every chunk but the last.
	DefaultChunkSize = 64 << 10
	// MaxChunkSize bounds Options.ChunkSize, so that a chunk size read from an
	// untrusted header cannot make a reader allocate without limit.
	MaxChunkSize = 4 << 20
	// MaxParallel bounds Options.Parallel: each worker adds two jobs of
	// buffers (up to 1 MiB each) to the window.
	MaxParallel = 64
	// KeySize is the size of the stream key: a 256-bit data or backup key.
	KeySize = 32
	// SaltSize is the size of the per-stream random salt written first.
	SaltSize = 16
)

var (
	// ErrAuth: a chunk failed authentication (wrong key, wrong header,
	// tampered, reordered or spliced chunks). No plaintext of that chunk is
	// returned.
	ErrAuth = errors.New("message authentication failed")
	// ErrTruncated: the stream ends before its final chunk (cut at a chunk
	// boundary, final chunk dropped, or cut inside the salt or a chunk's
	// nonce and tag).
	ErrTruncated = errors.New("stream truncated")
	// ErrTrailingData: data follows the final chunk.
	ErrTrailingData = errors.New("data after the final chunk")
	// ErrCounterOverflow: the stream is too long for its format: more than
	// MaxChunks chunks in version 2 (the random-nonce limit under one key),
	// 2^64 in version 1.
	ErrCounterOverflow = errors.New("chunk counter overflow")
	// ErrFIPSV1: a version 1 stream opened in FIPS 140-only mode
	// (GODEBUG=fips140=only), which does not allow its caller-made nonces.
	ErrFIPSV1 = errors.New("format v1 stream refused in FIPS 140-only mode")
	// ErrVersion: a format version this package does not know.
	ErrVersion = errors.New("unknown stream format version")
)

// Options tune a stream. The wire format depends on ChunkSize (a reader must
// use the writer's) and Version, never on Parallel.
type Options struct {
	// ChunkSize is the plaintext bytes per chunk; 0 means DefaultChunkSize.
	ChunkSize int
	// Parallel: 0 or 1 seals/opens chunks on the calling goroutine, one at a
	// time; N > 1 seals/opens chunks on N worker goroutines, in jobs of up to
	// 256 KiB of plaintext; at most 2N jobs in flight, within 8 MiB; output
	// order kept.
	// With a regular file as input, copied whole (io.Copy: ReadFrom,
	// WriteTo), the workers also read their own jobs, and write them at their
	// offsets when the output is a regular file; with one worker and a
	// regular file to write, one goroutine reads and seals or opens while
	// the caller's writes (drive.go).
	Parallel int
	// Version is the format of a stream to read: 0 or V2 for the streams
	// NewWriter writes, V1 for streams written before version 2 (the
	// container's own version byte says which). NewWriter accepts 0 or V2.
	Version int

	// chunksPerJob overrides the chunks per job (tests: batching in serial
	// mode, where the order of work is deterministic).
	chunksPerJob int
	// writeV1 makes NewWriter write version 1 (tests: the v1 reader).
	writeV1 bool
}

func (o Options) chunkSize() (int, error) {
	switch {
	case o.ChunkSize == 0:
		return DefaultChunkSize, nil
	case o.ChunkSize < 1 || o.ChunkSize > MaxChunkSize:
		return 0, fmt.Errorf("stream: chunk size %d out of range 1..%d", o.ChunkSize, MaxChunkSize)
	}
	return o.ChunkSize, nil
}

func (o Options) check() (chunk int, err error) {
	if o.Parallel > MaxParallel {
		return 0, fmt.Errorf("stream: parallel %d out of range 1..%d", o.Parallel, MaxParallel)
	}
	return o.chunkSize()
}

// version is the format to read, or (for a writer) to write.
func (o Options) version() (int, error) {
	if o.writeV1 {
		return V1, nil
	}
	switch o.Version {
	case 0, V2:
		return V2, nil
	case V1:
		return V1, nil
	}
	return 0, fmt.Errorf("stream: format version %d: %w (this cmekctl reads 1 and 2)", o.Version, ErrVersion)
}

func (o Options) parallel() int {
	if o.Parallel < 1 {
		return 1
	}
	return o.Parallel
}

// maxInflight bounds the bytes of the jobs in flight (their input and output
// buffers), so that a chunk size read from an untrusted header (up to
// MaxChunkSize) cannot make a reader hold more than this before chunk 0
// authenticates, whatever Parallel is; and so that a process with 16
// workers stays within 64 MiB of RSS. With many workers the jobs get
// smaller (batch) before the window gets shorter.
const maxInflight = 8 << 20

// window is the number of jobs in flight (being sealed or opened, or done
// and waiting for their turn to be written or read) in parallel mode: two
// per worker, fewer when jobs of jobBytes each would pass maxInflight.
func (o Options) window(jobBytes int) int {
	if o.parallel() == 1 {
		return 1
	}
	return min(2*o.parallel(), max(2, maxInflight/jobBytes))
}

// batchBytes is the plaintext a job carries in parallel mode: enough chunks
// that handing a job to another goroutine costs little next to sealing it,
// few enough that its input and output stay near the core's caches
// (measured at 2 workers, 15 runs ×4: 256 KiB jobs cost 3–8 % less CPU per
// 64 MiB than 512 KiB ones, on verify and on decrypting and encrypting to
// /dev/null).
// Serial mode works a chunk at a time, so its buffers stay in the L1/L2 cache.
const (
	batchBytes = 256 << 10
	maxBatch   = 16
)

func (o Options) batch(chunk int) int {
	if o.chunksPerJob > 0 {
		return o.chunksPerJob
	}
	if o.parallel() == 1 {
		return 1
	}
	// Two jobs per worker, each with an input and an output buffer of
	// about its plaintext, within maxInflight.
	perJob := min(batchBytes, maxInflight/(2*o.parallel())/2)
	return max(1, min(maxBatch, perJob/chunk))
}
