// Command vaultserver serves Vault's own transit secrets engine (module
// github.com/hashicorp/vault v1.14.8, MPL-2.0) over Vault's HTTP API on a
// loopback address, so that cmekctl's vault-transit provider is tested
// against the real backend through the official api client.
//
// It is not a Vault server: there is no core, no seal, no token store and
// no ACL engine. One mount (transit/ by default) is routed to the real
// transit backend through the same request translation Vault's http package
// does (method → operation, existence check → create or update, JSON body,
// logical.RespondErrorCommon for status codes, {"errors":[...]} bodies). A
// single root token is checked on every request. Fault hooks under /_admin/
// (protected by the same token) make the server answer as Vault does when it
// is rate limited, sealed or failing, deny a token or a path as a policy
// would, or hang.
//
//	vaultserver -addr 127.0.0.1:0 -token <random> -print-addr
//	echo "$TOKEN" | vaultserver -addr 127.0.0.1:0 -token-stdin -print-addr -exit-on-eof
//
// prints http://127.0.0.1:PORT on stdout once it listens, then serves until
// killed or until stdin closes (with -exit-on-eof), so a test that dies
// leaves no server behind. Tests pass the token on stdin, keeping it off
// argv and the environment.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/builtin/logical/transit"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/jsonutil"
	"github.com/hashicorp/vault/sdk/logical"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	token := flag.String("token", "", "the one accepted token (or -token-stdin, or VAULTSERVER_TOKEN)")
	tokenStdin := flag.Bool("token-stdin", false, "read the token from the first line of stdin (keeps it off argv and the environment)")
	mount := flag.String("mount", "transit", "mount path of the transit engine")
	namespace := flag.String("namespace", "", "if set, requests must carry this X-Vault-Namespace")
	printAddr := flag.Bool("print-addr", false, "print the server's URL on stdout once listening")
	exitOnEOF := flag.Bool("exit-on-eof", false, "exit when stdin reaches EOF (tests hold a pipe open)")
	flag.Parse()

	stdin := bufio.NewReader(os.Stdin)
	if *tokenStdin {
		line, err := stdin.ReadString('\n')
		if err != nil && line == "" {
			log.Fatalf("vaultserver: -token-stdin: %v", err)
		}
		*token = strings.TrimSpace(line)
	}
	if *token == "" {
		*token = os.Getenv("VAULTSERVER_TOKEN")
	}
	if *token == "" {
		log.Fatal("vaultserver: a token is required: -token, -token-stdin or VAULTSERVER_TOKEN")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("vaultserver: bad -addr %q: %v", *addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("vaultserver: refusing to listen on non-loopback address %q", *addr)
	}

	s, err := newServer(context.Background(), *token, *mount, *namespace)
	if err != nil {
		log.Fatalf("vaultserver: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("vaultserver: listen: %v", err)
	}
	if *printAddr {
		fmt.Printf("http://%s\n", ln.Addr())
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	if *exitOnEOF {
		go func() {
			io.Copy(io.Discard, stdin)
			srv.Close()
		}()
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("vaultserver: serve: %v", err)
	}
}

// fault is what the next requests to the mount are answered with instead
// of the backend's answer.
type fault struct {
	Status  int    `json:"status"`  // HTTP status, e.g. 429, 500, 503
	Message string `json:"message"` // Vault's error text for it
	Hang    bool   `json:"hang"`    // wait until the client gives up
	Count   int    `json:"count"`   // how many requests; 0 = until cleared
	Path    string `json:"path"`    // only requests whose mount-relative path starts with this
}

type server struct {
	token, mount, namespace string
	clusterID               string // sys/health's cluster_id: a fresh UUID per server, as Vault makes one at init
	backend                 logical.Backend
	storage                 logical.Storage

	mu      sync.Mutex
	faults  []*fault
	denied  map[string]bool // mount-relative path prefixes a policy denies
	revoked bool            // the token was revoked
	counts  map[string]int  // requests per "METHOD path", faults included
}

func newServer(ctx context.Context, token, mount, namespace string) (*server, error) {
	storage := &logical.InmemStorage{}
	conf := &logical.BackendConfig{
		StorageView: storage,
		Logger:      hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn, Name: "transit"}),
		System: &logical.StaticSystemView{
			DefaultLeaseTTLVal: 24 * time.Hour,
			MaxLeaseTTLVal:     32 * 24 * time.Hour,
		},
		BackendUUID: "00000000-0000-0000-0000-000000000001",
		Config:      map[string]string{},
	}
	b, err := transit.Backend(ctx, conf)
	if err != nil {
		return nil, fmt.Errorf("transit backend: %w", err)
	}
	// vault/sdk v0.9.2 panics on a path that has a create operation but no
	// existence check; transit v1.14.8's cache-config path is one. Supply
	// the check Vault's router would need: the config entry exists.
	for _, p := range b.Backend.Paths {
		if p.Pattern == "cache-config" && p.ExistenceCheck == nil {
			p.ExistenceCheck = func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
				e, err := req.Storage.Get(ctx, "config/cache")
				return e != nil, err
			}
		}
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, fmt.Errorf("transit setup: %w", err)
	}
	if err := b.Initialize(ctx, &logical.InitializationRequest{Storage: storage}); err != nil {
		return nil, fmt.Errorf("transit initialize: %w", err)
	}
	clusterID, err := uuid.GenerateUUID()
	if err != nil {
		return nil, err
	}
	return &server{
		clusterID: clusterID, token: token, mount: strings.Trim(mount, "/"), namespace: namespace,
		backend: b, storage: storage,
		denied: map[string]bool{}, counts: map[string]int{},
	}, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/_admin/"):
		s.admin(w, r)
	case r.URL.Path == "/v1/sys/health":
		respondOK(w, map[string]any{"initialized": true, "sealed": false, "standby": false,
			"cluster_id": s.clusterID, "cluster_name": "vault-cluster-" + s.clusterID[:8], "version": "1.14.8"})
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		s.logical(w, r)
	default:
		logical.RespondError(w, http.StatusNotFound, nil)
	}
}

