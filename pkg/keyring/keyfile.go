package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// CockroachDB's store-key files (its Encryption At Rest docs and `cockroach
// gen encryption-key`): version 1 is 32 bytes of key ID then the key (16, 24
// or 32 bytes), the ID being the lowercase hex of those 32 bytes; version 2
// is a JWKS with exactly one "oct" key whose "alg" names the key size and
// whose "kid" is the key ID, verbatim (CockroachDB 24.1 or later).

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	K   string `json:"k"`
}

type jwks struct {
	Keys []jwk `json:"keys"`
}

func v2Alg(size int) string { return fmt.Sprintf("cockroach-aes-%d-ctr-v2", size*8) }

// EncodeStoreKeyFile encodes a store key as a file of format.
func EncodeStoreKeyFile(format, id string, key []byte) ([]byte, error) {
	if !validKeySize(len(key)) {
		return nil, fmt.Errorf("store key %s has %d bytes", short(id), len(key))
	}
	switch format {
	case FormatCockroachV1:
		rawID, err := hex.DecodeString(id)
		if err != nil || len(rawID) != KeySize || hex.EncodeToString(rawID) != id {
			return nil, refusef("keep this store key in cockroach-v2 form", "store key %s cannot be written in cockroach-v1 form: its ID is not 32 bytes of lowercase hex", short(id))
		}
		return append(rawID, key...), nil
	case FormatCockroachV2:
		return json.Marshal(jwks{[]jwk{{Kty: "oct", Kid: id, Alg: v2Alg(len(key)), K: base64.RawURLEncoding.EncodeToString(key)}}})
	case FormatRaw:
		return append([]byte(nil), key...), nil
	}
	return nil, fmt.Errorf("unknown store-key format %q", format)
}

// ParseStoreKeyFile reads a CockroachDB store-key file (version 1 or 2): the
// key's ID, the file's format and the key. The error never quotes the file.
func ParseStoreKeyFile(data []byte) (id, format string, key []byte, err error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' && (json.Valid(t) || !v1Size(len(data))) {
		var f jwks
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if dec.Decode(&f) != nil || dec.More() {
			return "", "", nil, fmt.Errorf("not a cockroach-v2 key file: not a JWKS")
		}
		if len(f.Keys) != 1 {
			return "", "", nil, fmt.Errorf("not a cockroach-v2 key file: %d keys, want exactly one", len(f.Keys))
		}
		j := f.Keys[0]
		k, derr := base64.RawURLEncoding.DecodeString(strings.TrimRight(j.K, "="))
		switch {
		case j.Kty != "oct":
			err = fmt.Errorf("not a cockroach-v2 key file: key type %q, want oct", j.Kty)
		case derr != nil || !validKeySize(len(k)):
			err = fmt.Errorf("not a cockroach-v2 key file: the key is not 16, 24 or 32 bytes of base64url")
		case j.Alg != v2Alg(len(k)):
			err = fmt.Errorf("not a cockroach-v2 key file: alg %q does not match its %d-bit key", j.Alg, len(k)*8)
		case j.Kid == "" || strings.ContainsAny(j.Kid, ",\n"):
			err = fmt.Errorf("not a cockroach-v2 key file: kid missing or not usable")
		}
		if err != nil {
			Wipe(k)
			return "", "", nil, err
		}
		return j.Kid, FormatCockroachV2, k, nil
	}
	if v1Size(len(data)) {
		return hex.EncodeToString(data[:KeySize]), FormatCockroachV1, append([]byte(nil), data[KeySize:]...), nil
	}
	return "", "", nil, fmt.Errorf("not a CockroachDB store-key file: %d bytes (a cockroach-v1 file has 48, 56 or 64; a cockroach-v2 file is a JWKS)", len(data))
}

func v1Size(n int) bool { return n > KeySize && validKeySize(n-KeySize) }
