// Package cloudtest is a fake of the CockroachDB Cloud API: the CMEK
// endpoints (GET, POST, PUT and PATCH /api/v1/clusters/{cluster_id}/cmek)
// and the managed backups list (GET /api/v1/clusters/{cluster_id}/backups),
// served over real HTTP on 127.0.0.1 with the wire format of the official
// OpenAPI spec (API version 2024-09-16). It is a fake, not the vendor's
// service: it keeps the CMEK state machine in memory and exists for tests.
//
// The state machine: POST on a cluster without CMEK puts every region in
// ENABLING; PUT puts the listed regions in ROTATING (a new key info, the
// past ones kept); PATCH {"action":"REVOKE"} puts every region in REVOKING.
// After Polls GETs of the cluster's CMEK status (default 2), every
// transitional region settles: ENABLED (past keys DISABLED) or REVOKED, or
// the *_FAILED status armed with FailRegion. A second POST, a POST whose
// regions differ from the cluster's, a malformed key spec or a mutation
// during another operation is refused as the API would (400, or 503 while
// busy).
//
// Every request must carry Authorization: Bearer <APIKey()> (401
// otherwise) and Cc-Version: 2024-09-16: the real API answers a request
// without it as version 2022-03-31; this fake refuses it with 400 so that a
// missing header shows.
//
// The cluster itself (GET and PATCH /api/v1/clusters/{cluster_id}, in
// cluster.go): its state is LOCKED while a CMEK operation or a region add
// runs (or while Lock lasts), and then every CMEK write and cluster PATCH
// is answered 503, as the API does while the cluster is busy. PATCH with
// dedicated.region_nodes and dedicated.cmek_region_specs adds regions, with
// the rules of DedicatedClusterUpdateSpecification.
//
// Faults (faults.go): FailRegion, Busy (503 on the next n calls), Lock (the
// cluster LOCKED for its next n GETs), RateLimit (429 with Retry-After on
// the next n GETs), IAMDenied (403 on the next n POSTs), GETErrors (500 on
// the next n GETs; StatusErrors for any method and status), EchoAuth (error
// messages quote the Authorization header, as a careless server might).
// Requests returns the request log.
package cloudtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// APIVersion is the only Cc-Version the fake serves.
const APIVersion = "2024-09-16"

// DefaultAPIKey is the key a new Server accepts until SetAPIKey.
const DefaultAPIKey = "CCDB1_cloudtest_0123456789abcdefABCDEF"

// Cluster is a cluster the fake knows: its ID and its regions.
type Cluster struct {
	ID      string
	Regions []string
	// NodeCount is each region's node count; default 3.
	NodeCount int
	// CloudProvider is AWS (the default), GCP or AZURE.
	CloudProvider string
}

// Request is one logged request and the status it got.
type Request struct {
	Method    string
	Path      string
	Query     url.Values
	Body      string
	Status    int
	Authed    bool   // the Authorization header held the right key
	CcVersion string // the Cc-Version header
	Accept    string
	UserAgent string
}

// Server is the fake API. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	apiKey    string
	clusters  map[string]*cluster
	primary   string
	polls     int
	pageSize  int
	busy      int
	busyAfter time.Duration // Retry-After of the 503s Busy arms; 0: none
	limited   int           // GETs left to answer 429
	limitFor  time.Duration // their Retry-After
	iamDenied int
	errs      map[string]statusFault // method → injected errors left
	echoAuth  bool
	fail      map[string]string // region → user_message for its next operation
	now       func() time.Time
	log       []Request
}

type cluster struct {
	id       string
	regions  []string
	nodes    map[string]int
	provider string
	state    map[string]*regionState
	pending  int // GETs left before transitional regions settle
	locked   int // cluster GETs left in the LOCKED state (Lock, a region add)
	backups  []backup
}

type regionState struct {
	status string
	keys   []keyInfo
}

// Wire types, written from the spec independently of package cloud so that
// a wrong field name on one side shows.
type keySpec struct {
	Type          string `json:"type"`
	URI           string `json:"uri"`
	AuthPrincipal string `json:"auth_principal"`
}