// logical serves /v1/<mount>/... as Vault's http package does.
func (s *server) logical(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	if s.namespace != "" {
		ns := strings.Trim(r.Header.Get(consts.NamespaceHeaderName), "/")
		if ns != s.namespace {
			// Vault answers a path in an unknown namespace like a path
			// with no mount.
			logical.RespondError(w, http.StatusNotFound, fmt.Errorf("no handler for route %q. route entry not found.", path))
			return
		}
	}
	rel, ok := strings.CutPrefix(path, s.mount+"/")
	if !ok {
		logical.RespondError(w, http.StatusNotFound, fmt.Errorf("no handler for route %q. route entry not found.", path))
		return
	}

	s.mu.Lock()
	s.counts[r.Method+" "+rel]++
	revoked, denied := s.revoked, false
	for p := range s.denied {
		if strings.HasPrefix(rel, p) {
			denied = true
		}
	}
	var f *fault
	for i, x := range s.faults {
		if strings.HasPrefix(rel, x.Path) {
			f = x
			if x.Count > 0 {
				x.Count--
				if x.Count == 0 {
					s.faults = append(s.faults[:i], s.faults[i+1:]...)
				}
			}
			break
		}
	}
	s.mu.Unlock()

	// Vault checks the token before anything else, and a sealed Vault
	// answers before it looks at the token.
	if f != nil && f.Hang {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Minute):
		}
		return
	}
	if f != nil && f.Status == http.StatusServiceUnavailable {
		logical.RespondError(w, f.Status, errors.New(f.Message))
		return
	}
	if r.Header.Get(consts.AuthHeaderName) != s.token || revoked || denied {
		logical.RespondError(w, http.StatusForbidden, logical.ErrPermissionDenied)
		return
	}
	if f != nil {
		logical.RespondError(w, f.Status, errors.New(f.Message))
		return
	}

	var op logical.Operation
	var data map[string]any
	switch r.Method {
	case http.MethodGet:
		op = logical.ReadOperation
		if list, _ := strconv.ParseBool(r.URL.Query().Get("list")); list {
			op = logical.ListOperation
			if !strings.HasSuffix(rel, "/") {
				rel += "/"
			}
		}
	case "LIST":
		op = logical.ListOperation
		if !strings.HasSuffix(rel, "/") {
			rel += "/"
		}
	case http.MethodDelete:
		op = logical.DeleteOperation
	case http.MethodPost, http.MethodPut:
		op = logical.UpdateOperation
		body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		if err != nil {
			logical.RespondError(w, http.StatusBadRequest, err)
			return
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := jsonutil.DecodeJSON(body, &data); err != nil {
				logical.RespondError(w, http.StatusBadRequest, fmt.Errorf("error parsing JSON"))
				return
			}
		}
	default:
		logical.RespondError(w, http.StatusMethodNotAllowed, nil)
		return
	}

	id, _ := uuid.GenerateUUID()
	req := &logical.Request{
		ID:          id,
		Operation:   op,
		Path:        rel,
		Data:        data,
		Storage:     s.storage,
		ClientToken: s.token,
		MountPoint:  s.mount + "/",
		MountType:   "transit",
	}
	ctx := r.Context()

	// As Vault's core: an update on a path with an existence check becomes
	// a create when the resource does not exist.
	if op == logical.UpdateOperation {
		found, exists, err := s.backend.HandleExistenceCheck(ctx, req)
		switch {
		case errors.Is(err, logical.ErrUnsupportedPath):
		case err != nil:
			logical.RespondError(w, http.StatusInternalServerError, err)
			return
		case found && !exists:
			req.Operation = logical.CreateOperation
		}
	}

	resp, err := s.backend.HandleRequest(ctx, req)
	if status, newErr := logical.RespondErrorCommon(req, resp, err); newErr != nil || status != 0 {
		if resp != nil {
			if d := resp.Data["data"]; d != nil {
				logical.RespondErrorAndData(w, status, d, newErr)
				return
			}
		}
		logical.RespondError(w, status, newErr)
		return
	}
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	httpResp := logical.LogicalResponseToHTTPResponse(resp)
	httpResp.RequestID = req.ID
	respondOK(w, httpResp)
}

