package regulatest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/testenv/testtls"
)

// Options configure a stand-in's transport.
type Options struct {
	// TLS serves https with httptest's certificate for 127.0.0.1; CAFile
	// returns it for the client to trust.
	TLS bool
	// ClientCAs, when not nil, requires every client to present a
	// certificate that verifies against it (mutual TLS). It implies TLS.
	ClientCAs *x509.CertPool
}

// faultKind tells what a Fault does.
type faultKind int

const (
	faultNone faultKind = iota
	faultDelay
	faultStatus
	faultRateLimit
	faultMalformed
	faultNoFace
	faultBadDocument
	faultResultCode
)

// Fault is a misbehaviour injected into a stand-in's answer. The zero Fault
// is no fault.
type Fault struct {
	kind       faultKind
	delay      time.Duration
	status     int
	retryAfter string
	code       int
}

// Delay holds the answer for d, or until the client goes away, then answers
// normally.
func Delay(d time.Duration) Fault { return Fault{kind: faultDelay, delay: d} }

// Status answers with status code (such as 500, 502, 503 or 504) and a
// plain-text body.
func Status(code int) Fault { return Fault{kind: faultStatus, status: code} }

// RateLimited answers 429 Too Many Requests with the Retry-After header
// value retryAfter (omitted when empty).
func RateLimited(retryAfter string) Fault {
	return Fault{kind: faultRateLimit, status: http.StatusTooManyRequests, retryAfter: retryAfter}
}

// MalformedJSON answers 200 with an application/json body that is not JSON.
func MalformedJSON() Fault { return Fault{kind: faultMalformed} }

// NoFace makes the Face API report that no face was detected (match: code
// FR_FACE_NOT_DETECTED with detection status 2 for the second image; detect:
// code 0 with no detection) and the Document Reader return no portrait.
func NoFace() Fault { return Fault{kind: faultNoFace} }

// BadDocument makes the Document Reader report an expired document: Status
// overallStatus, optical, detailsOptical.expiry and the text statuses are 0
// (ERROR).
func BadDocument() Fault { return Fault{kind: faultBadDocument} }

// ResultCode makes the Face API answer with the FaceSDKResultCode code.
func ResultCode(code int) Fault { return Fault{kind: faultResultCode, code: code} }

// Server is a running stand-in: a real HTTP server on a loopback port. Its
// methods are safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	caFile string

	mu         sync.Mutex
	queue      []Fault
	always     Fault
	requests   int
	rejections []string
}

// start serves h as described by opts and closes the server when tb ends.
func start(tb testing.TB, opts Options, h func(s *Server, w http.ResponseWriter, r *http.Request)) *Server {
	tb.Helper()
	s := &Server{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		h(s, w, r)
	})
	if opts.TLS || opts.ClientCAs != nil {
		s.srv, s.caFile = testtls.NewServer(tb, handler, func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			if opts.ClientCAs != nil {
				c.ClientCAs = opts.ClientCAs
				c.ClientAuth = tls.RequireAndVerifyClientCert
			}
		})
		return s
	}
	s.srv = httptest.NewUnstartedServer(handler)
	// Keep the server's own errors out of the log, as testtls.NewServer does.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.Start()
	tb.Cleanup(s.srv.Close)
	return s
}

// URL returns the base URL, such as "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.srv.URL }

// CAFile returns a PEM file holding the certificate of a TLS stand-in, for
// the client's CA file; "" for plain http.
func (s *Server) CAFile() string { return s.caFile }

// Inject queues faults: each later request that passes validation takes the
// next one, in order. Queued faults come before the one set by SetFault.
func (s *Server) Inject(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, faults...)
}

// SetFault applies f to every valid request that finds the queue empty;
// SetFault(Fault{}) clears it.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = f
}

// Requests returns how many requests reached the server, valid or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Rejections returns why each rejected request was rejected, oldest first.
func (s *Server) Rejections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejections...)
}

// nextFault takes the fault for a valid request.
func (s *Server) nextFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		f := s.queue[0]
		s.queue = s.queue[1:]
		return f
	}
	return s.always
}

// reject records reason and answers with status and body.
func (s *Server) reject(w http.ResponseWriter, status int, reason string, body func(w http.ResponseWriter, status int, reason string)) {
	s.mu.Lock()
	s.rejections = append(s.rejections, reason)
	s.mu.Unlock()
	body(w, status, reason)
}

// applyTransportFault carries out the faults that do not depend on the API
// and reports whether it answered.
func applyTransportFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	switch f.kind {
	case faultDelay:
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
	case faultStatus, faultRateLimit:
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		http.Error(w, http.StatusText(f.status), f.status)
		return true
	case faultMalformed:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ContainerList": {"List": [{"result_type": 33,`))
		return true
	}
	return false
}

// checkJSONRequest checks the method and content type of a JSON POST.
func checkJSONRequest(r *http.Request) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, fmt.Sprintf("method %s, want POST", r.Method)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return http.StatusBadRequest, fmt.Sprintf("content type %q, want application/json", r.Header.Get("Content-Type"))
	}
	return 0, ""
}

// object is a JSON object whose properties are checked one by one.
type object map[string]json.RawMessage

// checkKeys reports the first property of o that allowed does not list, and
// the first of required that o lacks, naming them with where.
func (o object) checkKeys(where string, allowed map[string]bool, required ...string) error {
	for k := range o {
		if !allowed[k] {
			return fmt.Errorf("%s: property %q is not in the spec", where, k)
		}
	}
	for _, k := range required {
		if v, ok := o[k]; !ok || string(v) == "null" {
			return fmt.Errorf("%s: required property %q is missing", where, k)
		}
	}
	return nil
}

// decodeObject decodes data as a JSON object.
func decodeObject(where string, data []byte) (object, error) {
	var o object
	if err := json.Unmarshal(data, &o); err != nil || o == nil {
		return nil, fmt.Errorf("%s: not a JSON object", where)
	}
	return o, nil
}

// set builds a lookup set.
func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

// plainError answers status with a plain-text reason.
func plainError(w http.ResponseWriter, status int, reason string) {
	http.Error(w, strings.TrimSpace(reason), status)
}
