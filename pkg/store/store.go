// Package store is the shared keyring store of a cluster that runs on many
// hosts: a small key-value interface with the two conditional writes every
// backend honours (create-only and replace-if-unchanged), a local directory
// backend for one host, and S3, GCS and etcd backends for many.
//
// Every document carries a revision counter that every write increments, in
// a one-line header before its body. A compare therefore never passes on
// identical bytes written again later (an S3 ETag is an MD5 of the bytes and
// repeats; a revision does not).
//
// Nothing in this package knows what a keyring is; package cluster lays the
// cluster's documents out in a store. It imports neither cobra nor viper.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors every backend returns, wrapped with its name and the key.
var (
	// ErrNotFound: no document under the key.
	ErrNotFound = errors.New("no such document")
	// ErrExists: a create-only write found a document already there.
	ErrExists = errors.New("document already exists")
	// ErrConflict: a replace-if-unchanged write found the document changed
	// since it was read (or gone). Read it again and decide.
	ErrConflict = errors.New("document changed since it was read")
	// ErrUnavailable: the store did not answer, after bounded retries.
	// Nothing is known about a write that ended this way: read again.
	ErrUnavailable = errors.New("store unavailable")
	// ErrCorrupt: the object under the key is not a cmekctl store document.
	ErrCorrupt = errors.New("not a cmekctl store document")
	// ErrURI: the store URI is malformed or names something refused.
	ErrURI = errors.New("bad store URI")
	// ErrNotEnforced: the store ignores conditional writes (store check).
	ErrNotEnforced = errors.New("the store does not enforce conditional writes")
)

// Version identifies one revision of one document: the revision counter in
// the document and the backend's own token for the compare (an S3 ETag, a
// GCS generation, an etcd ModRevision, the revision itself for a directory).
type Version struct {
	Rev   uint64 // 1 at creation, +1 at every write
	Token string // the backend's compare token; opaque
}

func (v Version) String() string { return "rev " + strconv.FormatUint(v.Rev, 10) }

// Store is a cluster's shared store. Keys are relative slash-separated
// paths ("clusters/c1/keyrings/us-east1/n1.json"); each backend puts them
// under the URI's prefix.
type Store interface {
	// Get returns a document's body and version (ErrNotFound if absent).
	Get(ctx context.Context, key string) ([]byte, Version, error)
	// CreateOnly writes a new document at revision 1; ErrExists if any
	// document is under the key.
	CreateOnly(ctx context.Context, key string, body []byte) (Version, error)
	// ReplaceIfUnchanged writes body at revision prev.Rev+1 only if the
	// document is still at prev; ErrConflict otherwise.
	ReplaceIfUnchanged(ctx context.Context, key string, body []byte, prev Version) (Version, error)
	// List returns the keys under prefix (a key prefix, "" for all), sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// String names the store for messages (its URI, without credentials).
	String() string
	// Close releases connections.
	Close() error
}

// header is the first line of every stored document.
const headerPrefix = "cmekctl-store-doc/1 rev "

// encode prefixes body with its revision line.
func encode(rev uint64, body []byte) []byte {
	h := headerPrefix + strconv.FormatUint(rev, 10) + "\n"
	out := make([]byte, 0, len(h)+len(body))
	return append(append(out, h...), body...)
}

// decode splits a stored object into its revision and body.
func decode(raw []byte) (uint64, []byte, error) {
	nl := bytes.IndexByte(raw, '\n')
	if nl < 0 || !bytes.HasPrefix(raw, []byte(headerPrefix)) {
		return 0, nil, ErrCorrupt
	}
	rev, err := strconv.ParseUint(string(raw[len(headerPrefix):nl]), 10, 64)
	if err != nil || rev == 0 {
		return 0, nil, ErrCorrupt
	}
	return rev, raw[nl+1:], nil
}

// CheckKey refuses a key that is empty, absolute, has empty, "." or ".."
// segments, or characters outside [A-Za-z0-9._-/].
func CheckKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("store key %q: must be a relative path", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return fmt.Errorf("store key %q: empty segment, or one that starts with a dot", key)
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return fmt.Errorf("store key %q: character %q not allowed", key, r)
			}
		}
	}
	return nil
}

// checkPrefix allows "" or a key, optionally ending in "/".
func checkPrefix(prefix string) error {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		return nil
	}
	return CheckKey(p)
}

func wrapErr(backend, op, key string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", backend, op, key, err)
}
