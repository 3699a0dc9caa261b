package main

import (
	"os/exec"
	"strings"
	"testing"
)

// Packages that every cmekctl start would initialise and no verb uses
// (docs/performance.md, "Start-up"): cloud.google.com/go/storage brought a
// gRPC transport with xDS, Envoy's protobufs and a metrics exporter, ~2 ms
// and 130 packages of init per start, for a store that speaks the JSON API.
var unwantedAtStart = []string{
	"cloud.google.com/go/storage",
	"google.golang.org/grpc/xds",
	"github.com/envoyproxy/",
	"github.com/cncf/xds/",
	"cloud.google.com/go/monitoring",
	"github.com/GoogleCloudPlatform/opentelemetry-operations-go/",
}

func TestStartupLinksNoXDS(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range unwantedAtStart {
			if pkg == bad || strings.HasPrefix(pkg, bad) || strings.HasPrefix(pkg, bad+"/") {
				t.Errorf("cmekctl links %s: its package init runs at every start (see docs/performance.md, Start-up)", pkg)
			}
		}
	}
}
