package cloud

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as, in every format.
const Redacted = "**redacted**"

// Secret holds the service account API key. Its String, GoString, Format,
// MarshalJSON, MarshalText and LogValue all print **redacted**; only Reveal
// returns the value. The value sits behind a pointer so that even a struct
// that holds a Secret in an unexported field, printed with %+v or %#v,
// shows an address and never the key.
type Secret struct {
	p *string
}

// NewSecret wraps an API key.
func NewSecret(value string) Secret {
	return Secret{p: &value}
}

// Reveal returns the key. It is called in one place: the Authorization
// header.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether no key is set.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

func (s Secret) String() string   { return Redacted }
func (s Secret) GoString() string { return "cloud.Secret(" + Redacted + ")" }

// Format prints **redacted** for every verb, %d and %x included.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(s.GoString()))
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(Redacted) }

var (
	_ fmt.Formatter  = Secret{}
	_ fmt.GoStringer = Secret{}
	_ slog.LogValuer = Secret{}
)
