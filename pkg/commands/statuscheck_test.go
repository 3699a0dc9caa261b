package commands

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
)

func runAt(t *testing.T, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	f := &Factory{IO: ios, Registry: registry.Default, Now: func() time.Time { return now }, Getenv: func(string) string { return "" }}
	code := Main(f, append(args, "--audit-log", "off"))
	return code, out.String(), errOut.String()
}

// TestStatusCheckOverdue: 31 days after enable, --check exits 80 naming the
// overdue rotation, and the metrics say overdue with negative days due.
func TestStatusCheckOverdue(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	kms, kr := "file-kms://"+dir+"/kms", dir+"/n1"
	if code, _, e := runAt(t, now, "kms", "create", kms); code != 0 {
		t.Fatalf("kms create: %d %s", code, e)
	}
	if code, _, e := runAt(t, now, "enable", "--cluster-id", "c1", "--region", "r1", "--node", "n1", "--cmek", kms, "--keyring", kr); code != 0 {
		t.Fatalf("enable: %d %s", code, e)
	}
	if code, _, e := runAt(t, now.Add(29*24*time.Hour), "status", "--check", "--no-kms", "--keyring", kr); code != 0 {
		t.Fatalf("29 days on: exit %d, %s", code, e)
	}
	later := now.Add(31 * 24 * time.Hour)
	code, _, e := runAt(t, later, "status", "--check", "--no-kms", "--keyring", kr)
	if code != ExitCheckFailed || !strings.Contains(e, "cmekctl: check: region r1 node n1: data-key rotation overdue since ") {
		t.Fatalf("31 days on: exit %d, stderr %q", code, e)
	}
	code, out, e := runAt(t, later, "status", "-o", "prometheus", "--no-kms", "--keyring", kr)
	if code != 0 {
		t.Fatalf("prometheus: exit %d %s", code, e)
	}
	m := parseProm(t, out)
	if v := m[`cmekctl_data_key_rotation_overdue{cluster="c1",region="r1",node="n1"}`]; v != 1 {
		t.Errorf("overdue = %v\n%s", v, out)
	}
	if v := m[`cmekctl_data_key_rotation_due_seconds{cluster="c1",region="r1",node="n1"}`]; v > -86400+5 || v < -86400-5 {
		t.Errorf("due in %v s, want -1 day", v)
	}
	if v := m[`cmekctl_data_key_age_seconds{cluster="c1",region="r1",node="n1"}`]; v < 31*86400-5 || v > 31*86400+5 {
		t.Errorf("data key age = %v, want 31 days", v)
	}
	if v := m[`cmekctl_region_stores{cluster="c1",region="r1"}`]; v != 1 {
		t.Errorf("region stores = %v\n%s", v, out)
	}
	if v, ok := m[`cmekctl_region_stores_on_active_store_key{cluster="c1",region="r1"}`]; !ok || v != 0 {
		t.Errorf("stores on the active key = %v (present %v), want 0 before node started", v, ok)
	}
}

// TestCheckProblemsMidRotation: an unfinished rotation is a finding that
// says how to finish it; a settled node is none; the metric follows.
func TestCheckProblemsMidRotation(t *testing.T) {
	now := time.Now()
	rep := statusReport{Nodes: []statusNode{
		{ClusterID: "c1", Region: "r1", Node: "n1", Keyring: "/k/n1", NextRotationDue: now.Add(time.Hour), MidRotation: "rotate store-key"},
		{ClusterID: "c1", Region: "r1", Node: "n2", Keyring: "/k/n2", NextRotationDue: now.Add(time.Hour)},
	}}
	ps := statusProblems(rep, now)
	if len(ps) != 1 || !strings.Contains(ps[0], "node n1: mid-rotation (rotate store-key): run the same rotation again") {
		t.Fatalf("problems = %q", ps)
	}
	var b strings.Builder
	if err := writePrometheus(&b, rep, "c1", now); err != nil {
		t.Fatal(err)
	}
	m := parseProm(t, b.String())
	if m[`cmekctl_mid_rotation{cluster="c1",region="r1",node="n1"}`] != 1 || m[`cmekctl_mid_rotation{cluster="c1",region="r1",node="n2"}`] != 0 {
		t.Errorf("mid_rotation wrong:\n%s", b.String())
	}
}

// TestPrometheusEscaping: label values with quotes, backslashes and
// newlines stay one valid sample line.
func TestPrometheusEscaping(t *testing.T) {
	got := promLabels("a", "q\"b\\s\nn")
	if want := `a="q\"b\\s\nn"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	parseProm(t, "# TYPE x gauge\nx{"+got+"} 1.5\n")
}

var (
	promSampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})?) (\S+)$`)
	promMetaLine   = regexp.MustCompile(`^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$`)
)

// parseProm checks every line against the text exposition format (each
// metric's TYPE before its samples, once) and returns sample -> value.
func parseProm(t *testing.T, s string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	typed := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if m := promMetaLine.FindStringSubmatch(l); m != nil {
			if m[1] == "TYPE" {
				if typed[m[2]] || m[3] != "gauge" {
					t.Fatalf("TYPE line %q repeated or not a gauge", l)
				}
				typed[m[2]] = true
			}
			continue
		}
		m := promSampleLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a sample line: %q", l)
		}
		name, _, _ := strings.Cut(m[1], "{")
		if !typed[name] {
			t.Fatalf("sample before its TYPE: %q", l)
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("value of %q: %v", l, err)
		}
		out[m[1]] = v
	}
	return out
}
