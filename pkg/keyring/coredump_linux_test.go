package keyring

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/filekms"
)

// Unwrapping a store key makes the process undumpable first.
func TestUnwrapDisablesCoreDumps(t *testing.T) {
	dir := t.TempDir()
	uri := "file-kms://" + filepath.Join(dir, "kms", "k")
	u, _ := url.Parse(uri)
	k, _ := filekms.OpenWith(u, filekms.Options{})
	ctx := context.Background()
	if _, err := k.Create(ctx); err != nil {
		t.Fatal(err)
	}
	env := Env{Open: func(string) (provider.Key, error) { return k, nil }}
	st := Store{Dir: filepath.Join(dir, "n1")}
	if _, err := Enable(ctx, env, EnableRequest{Cluster: "c", Region: "r", CMEK: uri, Nodes: []EnableNode{{Store: st, Name: "n1"}}}); err != nil {
		t.Fatal(err)
	}
	kr, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	b, err := UnwrapBundle(ctx, env, kr.ClusterID, kr.Region, kr.StoreWrap)
	if err != nil {
		t.Fatal(err)
	}
	b.Wipe()
	if !CoreDumpsDisabled() {
		t.Fatal("the process is still dumpable after unwrapping a store key")
	}
}
