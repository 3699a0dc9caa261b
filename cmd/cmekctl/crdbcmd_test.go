package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cmekctl/cmekctl/internal/crdbmodel"
)

// crdbCmds start a model CockroachDB node (internal/crdbmodel) with what
// unlock printed, as a start script would:
//
//	crdbstart STATE SPECFILE  start the node whose stores' state is in STATE
//	                          (created on the first start) with the
//	                          --enterprise-encryption values of SPECFILE, one
//	                          per line; print "PATH KEYID" per store
//
// Every key file named is loaded by the model's loader; a value CockroachDB
// refuses, a key a store cannot start on, or a key it moved off fails the
// command. STATE keeps the key IDs and types only, never key material.
func crdbCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"crdbstart": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 {
				ts.Fatalf("usage: crdbstart STATE SPECFILE")
			}
			err := crdbStart(ts, ts.MkAbs(args[0]), ts.MkAbs(args[1]))
			switch {
			case err != nil && !neg:
				ts.Fatalf("the node does not start: %v", err)
			case err == nil && neg:
				ts.Fatalf("the node started, want a refusal")
			}
		},
	}
}

type crdbStore struct {
	Path    string          `json:"path"`
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Used    map[string]bool `json:"used"`
	Started bool            `json:"started"`
}

func crdbStart(ts *testscript.TestScript, statePath, specPath string) error {
	spec, err := os.ReadFile(specPath)
	ts.Check(err)
	values := strings.Fields(string(spec))
	var state []crdbStore
	switch b, err := os.ReadFile(statePath); {
	case errors.Is(err, fs.ErrNotExist):
		for _, v := range values {
			sp, err := crdbmodel.ParseSpec(v)
			if err != nil {
				return err
			}
			state = append(state, crdbStore{Path: sp.Path, Used: map[string]bool{}})
		}
	case err != nil:
		ts.Fatalf("%v", err)
	default:
		ts.Check(json.Unmarshal(b, &state))
	}
	var paths []string
	for _, s := range state {
		paths = append(paths, s.Path)
	}
	n := crdbmodel.NewNode(crdbmodel.V24_1, paths...)
	for i, s := range state {
		st := n.Stores[i]
		st.Active, st.Used, st.Started = crdbmodel.Key{ID: s.ID, Type: s.Type}, s.Used, s.Started
	}
	if err := n.Start(values); err != nil {
		return err
	}
	for i, st := range n.Stores {
		state[i] = crdbStore{Path: st.Path, ID: st.Active.ID, Type: st.Active.Type, Used: st.Used, Started: st.Started}
		fmt.Fprintf(ts.Stdout(), "%s %s\n", st.Path, st.Active.ID)
	}
	b, err := json.Marshal(state)
	ts.Check(err)
	ts.Check(os.WriteFile(statePath, b, 0o600))
	return nil
}
