package jsonschema

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// enumFields are the fields whose values Infer records as an enum.
var enumFields = map[string]bool{"action": true, "kind": true, "verdict": true, "state": true, "result": true, "status": true}

// pathFields are the string fields Infer marks "absolute-path" when they
// hold one.
var pathFields = map[string]bool{"keyring": true, "input": true, "output": true, "dir": true, "config": true, "out": true}

// Infer returns the schema of one report: every field seen is required,
// no other field allowed; times and paths get their format, enum fields
// the value seen.
func Infer(doc []byte) (*Schema, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return infer(v, ""), nil
}

func infer(v any, key string) *Schema {
	s := &Schema{Type: typeOf(v)}
	switch x := v.(type) {
	case map[string]any:
		s.AdditionalProperties = false
		s.Properties = map[string]*Schema{}
		for k, e := range x {
			s.Properties[k] = infer(e, k)
			s.Required = append(s.Required, k)
		}
		sort.Strings(s.Required)
	case []any:
		for _, e := range x {
			s.Items = Merge(s.Items, infer(e, key))
		}
	case string:
		if _, err := time.Parse(time.RFC3339Nano, x); err == nil && strings.HasSuffix(x, "Z") {
			s.Format = "date-time"
		} else if pathFields[key] && (strings.HasPrefix(x, "/") || x == "-") {
			s.Format = "absolute-path"
		}
		if enumFields[key] {
			s.Enum = []any{x}
		}
	}
	return s
}

// Merge returns a schema that admits what a and b admit: the union of
// types, fields and enum values; a field is required only if both require it.
func Merge(a, b *Schema) *Schema {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	out := &Schema{Description: a.Description}
	types := append(a.Types(), b.Types()...)
	slices.Sort(types)
	types = slices.Compact(types)
	if len(types) == 1 {
		out.Type = types[0]
	} else {
		// Keep a stable, readable order: the non-null types, then null.
		sort.SliceStable(types, func(i, j int) bool { return types[j] == "null" && types[i] != "null" })
		out.Type = toAny(types)
	}
	if a.Format == b.Format || b.Format == "" && slices.Contains(b.Types(), "null") && len(b.Types()) == 1 {
		out.Format = a.Format
	} else if a.Format == "" && slices.Contains(a.Types(), "null") && len(a.Types()) == 1 {
		out.Format = b.Format
	}
	if len(a.Enum) > 0 || len(b.Enum) > 0 {
		seen := map[string]bool{}
		for _, e := range append(slices.Clone(a.Enum), b.Enum...) {
			if k := fmt.Sprint(e); !seen[k] {
				seen[k] = true
				out.Enum = append(out.Enum, e)
			}
		}
	}
	if _, isMap := a.AdditionalProperties.(map[string]any); isMap {
		// A map keyed by IDs: its keys are not fields.
		out.Type, out.AdditionalProperties = a.Type, a.AdditionalProperties
		return out
	}
	if a.Properties != nil || b.Properties != nil {
		out.Properties = map[string]*Schema{}
		for k, p := range a.Properties {
			out.Properties[k] = Merge(p, b.Properties[k])
		}
		for k, p := range b.Properties {
			if _, ok := a.Properties[k]; !ok {
				out.Properties[k] = p
			}
		}
		for _, r := range a.Required {
			if slices.Contains(b.Required, r) || b.Properties == nil {
				out.Required = append(out.Required, r)
			}
		}
		out.AdditionalProperties = a.AdditionalProperties
		if out.AdditionalProperties == nil {
			out.AdditionalProperties = b.AdditionalProperties
		}
	}
	out.Items = Merge(a.Items, b.Items)
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// Marshal writes a schema file: indented, fields in a fixed order.
func Marshal(s *Schema) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
