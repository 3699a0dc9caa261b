package store

import "context"

// ConditionalGetter is a store that can read a document only if it changed
// since a version the caller holds, and answer "not modified" without
// sending the body when it did not: S3's GetObject with If-None-Match: ETag
// (304 Not Modified), GCS's ifGenerationNotMatch=GENERATION (304), the
// directory's revision line. A loop that polls one document (cmekctl node
// agent) then moves a few hundred bytes per poll, not the keyring.
//
// Callers use the GetIfChanged function, which falls back to a plain Get and
// a compare of versions on a store without a native conditional read.
type ConditionalGetter interface {
	// GetIfChanged reads key unless it is still at prev. Unchanged, it
	// returns changed == false, no body, and prev; changed (or prev the
	// zero Version), the body and its version as Get does. A missing
	// document is ErrNotFound either way.
	GetIfChanged(ctx context.Context, key string, prev Version) (body []byte, cur Version, changed bool, err error)
}

// GetIfChanged reads key from s unless it is still at prev: natively where s
// is a ConditionalGetter, otherwise by a plain Get (the body travels) and a
// compare of the version read with prev. The zero prev always reads.
func GetIfChanged(ctx context.Context, s Store, key string, prev Version) ([]byte, Version, bool, error) {
	if prev.Token != "" {
		if c, ok := s.(ConditionalGetter); ok {
			return c.GetIfChanged(ctx, key, prev)
		}
	}
	body, cur, err := s.Get(ctx, key)
	if err != nil {
		return nil, Version{}, false, err
	}
	if prev.Token != "" && cur == prev {
		return nil, prev, false, nil
	}
	return body, cur, true, nil
}
