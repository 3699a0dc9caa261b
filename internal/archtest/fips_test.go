package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// nonApproved matches calls that Go's FIPS 140-3 module refuses under
// GODEBUG=fips140=only (GCM with caller-chosen nonces) or that switch the
// enforcement off.
var nonApproved = regexp.MustCompile(`cipher\.NewGCM\(|cipher\.NewGCMWithNonceSize\(|cipher\.NewGCMWithTagSize\(|fips140\.WithoutEnforcement\(|fipstest\.`)

// fipsExempt are the binary's packages allowed a match, and why.
var fipsExempt = map[string]string{
	// The stream format (issue 21) reads streams of the first version, whose
	// chunk nonces are counters, only outside fips140=only.
	module + "/pkg/stream": "reads v1 streams outside fips140=only",
}

// TestBinaryCryptoIsFIPSOnly fails if a package linked into the cmekctl
// binary (this module's, outside fipsExempt) calls GCM with caller nonces,
// switches FIPS enforcement off, or depends on the test servers' bypass
// (internal/fipstest). Wraps go through pkg/keywrap.
func TestBinaryCryptoIsFIPSOnly(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,GoFiles,Module", module+"/cmd/cmekctl")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	checked := 0
	for {
		var p struct {
			ImportPath, Dir string
			GoFiles         []string
			Module          *struct{ Path string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != module {
			continue
		}
		if strings.HasPrefix(p.ImportPath, module+"/internal/fipstest") {
			t.Errorf("the cmekctl binary links %s (test servers' FIPS bypass)", p.ImportPath)
		}
		if _, ok := fipsExempt[p.ImportPath]; ok {
			continue
		}
		for _, f := range p.GoFiles {
			src, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for i, line := range strings.Split(string(src), "\n") {
				if nonApproved.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
					t.Errorf("%s:%d: %s: not allowed under fips140=only; seal with pkg/keywrap", filepath.Join(p.ImportPath, f), i+1, strings.TrimSpace(line))
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d source files of the binary: the listing went wrong", checked)
	}
}
