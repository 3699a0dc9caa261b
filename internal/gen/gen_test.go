package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// moduleRoot is where the committed generated files are, seen from this
// package's directory (go test runs in it).
const moduleRoot = "../.."

// TestGeneratedFilesUpToDate regenerates every generated file into a
// temporary directory and fails if the committed ones differ, are missing or
// are left over.
func TestGeneratedFilesUpToDate(t *testing.T) {
	for k := range fixedEnv {
		t.Setenv(k, os.Getenv(k)) // restored after generate changes them
	}
	fresh := t.TempDir()
	if err := generate(fresh); err != nil {
		t.Fatalf("generate: %v", err)
	}
	want, got := readGenerated(t, fresh), readGenerated(t, moduleRoot)
	if len(want) == 0 {
		t.Fatal("the generator wrote nothing")
	}
	var drift []string
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			drift = append(drift, name+": missing")
		case !bytes.Equal(g, w):
			drift = append(drift, name+": differs from the command tree")
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			drift = append(drift, name+": no longer generated")
		}
	}
	if len(drift) > 0 {
		t.Errorf("generated files are out of date:\n  %s\nfix: go run ./internal/gen (from the module root) and commit the result",
			strings.Join(drift, "\n  "))
	}
}

// TestGenerateDeterministic runs the generator twice: the outputs must be the
// same byte for byte.
func TestGenerateDeterministic(t *testing.T) {
	for k := range fixedEnv {
		t.Setenv(k, os.Getenv(k))
	}
	a, b := t.TempDir(), t.TempDir()
	if err := generate(a); err != nil {
		t.Fatal(err)
	}
	if err := generate(b); err != nil {
		t.Fatal(err)
	}
	ga, gb := readGenerated(t, a), readGenerated(t, b)
	if len(ga) != len(gb) {
		t.Fatalf("%d files, then %d", len(ga), len(gb))
	}
	for name, data := range ga {
		if !bytes.Equal(data, gb[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
	for _, want := range []string{"completions/cmekctl.bash", "completions/_cmekctl", "completions/cmekctl.fish", "completions/cmekctl.ps1", "docs/man/cmekctl.1", "docs/reference/cmekctl.md", exitCodesFile} {
		if _, ok := ga[want]; !ok {
			t.Errorf("%s not generated", want)
		}
	}
}

func TestCheckPortableFindsMachinePaths(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, manDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x.1"), []byte("default \"/home/alice/.config/cmekctl\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkPortable(root, []string{"/home/alice"}); err == nil || !strings.Contains(err.Error(), "/home/alice") {
		t.Errorf("checkPortable = %v, want an error naming /home/alice", err)
	}
	if err := checkPortable(root, []string{"/home/bob"}); err != nil {
		t.Errorf("checkPortable with no leak = %v", err)
	}
}

func TestExitCodesMarkdown(t *testing.T) {
	md, err := exitCodesMarkdown("    0  ok                    success\n   31  verdict-accessible    something | still unwraps\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 0 | `ok` | success |", "| 31 | `verdict-accessible` | something \\| still unwraps |"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("exit-codes.md lacks %q", want)
		}
	}
	if _, err := exitCodesMarkdown("  oops\n"); err == nil {
		t.Error("a malformed exit-code line was accepted")
	}
}

// readGenerated reads every generated file under root, keyed by its
// slash-separated path relative to root.
func readGenerated(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, d := range []string{completionsDir, manDir, referenceDir, exitCodesFile} {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if e.IsDir() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files[filepath.ToSlash(rel)] = data
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}