type regionSpec struct {
	Region  string   `json:"region"`
	KeySpec *keySpec `json:"key_spec"`
}

type keyInfo struct {
	Spec        keySpec `json:"spec"`
	Status      string  `json:"status"`
	UserMessage string  `json:"user_message,omitempty"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

type regionInfo struct {
	Region   string    `json:"region"`
	Status   string    `json:"status"`
	KeyInfos []keyInfo `json:"key_infos"`
}

type clusterInfo struct {
	Status      string       `json:"status"`
	RegionInfos []regionInfo `json:"region_infos"`
}

type backup struct {
	ID       string `json:"id"`
	AsOfTime string `json:"as_of_time"`
	at       time.Time
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

// gRPC codes, as the API puts them in error bodies.
const (
	codeInvalidArgument    = 3
	codeNotFound           = 5
	codePermissionDenied   = 7
	codeResourceExhausted  = 8
	codeFailedPrecondition = 9
	codeUnimplemented      = 12
	codeInternal           = 13
	codeUnavailable        = 14
	codeUnauthenticated    = 16
)

// New starts a fake serving c on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB, c Cluster) *Server {
	t.Helper()
	s := &Server{
		apiKey:   DefaultAPIKey,
		clusters: map[string]*cluster{},
		polls:    2,
		pageSize: 2,
		fail:     map[string]string{},
		errs:     map[string]statusFault{},
		now:      time.Now,
	}
	if err := s.AddCluster(c); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	s.primary = c.ID
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the server's base URL (http://127.0.0.1:PORT).
func (s *Server) URL() string { return s.srv.URL }

// Client is an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// AddCluster adds another cluster, CMEK disabled in every region.
func (s *Server) AddCluster(c Cluster) error {
	if c.ID == "" || len(c.Regions) == 0 {
		return fmt.Errorf("cluster needs an ID and at least one region")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clusters[c.ID]; ok {
		return fmt.Errorf("cluster %s exists", c.ID)
	}
	cl := &cluster{id: c.ID, regions: slices.Clone(c.Regions), state: map[string]*regionState{},
		nodes: map[string]int{}, provider: c.CloudProvider}
	if cl.provider == "" {
		cl.provider = "AWS"
	}
	for _, r := range c.Regions {
		cl.state[r] = &regionState{status: "DISABLED"}
		cl.nodes[r] = max(c.NodeCount, 1)
		if c.NodeCount == 0 {
			cl.nodes[r] = 3
		}
	}
	s.clusters[c.ID] = cl
	return nil
}

// APIKey is the key the server accepts.
func (s *Server) APIKey() string { s.mu.Lock(); defer s.mu.Unlock(); return s.apiKey }

// SetAPIKey sets the key the server accepts.
func (s *Server) SetAPIKey(k string) { s.mu.Lock(); s.apiKey = k; s.mu.Unlock() }

// SetPolls sets how many GETs a transitional state lasts (at least 1).
func (s *Server) SetPolls(n int) { s.mu.Lock(); s.polls = max(n, 1); s.mu.Unlock() }

// SetPageSize sets the largest backups page the server returns.
func (s *Server) SetPageSize(n int) { s.mu.Lock(); s.pageSize = max(n, 1); s.mu.Unlock() }

// SetClock sets the clock for created_at and updated_at.
func (s *Server) SetClock(now func() time.Time) { s.mu.Lock(); s.now = now; s.mu.Unlock() }

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Count returns how many logged requests had method (any method if "") and
// status (any status if 0).
func (s *Server) Count(method string, status int) int {
	n := 0
	for _, r := range s.Requests() {
		if (method == "" || r.Method == method) && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

// RegionStatus returns the CMEK status of a region of the primary cluster.
func (s *Server) RegionStatus(region string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.clusters[s.primary].state[region]; ok {
		return st.status
	}
	return ""
}

// KeyStatuses returns the status of every key info of a region of the
// primary cluster, oldest first.
func (s *Server) KeyStatuses(region string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if st, ok := s.clusters[s.primary].state[region]; ok {
		for _, k := range st.keys {
			out = append(out, k.Status)
		}
	}
	return out
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
	}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	s.mu.Lock()
	defer s.mu.Unlock()
	entry := Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: string(body),
		Authed:    r.Header.Get("Authorization") == "Bearer "+s.apiKey,
		CcVersion: r.Header.Get("Cc-Version"), UserAgent: r.Header.Get("User-Agent"),
		Accept: r.Header.Get("Accept"),
	}
	s.handle(rec, r, body, entry.Authed)
	entry.Status = rec.status
	s.log = append(s.log, entry)
}

// handle runs with s.mu held.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, body []byte, authed bool) {
	fail := func(status, code int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if s.echoAuth {
			msg += fmt.Sprintf(" (request had Authorization: %s)", r.Header.Get("Authorization"))
		}
		writeJSON(w, status, apiError{Code: code, Message: msg, Details: []any{}})
	}
	if !authed {
		if r.Header.Get("Authorization") == "" {
			fail(http.StatusUnauthorized, codeUnauthenticated, "missing bearer token")
		} else {
			fail(http.StatusUnauthorized, codeUnauthenticated, "invalid API key")
		}
		return
	}
	if v := r.Header.Get("Cc-Version"); v != APIVersion {
		if v == "" {
			v = "none (the API would answer as 2022-03-31)"
		}
		fail(http.StatusBadRequest, codeInvalidArgument, "cloudtest serves only Cc-Version %s, got %s", APIVersion, v)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if (len(parts) != 4 && len(parts) != 5) || parts[0] != "api" || parts[1] != "v1" || parts[2] != "clusters" ||
		(len(parts) == 5 && parts[4] != "cmek" && parts[4] != "backups") {
		fail(http.StatusNotFound, codeNotFound, "no such endpoint: %s", r.URL.Path)
		return
	}
	resource := "cluster"
	if len(parts) == 5 {
		resource = parts[4]
	}
	allowed := map[string][]string{"cmek": {"GET", "POST", "PUT", "PATCH"}, "backups": {"GET"}, "cluster": {"GET", "PATCH"}}[resource]
	if !slices.Contains(allowed, r.Method) {
		fail(http.StatusMethodNotAllowed, codeUnimplemented, "method %s not allowed on %s", r.Method, resource)
		return
	}
	cl, ok := s.clusters[parts[3]]
	if !ok {
		fail(http.StatusNotFound, codeNotFound, "cluster %s not found", parts[3])
		return
	}
	if resource == "cmek" && r.Method != "GET" && cl.locked > 0 {
		fail(http.StatusServiceUnavailable, codeUnavailable, "cluster %s is locked: another operation is in progress; wait until its state is CREATED", cl.id)
		return
	}
	if s.injected(w, r, cl.id, fail) {
		return
	}
	switch resource {
	case "backups":
		s.listBackups(w, r, cl, fail)
		return
	case "cluster":
		s.clusterCall(w, r, cl, body, fail)
		return
	}
	switch r.Method {
	case "GET":
		s.poll(cl)
	case "POST", "PUT":
		specs, err := decodeSpecs(body)
		if err != nil {
			fail(http.StatusBadRequest, codeInvalidArgument, "invalid request body: %v", err)
			return
		}
		if status, code, msg := s.applySpecs(cl, r.Method, specs); status != 0 {
			fail(status, code, "%s", msg)
			return
		}
	case "PATCH":
		var req struct {
			Action string `json:"action"`
		}
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Action != "REVOKE" {
			fail(http.StatusBadRequest, codeInvalidArgument, "invalid request body: want {\"action\":\"REVOKE\"}")
			return
		}
		if status, code, msg := s.revoke(cl); status != 0 {
			fail(status, code, "%s", msg)
			return
		}
	}
	writeJSON(w, http.StatusOK, cl.info())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
