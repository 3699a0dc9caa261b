package commands

import (
	"crypto/fips140"
	"fmt"
	"runtime/debug"
)

// FIPSStatus is whether cmekctl runs on Go's FIPS 140-3 cryptographic module
// (cmekctl version; --require-fips).
type FIPSStatus struct {
	// Mode is the fips140 GODEBUG setting in effect: off, on or only.
	Mode string `json:"mode"`
	// Module is the module's version (crypto/fips140.Version): v1.0.0 for a
	// build with GOFIPS140=v1.0.0, "latest" for a standard build (the
	// module's source in this Go release, not a validated snapshot).
	Module string `json:"module"`
	// Build is the GOFIPS140 build setting ("v1.0.0-c2097c7c"), empty for a
	// standard build.
	Build string `json:"gofips140,omitempty"`
	// Enforced: GODEBUG=fips140=only, non-approved cryptography fails.
	Enforced bool `json:"enforced"`
	// DefaultGODEBUG is the build's default (fips140=on for a GOFIPS140
	// build), overridden by the GODEBUG environment variable.
	DefaultGODEBUG string `json:"default_godebug,omitempty"`
}

// currentFIPS reads the process's FIPS 140-3 state.
func currentFIPS() FIPSStatus {
	s := FIPSStatus{Mode: "off", Module: fips140.Version(), Enforced: fips140.Enforced()}
	switch {
	case s.Enforced:
		s.Mode = "only"
	case fips140.Enabled():
		s.Mode = "on"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			switch st.Key {
			case "GOFIPS140":
				if st.Value != "off" {
					s.Build = st.Value
				}
			case "DefaultGODEBUG":
				s.DefaultGODEBUG = st.Value
			}
		}
	}
	return s
}

// Frozen reports whether the module is a frozen snapshot selected with
// GOFIPS140 (a version submitted for validation), not the development tree.
func (s FIPSStatus) Frozen() bool { return s.Module != "" && s.Module != "latest" }

// String is the one-line summary of version's table.
func (s FIPSStatus) String() string { return s.Mode + " (module " + s.Module + ")" }

// checkRequireFIPS refuses to run unless cmekctl runs on a frozen Go
// Cryptographic Module with fips140=only enforced.
func checkRequireFIPS(s FIPSStatus) error {
	if s.Frozen() && s.Enforced {
		return nil
	}
	var why, hint string
	switch {
	case !s.Frozen():
		why = fmt.Sprintf("this cmekctl is a standard build (Go Cryptographic Module %q, GODEBUG fips140=%s), not a FIPS build", s.Module, s.Mode)
		hint = "run the FIPS build (cmekctl-fips, built with GOFIPS140=v1.0.0) with GODEBUG=fips140=only; see docs/fips.md"
	default:
		why = fmt.Sprintf("GODEBUG fips140=%s: the Go Cryptographic Module %s is in use but non-approved cryptography is not refused", s.Mode, s.Module)
		hint = "set GODEBUG=fips140=only in cmekctl's environment; cmekctl version shows the mode"
	}
	return &ExitError{Code: ExitNotFIPS, Err: fmt.Errorf("--require-fips: %s: nothing was done", why), Hint: hint}
}

func (f *Factory) fips() FIPSStatus {
	if f.FIPS != nil {
		return f.FIPS()
	}
	return currentFIPS()
}
