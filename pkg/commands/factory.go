// Package commands is cmekctl's command tree: cobra commands whose flags bind
// into typed options, and run functions that do the work through a Factory
// (streams, clock, KMS registry), testable without a process.
package commands

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cmekctl/cmekctl/pkg/audit"
	"github.com/cmekctl/cmekctl/pkg/config"
	"github.com/cmekctl/cmekctl/pkg/iostreams"
	"github.com/cmekctl/cmekctl/pkg/keyring"
	"github.com/cmekctl/cmekctl/pkg/provider"
	"github.com/cmekctl/cmekctl/pkg/provider/registry"
	"github.com/cmekctl/cmekctl/pkg/store"
)

// Factory holds what commands depend on, as functions and values that tests
// replace.
type Factory struct {
	IO       *iostreams.IOStreams
	Registry func() provider.Registry
	Now      func() time.Time
	Getenv   func(string) string
	// FIPS reports the FIPS 140-3 state (nil: the process's own).
	FIPS func() FIPSStatus

	// Audit is the audit log of this run (nil: none), and Verb the command
	// being run; set by the root command before a verb runs.
	Audit *audit.Log
	// auditURI and auditDir are what the verb's summary entry names.
	auditURI, auditDir string
	Verb               string
	// started is when the verb began, reportVerb the verb (its report's
	// started_at and verb; config view -- VERB changes Verb).
	started    time.Time
	reportVerb string
	// kmsProgress writes slow or retried KMS calls' progress (kmsprogress.go;
	// nil: none, as when stderr is not a terminal or with -o json).
	kmsProgress *kmsProgress
	// Config is the cluster config file, if one was found.
	Config      *config.Config
	flagSources map[string]string
	// stamps are the --keyring files as they were before the verb ran, and
	// cloud whether it works on the Cloud (interrupt.go).
	stamps map[string]string
	cloud  bool
	// trust is this run's KMS trust settings (kmstrust.go; nil: the
	// strictest, nothing allowed).
	trust *kmsTrust
	// uriFromFile is the URI argument --cmek-file gave (urifile.go).
	uriFromFile string
	// OpenStore opens a shared store URI (nil: store.Open).
	OpenStore func(ctx context.Context, uri string) (store.Store, error)
}

// NewFactory returns the factory of a real process.
func NewFactory() *Factory {
	return &Factory{IO: iostreams.System(), Registry: registry.Default, Now: time.Now, Getenv: os.Getenv}
}

// kmsSession opens each CMEK key once per command and counts its calls.
type kmsSession struct {
	reg      provider.Registry
	audit    *audit.Log
	verb     string
	auditErr func(error)
	trust    *kmsTrust
	progress *kmsProgress
	mu       sync.Mutex
	keys     map[string]*provider.Counting
}

func (f *Factory) newSession() *kmsSession {
	return &kmsSession{reg: f.Registry(), keys: map[string]*provider.Counting{}, audit: f.Audit, verb: f.Verb,
		auditErr: func(err error) { f.warnAudit(err) }, trust: f.kmsTrust(), progress: f.kmsProgress}
}

// kmsTrust returns this run's KMS trust settings, the strictest when the
// root command did not set them (a run function called directly).
func (f *Factory) kmsTrust() *kmsTrust {
	if f.trust != nil {
		return f.trust
	}
	return &kmsTrust{operator: map[string]bool{}, getenv: f.Getenv}
}

// Open returns the key of uri, opened once.
func (s *kmsSession) Open(uri string) (provider.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[uri]; ok {
		return k, nil
	}
	if err := s.trust.check(uri); err != nil {
		return nil, err
	}
	k, err := s.reg.Open(uri)
	if err != nil {
		return nil, uriError(err)
	}
	if s.audit != nil {
		k = &audit.Key{Key: k, Log: s.audit, Verb: s.verb, Err: s.auditErr}
	}
	if s.progress != nil {
		k = &progressKey{Key: k, p: s.progress}
	}
	c := provider.NewCounting(k)
	s.keys[uri] = c
	return c, nil
}

// KMSCalls are the KMS calls a command made, for its report.
type KMSCalls struct {
	Wrap     int64 `json:"wrap"`
	Unwrap   int64 `json:"unwrap"`
	Rewrap   int64 `json:"rewrap"`
	Describe int64 `json:"describe"`
}

// Counts sums the calls over every key.
func (s *kmsSession) Counts() KMSCalls {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c KMSCalls
	for _, k := range s.keys {
		n := k.Counts()
		c.Wrap += n.Wrap
		c.Unwrap += n.Unwrap
		c.Rewrap += n.Rewrap
		c.Describe += n.Describe
	}
	return c
}

func (f *Factory) env(s *kmsSession) keyring.Env {
	return keyring.Env{Open: s.Open, Now: f.Now}
}

var auditWarnOnce sync.Once

// warnAudit reports, once per run, that the audit log could not be written.
func (f *Factory) warnAudit(err error) {
	auditWarnOnce.Do(func() {
		fmt.Fprintf(f.IO.ErrOut, "cmekctl: warning: %v\n", err)
	})
}
