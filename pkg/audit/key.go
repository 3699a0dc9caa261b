package audit

import (
	"context"
	"errors"
	"strings"

	"github.com/cmekctl/cmekctl/pkg/provider"
)

// Key wraps a provider.Key and appends an entry for every KMS call: the
// binding (cluster, region, node, key ID) is read from the AAD, never the
// key material.
type Key struct {
	provider.Key
	Log  *Log
	Verb string
	// Err receives a failure to write the log (the KMS call's own result
	// is returned unchanged).
	Err func(error)
}

var _ provider.Key = (*Key)(nil)

// Inner returns the wrapped key.
func (k *Key) Inner() provider.Key { return k.Key }

func (k *Key) record(op string, aad []byte, version string, err error) {
	e := Entry{Verb: k.Verb, Op: op, CMEKURI: provider.RedactURI(k.Key.URI()), KeyVersion: version, Result: "ok"}
	if b, ok := provider.ParseAAD(aad); ok {
		e.Cluster, e.Region, e.Node = b["cluster"], b["region"], b["node"]
		if id := b["key_id"]; id != "" {
			e.KeyIDs = strings.Split(id, ",")
		}
	}
	if err != nil {
		e.Result, e.ErrorClass, e.Error = "error", string(provider.Classify(err)), err.Error()
		var pe *provider.Error
		if errors.As(err, &pe) {
			e.RequestID = pe.RequestID
		}
	}
	if werr := k.Log.Append(e); werr != nil && k.Err != nil {
		k.Err(werr)
	}
}

func (k *Key) Wrap(ctx context.Context, p, aad []byte) (provider.Wrapped, error) {
	w, err := k.Key.Wrap(ctx, p, aad)
	k.record("wrap", aad, w.KeyVersion, err)
	return w, err
}

func (k *Key) Unwrap(ctx context.Context, w provider.Wrapped, aad []byte) ([]byte, error) {
	p, err := k.Key.Unwrap(ctx, w, aad)
	k.record("unwrap", aad, w.KeyVersion, err)
	return p, err
}

func (k *Key) Describe(ctx context.Context) (provider.KeyState, error) {
	st, err := k.Key.Describe(ctx)
	k.record("describe", nil, st.PrimaryVersion, err)
	return st, err
}

// Rewrap forwards to the inner key's Rewrap (see provider.AsRewrapper).
func (k *Key) Rewrap(ctx context.Context, w provider.Wrapped, aad []byte) (provider.Wrapped, error) {
	r, ok := provider.AsRewrapper(k.Key)
	if !ok {
		return provider.Wrapped{}, provider.Errorf("cmekctl", "rewrap", provider.Misuse, "", "%s cannot rewrap in one call", provider.RedactURI(k.Key.URI()))
	}
	out, err := r.Rewrap(ctx, w, aad)
	k.record("rewrap", aad, out.KeyVersion, err)
	return out, err
}
