package provider

import (
	"net/url"
	"strings"
)

// aadPrefix starts every binding cmekctl passes as additional data, so that a
// binding is recognisable and versioned.
const aadPrefix = "cmekctl-aad-v1?"

// Binding is where a wrapped key belongs. Every wrap is bound to it (AWS
// encryption context, GCP additional authenticated data, Vault associated
// data, AEAD additional data locally), so a key moved elsewhere fails to
// unwrap.
type Binding map[string]string

// AAD encodes the binding canonically (sorted, escaped).
func (b Binding) AAD() []byte {
	v := url.Values{}
	for k, x := range b {
		v.Set(k, x)
	}
	return []byte(aadPrefix + v.Encode())
}

// ParseAAD decodes an AAD made by Binding.AAD. ok is false for any other
// byte string; adapters then carry the bytes opaquely.
func ParseAAD(aad []byte) (b Binding, ok bool) {
	s := string(aad)
	if !strings.HasPrefix(s, aadPrefix) {
		return nil, false
	}
	v, err := url.ParseQuery(strings.TrimPrefix(s, aadPrefix))
	if err != nil {
		return nil, false
	}
	b = Binding{}
	for k, xs := range v {
		if len(xs) != 1 {
			return nil, false
		}
		b[k] = xs[0]
	}
	return b, true
}
