// Package faultproxy is test support: an HTTP reverse proxy on 127.0.0.1 in
// front of a KMS test server (local-kms, Vault) that injects the faults a
// real network and a real KMS produce: added latency, connections dropped
// without an answer, 5xx answers and throttling answers, each with the body
// the KMS itself would send. It counts every request it sees, faulted or
// not, so a test can bound a client's retries.
//
// It is for tests only and listens on 127.0.0.1 only.
package faultproxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Fault is what the proxy does to each request; the zero Fault forwards.
type Fault struct {
	Latency time.Duration // added before the request is forwarded (or faulted)
	Drop    bool          // close the connection without an answer
	Status  int           // answer with this status instead of forwarding (0: forward)
	Body    string        // body of a Status answer
	Header  http.Header   // headers of a Status answer
	// DropAnswer forwards the request, lets the server act on it, then
	// resets the connection instead of answering: a write that landed
	// and whose answer was lost.
	DropAnswer bool
	// Method, when set, faults only requests with this method; others
	// are forwarded.
	Method string
	// Times, when set, faults only that many matching requests; later
	// ones are forwarded.
	Times int
	// Skip forwards the first Skip matching requests, then faults.
	Skip int
}

// Proxy is a fault-injecting reverse proxy.
type Proxy struct {
	URL  string // http://127.0.0.1:PORT
	Host string // 127.0.0.1:PORT

	srv *httptest.Server
	rp  *httputil.ReverseProxy

	mu       sync.Mutex
	fault    Fault
	requests int
	faulted  int
	matched  int
	conns    int         // client connections accepted, since Start
	statuses map[int]int // answers forwarded from the server, by status
	body     int64       // bytes of those answers' bodies
}

// Start proxies to target (an http:// URL on 127.0.0.1) until the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("faultproxy: target %q: %v", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen on 127.0.0.1: %v", err)
	}
	p := &Proxy{rp: httputil.NewSingleHostReverseProxy(u)}
	// Reuse connections to the server as a client's to the proxy are
	// reused (the default transport keeps 2 idle per host): the proxy
	// should add the faults it is told to, not connection churn.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
	p.rp.Transport = tr
	p.rp.BufferPool = &bufferPool{}
	p.rp.ErrorLog = nil
	p.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: p, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			p.mu.Lock()
			p.conns++
			p.mu.Unlock()
		}
	}}}
	p.srv.Start()
	p.URL = p.srv.URL
	p.Host = ln.Addr().String()
	t.Cleanup(p.srv.Close)
	return p
}

// Set makes every later request meet f.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
	p.matched = 0
}

// Requests returns the requests seen since Start or Reset.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// Faulted returns the requests dropped or answered by the proxy itself.
func (p *Proxy) Faulted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faulted
}

// Conns returns the client connections the proxy has accepted since
// Start: a client that reuses its connections opens few.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

// Reset zeroes the counts.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests, p.faulted, p.matched = 0, 0, 0
	p.statuses, p.body = nil, 0
}

// Answers returns, since Start or Reset, how many answers the server sent
// back through the proxy by HTTP status, and the bytes of their bodies.
func (p *Proxy) Answers() (map[int]int, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]int{}
	for k, v := range p.statuses {
		out[k] = v
	}
	return out, p.body
}

// bufferPool reuses the proxy's copy buffers (without one, ReverseProxy
// allocates 32 KiB per answer).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// counting is a ResponseWriter that records an answer's status and body
// size in its proxy before they reach the client, so a client that has its
// answer sees it counted.
type counting struct {
	http.ResponseWriter
	p      *Proxy
	status int
}

func (c *counting) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
		c.p.mu.Lock()
		if c.p.statuses == nil {
			c.p.statuses = map[int]int{}
		}
		c.p.statuses[status]++
		c.p.mu.Unlock()
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *counting) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	c.p.mu.Lock()
	c.p.body += int64(len(b))
	c.p.mu.Unlock()
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (c *counting) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// reset closes the client's connection without an answer.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faultproxy: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as a dropped connection looks
		}
		conn.Close()
	}
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests++
	f := p.fault
	matching := f.Method == "" || r.Method == f.Method
	if matching && (f.Method != "" || f.Times > 0 || f.Skip > 0) {
		p.matched++
	}
	if !matching || (f.Times > 0 && p.matched > f.Skip+f.Times) || p.matched <= f.Skip && f.Skip > 0 {
		f = Fault{Latency: f.Latency}
	}
	if f.Drop || f.Status != 0 || f.DropAnswer {
		p.faulted++
	}
	p.mu.Unlock()
	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.DropAnswer:
		p.rp.ServeHTTP(httptest.NewRecorder(), r)
		reset(w)
	case f.Drop:
		reset(w)
	case f.Status != 0:
		for k, v := range f.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(f.Body))
	default:
		p.rp.ServeHTTP(&counting{ResponseWriter: w, p: p}, r)
	}
}

// AWS faults, with the awsJson1_1 error bodies AWS KMS sends.
var (
	AWSThrottle = Fault{Status: 400, Body: `{"__type":"ThrottlingException","message":"Rate exceeded"}`,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}}
	AWSInternal = Fault{Status: 500, Body: `{"__type":"KMSInternalException","message":"An internal error occurred"}`,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}}
	AWSUnavailable = Fault{Status: 503, Body: `{"__type":"ServiceUnavailableException","message":"Service unavailable"}`,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}}}
)

// Vault faults, with Vault's JSON error bodies.
var (
	VaultThrottle = Fault{Status: 429, Body: `{"errors":["request path \"transit/decrypt\": rate limit quota exceeded"]}`,
		Header: http.Header{"Content-Type": {"application/json"}}}
	VaultInternal = Fault{Status: 500, Body: `{"errors":["internal error"]}`,
		Header: http.Header{"Content-Type": {"application/json"}}}
	VaultSealed = Fault{Status: 503, Body: `{"errors":["Vault is sealed"]}`,
		Header: http.Header{"Content-Type": {"application/json"}}}
)
