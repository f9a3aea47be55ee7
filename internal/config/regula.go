package config

import (
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/regula/httpx"
)

// Regula configures the connections to Regula's Document Reader and Face
// API web services: the workflow role's clients and the API role's /drapi
// and /faceapi gateway. Both are optional; a service whose url is empty is
// not configured.
type Regula struct {
	// DocReader is the Document Reader service.
	DocReader RegulaService `yaml:"docReader"`
	// FaceAPI is the Face API service.
	FaceAPI RegulaFaceAPI `yaml:"faceAPI"`
	// Gateway bounds what the API's gateway forwards for device tokens.
	Gateway RegulaGateway `yaml:"gateway"`
}

// RegulaGateway bounds the API's /drapi and /faceapi gateway.
type RegulaGateway struct {
	// MaxCallsPerSession is how many calls the gateway forwards for the
	// device tokens of one session, all of them and every API process
	// together (the count is kept in the store). At least 1. Default 50.
	MaxCallsPerSession int `yaml:"maxCallsPerSession"`
}

// RegulaService configures one Regula service: where it is, how idvault
// reaches it (internal/regula/httpx) and how much the gateway forwards.
type RegulaService struct {
	// URL is the service's base URL, such as https://docreader:8443. Empty:
	// the service is not configured.
	URL string `yaml:"url"`
	// AllowLoopbackHTTP permits an http URL whose host is localhost or a
	// loopback address, in dev mode only.
	AllowLoopbackHTTP bool `yaml:"allowLoopbackHTTP"`
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS; both or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// CAFile is the PEM bundle that verifies the service's certificate;
	// empty uses the system roots.
	CAFile string `yaml:"caFile"`
	// Timeout bounds one call, retries included. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a call that cannot have been processed is
	// retried (0 to 10). Default 2.
	Retries int `yaml:"retries"`
	// Backoff is the exponential backoff between retries.
	Backoff RegulaBackoff `yaml:"backoff"`
	// MaxRetryAfter is the longest Retry-After waited for. Default 30s.
	MaxRetryAfter time.Duration `yaml:"maxRetryAfter"`
	// Breaker is the circuit breaker.
	Breaker RegulaBreaker `yaml:"breaker"`
	// MaxRequestBytes bounds a request body the gateway forwards. Default
	// 32 MiB.
	MaxRequestBytes int64 `yaml:"maxRequestBytes"`
	// MaxResponseBytes bounds a response body. Default 32 MiB.
	MaxResponseBytes int64 `yaml:"maxResponseBytes"`
}

// RegulaFaceAPI is a RegulaService with the face match threshold. Its keys
// repeat RegulaService's because the loader has no inline sections.
type RegulaFaceAPI struct {
	URL               string        `yaml:"url"`
	AllowLoopbackHTTP bool          `yaml:"allowLoopbackHTTP"`
	CertFile          string        `yaml:"certFile"`
	KeyFile           string        `yaml:"keyFile"`
	CAFile            string        `yaml:"caFile"`
	Timeout           time.Duration `yaml:"timeout"`
	Retries           int           `yaml:"retries"`
	Backoff           RegulaBackoff `yaml:"backoff"`
	MaxRetryAfter     time.Duration `yaml:"maxRetryAfter"`
	Breaker           RegulaBreaker `yaml:"breaker"`
	MaxRequestBytes   int64         `yaml:"maxRequestBytes"`
	MaxResponseBytes  int64         `yaml:"maxResponseBytes"`
	// MatchThreshold is the similarity (0 to 1) at or above which a
	// document portrait and a selfie are the same person. Default 0.75.
	MatchThreshold float64 `yaml:"matchThreshold"`
}

// RegulaBackoff is the exponential backoff between retries: min(base·2ⁿ,
// max) before retry n.
type RegulaBackoff struct {
	// Base is the first wait. Default 200ms.
	Base time.Duration `yaml:"base"`
	// Max caps a wait. Default 5s.
	Max time.Duration `yaml:"max"`
}

// RegulaBreaker configures the circuit breaker: Failures consecutive
// failed attempts open it for CoolDown.
type RegulaBreaker struct {
	// Failures opens the breaker. Default 5.
	Failures int `yaml:"failures"`
	// CoolDown is how long it stays open. Default 30s.
	CoolDown time.Duration `yaml:"coolDown"`
}

// Service returns the Face API's connection settings.
func (f RegulaFaceAPI) Service() RegulaService {
	return RegulaService{
		URL: f.URL, AllowLoopbackHTTP: f.AllowLoopbackHTTP, CertFile: f.CertFile, KeyFile: f.KeyFile, CAFile: f.CAFile,
		Timeout: f.Timeout, Retries: f.Retries, Backoff: f.Backoff, MaxRetryAfter: f.MaxRetryAfter, Breaker: f.Breaker,
		MaxRequestBytes: f.MaxRequestBytes, MaxResponseBytes: f.MaxResponseBytes,
	}
}

// Configured reports whether the service has a URL.
func (s RegulaService) Configured() bool { return s.URL != "" }

