package cloud_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/cloud"
)

func TestSecretRedacts(t *testing.T) {
	s := cloud.NewSecret(testKey)
	if s.Reveal() != testKey || s.IsZero() || !cloud.NewSecret("").IsZero() {
		t.Fatal("Reveal or IsZero is wrong")
	}
	type holder struct {
		Exported   cloud.Secret
		unexported cloud.Secret
	}
	h := holder{s, s}
	opts := cloud.Options{APIKey: s}
	var out []string
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, &s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, opts))
	}
	out = append(out, fmt.Sprint(s), fmt.Sprintln(s), s.String(), s.GoString())
	j, err := json.Marshal(opts.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	jh, _ := json.Marshal(h)
	out = append(out, string(j), string(jh))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", s, "opts", opts)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", s)
	out = append(out, buf.String())
	func() {
		defer func() { out = append(out, fmt.Sprint(recover())) }()
		panic(s)
	}()
	for _, o := range out {
		if strings.Contains(o, testKey) {
			t.Errorf("secret printed: %s", o)
		}
	}
	if string(j) != `"**redacted**"` || fmt.Sprint(s) != "**redacted**" || !strings.Contains(fmt.Sprintf("%+v", h), "**redacted**") {
		t.Errorf("redaction marker missing: %s / %s / %+v", j, s, h)
	}
}