func respondOK(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(body)
}

// admin serves the fault hooks. Every call needs the server's token.
//
//	POST   /_admin/fault   {"status":429,"message":"...","count":3,"path":"decrypt/"}
//	POST   /_admin/fault   {"hang":true}
//	DELETE /_admin/fault   clear every fault
//	POST   /_admin/deny    {"path":"decrypt/k1"}  (as a policy denying transit/decrypt/k1)
//	DELETE /_admin/deny    clear every deny
//	POST   /_admin/revoke  the token stops working for /v1/ (admin still works)
//	GET    /_admin/counts  {"POST encrypt/k1": 3, ...}
//	DELETE /_admin/counts  reset the counts
func (s *server) admin(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(consts.AuthHeaderName) != s.token {
		logical.RespondError(w, http.StatusForbidden, logical.ErrPermissionDenied)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var body struct {
		fault
	}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			logical.RespondError(w, http.StatusBadRequest, err)
			return
		}
	}
	switch r.Method + " " + r.URL.Path {
	case "POST /_admin/fault":
		f := body.fault
		if !f.Hang && f.Status == 0 {
			logical.RespondError(w, http.StatusBadRequest, errors.New("fault needs a status or hang"))
			return
		}
		s.faults = append(s.faults, &f)
	case "DELETE /_admin/fault":
		s.faults = nil
	case "POST /_admin/deny":
		s.denied[body.Path] = true
	case "DELETE /_admin/deny":
		s.denied = map[string]bool{}
	case "POST /_admin/revoke":
		s.revoked = true
	case "GET /_admin/counts":
		respondOK(w, s.counts)
		return
	case "DELETE /_admin/counts":
		s.counts = map[string]int{}
	default:
		logical.RespondError(w, http.StatusNotFound, nil)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
