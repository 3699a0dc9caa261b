// Package jsonschema checks cmekctl's -o json reports against the checked-in
// schemas of its JSON contract (docs/json.md). It reads the small subset of
// JSON Schema those files use:
//
//	type                  "object", "array", "string", "integer", "number",
//	                      "boolean", "null", or a list of them
//	properties, required  an object's fields and those it must have
//	additionalProperties  false: a field the schema does not name fails
//	items                 the schema of every element of an array
//	enum                  the values a field may take
//	format                "date-time": RFC 3339 in UTC (ending in Z);
//	                      "absolute-path": an absolute path, or "-"
//	description           ignored
//
// Infer and Merge write a schema from reports seen (go test -update), for a
// person to review and complete (enums, formats) before it is committed.
package jsonschema

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Schema is one node of a schema file.
type Schema struct {
	Description string `json:"description,omitempty"`
	// Type is a string or a list of strings.
	Type       any                `json:"type,omitempty"`
	Format     string             `json:"format,omitempty"`
	Enum       []any              `json:"enum,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties map[string]*Schema `json:"properties,omitempty"`
	// AdditionalProperties is false (no field but those named) or the
	// schema of every other field's value (a map keyed by IDs).
	AdditionalProperties any     `json:"additionalProperties,omitempty"`
	Items                *Schema `json:"items,omitempty"`
}

// Parse reads a schema file.
func Parse(b []byte) (*Schema, error) {
	var s Schema
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &s, nil
}

// Types returns the types the schema allows.
func (s *Schema) Types() []string {
	switch t := s.Type.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if str, ok := x.(string); ok {
				out = append(out, str)
			}
		}
		return out
	case []string:
		return t
	}
	return nil
}

// Validate checks the JSON document doc against s and returns every
// violation, each with its JSON path.
func Validate(s *Schema, doc []byte) []error {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []error{fmt.Errorf("not JSON: %w", err)}
	}
	var errs []error
	validate(s, v, "$", &errs)
	return errs
}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func validate(s *Schema, v any, path string, errs *[]error) {
	bad := func(format string, a ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
	}
	t := typeOf(v)
	if types := s.Types(); len(types) > 0 {
		ok := slices.Contains(types, t) || (t == "integer" && slices.Contains(types, "number"))
		if !ok {
			bad("is %s, want %s", t, strings.Join(types, " or "))
			return
		}
	}
	if len(s.Enum) > 0 {
		found := false
		for _, e := range s.Enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			bad("%v is not one of %v", v, s.Enum)
		}
	}
	if str, ok := v.(string); ok && s.Format != "" {
		if err := checkFormat(s.Format, str); err != nil {
			bad("%v", err)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := x[r]; !ok {
				bad("missing required field %q", r)
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := s.Properties[k]
			if !ok {
				switch ap := s.AdditionalProperties.(type) {
				case bool:
					if !ap {
						bad("field %q is not in the schema", k)
					}
				case map[string]any:
					vs, err := valueSchema(ap)
					if err != nil {
						bad("%v", err)
						return
					}
					validate(vs, x[k], path+"."+k, errs)
				}
				continue
			}
			validate(ps, x[k], path+"."+k, errs)
		}
	case []any:
		if s.Items != nil {
			for i, e := range x {
				validate(s.Items, e, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	}
}

// valueSchema is an additionalProperties schema, as parsed into a map.
func valueSchema(m map[string]any) (*Schema, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

func checkFormat(format, s string) error {
	switch format {
	case "date-time":
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("%q is not an RFC 3339 time", s)
		}
		if !strings.HasSuffix(s, "Z") || t.Location() != time.UTC {
			return fmt.Errorf("%q is not in UTC (want a Z suffix)", s)
		}
	case "absolute-path":
		if s != "-" && !filepath.IsAbs(s) {
			return fmt.Errorf("%q is not an absolute path", s)
		}
	default:
		return fmt.Errorf("unknown format %q in the schema", format)
	}
	return nil
}
