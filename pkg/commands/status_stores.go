package commands

import (
	"fmt"

	"github.com/cmekctl/cmekctl/pkg/keyring"
)

// statusStore is one CockroachDB store of a node: the store key it runs on
// and, until a start is confirmed, the one it was handed.
type statusStore struct {
	Path         string `json:"path"`
	KeyID        string `json:"store_key_id"`
	Format       string `json:"format,omitempty"`
	HandedKeyID  string `json:"handed_key_id,omitempty"`
	HandedFormat string `json:"handed_format,omitempty"`
	Confirmed    bool   `json:"confirmed"`
	OnActive     bool   `json:"on_active_store_key"`
}

// statusRegion counts a region's stores on its active store key.
type statusRegion struct {
	Region         string `json:"region"`
	ActiveStoreKey string `json:"active_store_key_id"`
	StoresOnActive int    `json:"stores_on_active_store_key"`
	Stores         int    `json:"stores"`
	Summary        string `json:"summary"`
	// Reconcile: the region's nodes hold different store keys (a rotation
	// with --partial left some behind); this command brings them onto one.
	Reconcile string `json:"reconcile,omitempty"`
}

// notUnlocked names a node's stores before unlock has been given any.
const notUnlocked = "(not yet unlocked)"

func storeStatus(kr *keyring.Keyring) []statusStore {
	sts := kr.Stores
	if len(sts) == 0 {
		st := kr.Store(notUnlocked)
		sts = []keyring.StoreState{st}
	}
	active := kr.StoreWrap.KeyIDs[0]
	out := []statusStore{}
	for _, st := range sts {
		s := statusStore{Path: st.Path, KeyID: orPlainID(st.On.ID), Format: st.On.Format, Confirmed: st.Confirmed()}
		if st.Handed != nil {
			s.HandedKeyID, s.HandedFormat = st.Handed.ID, st.Handed.Format
		}
		s.OnActive = s.Confirmed && st.On.ID == active
		out = append(out, s)
	}
	return out
}

func orPlainID(id string) string {
	if id == "" {
		return "plain"
	}
	return id
}

// regionStatus is, per region, "N of M stores on the active store key".
// A store counts once its start on that key is confirmed (node started).
func regionStatus(nodes []statusNode, active map[string]string) []statusRegion {
	out := []statusRegion{}
	idx := map[string]int{}
	for _, n := range nodes {
		i, ok := idx[n.Region]
		if !ok {
			i = len(out)
			idx[n.Region] = i
			out = append(out, statusRegion{Region: n.Region, ActiveStoreKey: active[n.Region]})
		}
		for k := range n.Stores {
			s := &n.Stores[k]
			// The region's newest active key: a keyring a rotation missed
			// does not count its own older key as active.
			s.OnActive = s.Confirmed && s.KeyID == active[n.Region]
			out[i].Stores++
			if s.OnActive {
				out[i].StoresOnActive++
			}
		}
	}
	for i := range out {
		out[i].Summary = fmt.Sprintf("%d of %d stores on the active store key", out[i].StoresOnActive, out[i].Stores)
	}
	return out
}

func storeTables(rep statusReport) []table {
	st := table{Title: "Stores", Headers: []string{"region", "node", "store", "runs on", "format", "handed (not confirmed)", "on active key"}}
	for _, n := range rep.Nodes {
		for _, s := range n.Stores {
			handed := "-"
			if s.HandedKeyID != "" {
				handed = keyring.Short(s.HandedKeyID) + " (" + s.HandedFormat + ")"
			}
			on := "no"
			if s.OnActive {
				on = "yes"
			}
			st.Rows = append(st.Rows, []string{n.Region, n.Node, s.Path, keyring.Short(s.KeyID), s.Format, handed, on})
		}
	}
	rt := table{Title: "Regions", Headers: []string{"region", "active store key", "stores on it"}}
	for _, r := range rep.Regions {
		rt.Rows = append(rt.Rows, []string{r.Region, keyring.Short(r.ActiveStoreKey), r.Summary})
	}
	return []table{st, rt}
}
