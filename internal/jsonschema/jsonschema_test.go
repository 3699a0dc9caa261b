package jsonschema

import (
	"strings"
	"testing"
)

const schema = `{
  "type": "object",
  "required": ["action", "at", "n", "keyring"],
  "additionalProperties": false,
  "properties": {
    "action": {"type": "string", "enum": ["rotated", "failed"]},
    "at": {"type": "string", "format": "date-time"},
    "n": {"type": "integer"},
    "keyring": {"type": "string", "format": "absolute-path"},
    "ids": {"type": "object", "additionalProperties": {"type": "string"}},
    "nodes": {"type": "array", "items": {"type": "object", "required": ["node"]}},
    "detail": {"type": ["string", "null"]}
  }
}`

func TestValidate(t *testing.T) {
	s, err := Parse([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	good := `{"action": "rotated", "at": "2026-11-01T12:00:00.5Z", "n": 3, "keyring": "/k", "ids": {"ab": "east"}, "nodes": [{"node": "n1"}], "detail": null}`
	if errs := Validate(s, []byte(good)); len(errs) != 0 {
		t.Fatalf("a good report: %v", errs)
	}
	for _, c := range []struct{ doc, want string }{
		{`{"action": "done", "at": "2026-11-01T12:00:00Z", "n": 3, "keyring": "/k"}`, `$.action: done is not one of`},
		{`{"action": "rotated", "at": "2026-11-01T13:00:00+01:00", "n": 3, "keyring": "/k"}`, `not in UTC`},
		{`{"action": "rotated", "at": "yesterday", "n": 3, "keyring": "/k"}`, `not an RFC 3339 time`},
		{`{"action": "rotated", "at": "2026-11-01T12:00:00Z", "n": 3.5, "keyring": "/k"}`, `$.n: is number, want integer`},
		{`{"action": "rotated", "at": "2026-11-01T12:00:00Z", "n": 3, "keyring": "k"}`, `not an absolute path`},
		{`{"action": "rotated", "at": "2026-11-01T12:00:00Z", "keyring": "/k"}`, `missing required field "n"`},
		{`{"action": "rotated", "at": "2026-11-01T12:00:00Z", "n": 3, "keyring": "/k", "extra": 1}`, `field "extra" is not in the schema`},
		{`{"action": "rotated", "at": "2026-11-01T12:00:00Z", "n": 3, "keyring": "/k", "ids": {"ab": 1}}`, `$.ids.ab: is integer, want string`},
		{`{"action": "rotated", "at": "2026-11-01T12:00:00Z", "n": 3, "keyring": "/k", "nodes": [{}]}`, `$.nodes[0]: missing required field "node"`},
		{`[1]`, `$: is array, want object`},
	} {
		errs := Validate(s, []byte(c.doc))
		found := false
		for _, e := range errs {
			found = found || strings.Contains(e.Error(), c.want)
		}
		if !found {
			t.Errorf("%s: got %v, want an error containing %q", c.doc, errs, c.want)
		}
	}
}

func TestInferMerge(t *testing.T) {
	a, err := Infer([]byte(`{"action": "rotated", "at": "2026-11-01T12:00:00Z", "detail": "x", "keyring": "/k"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Infer([]byte(`{"action": "skipped", "at": "2026-11-01T12:00:00Z", "keyring": "/k"}`))
	m := Merge(a, b)
	if got := m.Properties["action"].Enum; len(got) != 2 {
		t.Errorf("action enum %v, want both values", got)
	}
	if m.Properties["at"].Format != "date-time" || m.Properties["keyring"].Format != "absolute-path" {
		t.Errorf("formats lost: %+v %+v", m.Properties["at"], m.Properties["keyring"])
	}
	for _, r := range m.Required {
		if r == "detail" {
			t.Errorf("detail, seen once, is required")
		}
	}
	if errs := Validate(m, []byte(`{"action": "skipped", "at": "2026-11-01T12:00:00Z", "keyring": "/k"}`)); len(errs) != 0 {
		t.Errorf("%v", errs)
	}
}