// Client returns the settings of the service's HTTP client.
func (s RegulaService) Client() httpx.Config {
	return httpx.Config{
		URL: s.URL, AllowLoopbackHTTP: s.AllowLoopbackHTTP, CertFile: s.CertFile, KeyFile: s.KeyFile, CAFile: s.CAFile,
		Timeout: s.Timeout, Retries: s.Retries,
		Backoff:       httpx.Backoff{Base: s.Backoff.Base, Max: s.Backoff.Max},
		MaxRetryAfter: s.MaxRetryAfter,
		Breaker:       httpx.Breaker{Failures: s.Breaker.Failures, CoolDown: s.Breaker.CoolDown},
		// MaxResponseBytes is set: a zero would mean httpx's default, but
		// Validate refuses it.
		MaxResponseBytes: s.MaxResponseBytes,
	}
}

func baseRegulaService() RegulaService {
	return RegulaService{
		Timeout: 30 * time.Second, Retries: 2,
		Backoff:         RegulaBackoff{Base: 200 * time.Millisecond, Max: 5 * time.Second},
		MaxRetryAfter:   30 * time.Second,
		Breaker:         RegulaBreaker{Failures: 5, CoolDown: 30 * time.Second},
		MaxRequestBytes: 32 << 20, MaxResponseBytes: 32 << 20,
	}
}

func baseRegula() Regula {
	s := baseRegulaService()
	return Regula{DocReader: s, FaceAPI: RegulaFaceAPI{
		Timeout: s.Timeout, Retries: s.Retries, Backoff: s.Backoff, MaxRetryAfter: s.MaxRetryAfter, Breaker: s.Breaker,
		MaxRequestBytes: s.MaxRequestBytes, MaxResponseBytes: s.MaxResponseBytes, MatchThreshold: 0.75,
	}, Gateway: RegulaGateway{MaxCallsPerSession: 50}}
}

func (c Config) validateRegula(ps *problems, prod bool) {
	validateRegulaService(ps, "regula.docReader", c.Regula.DocReader, prod)
	f := c.Regula.FaceAPI
	validateRegulaService(ps, "regula.faceAPI", f.Service(), prod)
	if !(f.MatchThreshold > 0 && f.MatchThreshold <= 1) {
		ps.add("regula.faceAPI.matchThreshold", "must be above 0 and at most 1, got %v", f.MatchThreshold)
	}
	ps.atLeast("regula.gateway.maxCallsPerSession", int64(c.Regula.Gateway.MaxCallsPerSession), 1)
}

// validateRegulaService checks one service's settings; an unconfigured
// service (empty url) is not checked further.
func validateRegulaService(ps *problems, key string, s RegulaService, prod bool) {
	if !s.Configured() {
		return
	}
	if s.AllowLoopbackHTTP && prod {
		ps.add(key+".allowLoopbackHTTP", "must be false in production mode")
	}
	u, err := url.Parse(s.URL)
	switch {
	case err != nil:
		ps.add(key+".url", "must be a URL: %v", err)
	case u.Host == "" || u.Opaque != "":
		ps.add(key+".url", "must be an absolute https URL with a host, got %q", s.URL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		ps.add(key+".url", "must not carry user info, a query or a fragment")
	case u.Scheme == "https":
		if s.AllowLoopbackHTTP && !regulaLoopback(u.Hostname()) {
			ps.add(key+".allowLoopbackHTTP", "is only for a loopback host, and %q is not one", u.Hostname())
		}
	case u.Scheme == "http":
		switch {
		case prod:
			ps.add(key+".url", "must use https in production mode, got %q", s.URL)
		case !s.AllowLoopbackHTTP || !regulaLoopback(u.Hostname()):
			ps.add(key+".url", "must use https; http only for a loopback host with allowLoopbackHTTP, got %q", s.URL)
		case s.CertFile != "":
			ps.add(key+".certFile", "a client certificate needs an https url")
		}
	default:
		ps.add(key+".url", "scheme must be https, got %q", u.Scheme)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		ps.add(key+".certFile", "certFile and keyFile must be set together")
	}
	ps.positive(key+".timeout", s.Timeout)
	if s.Retries < 0 || s.Retries > httpx.MaxRetries {
		ps.add(key+".retries", "must be 0 to %d, got %d", httpx.MaxRetries, s.Retries)
	}
	ps.positive(key+".backoff.base", s.Backoff.Base)
	ps.positive(key+".backoff.max", s.Backoff.Max)
	if s.Backoff.Max < s.Backoff.Base {
		ps.add(key+".backoff.max", "must not be less than backoff.base (%s), got %s", s.Backoff.Base, s.Backoff.Max)
	}
	ps.positive(key+".maxRetryAfter", s.MaxRetryAfter)
	ps.atLeast(key+".breaker.failures", int64(s.Breaker.Failures), 1)
	ps.positive(key+".breaker.coolDown", s.Breaker.CoolDown)
	ps.atLeast(key+".maxRequestBytes", s.MaxRequestBytes, 1)
	ps.atLeast(key+".maxResponseBytes", s.MaxResponseBytes, 1)
}

// regulaLoopback reports whether host is localhost or a loopback address,
// as internal/regula/httpx decides.
func regulaLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
