package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/tlsconf"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultBackoffBase      = 200 * time.Millisecond
	DefaultBackoffMax       = 5 * time.Second
	DefaultMaxRetryAfter    = 30 * time.Second
	DefaultBreakerFailures  = 5
	DefaultBreakerCoolDown  = 30 * time.Second
	DefaultMaxResponseBytes = 32 << 20
)

// MaxRetries bounds Config.Retries.
const MaxRetries = 10

// ErrConfig reports a Config that New refuses.
var ErrConfig = errors.New("regula client: invalid configuration")

// Config configures one Client. Zero durations, sizes and breaker failures
// take the Default values; Retries has no default: zero means no retry.
type Config struct {
	// URL is the service's base URL, such as "https://docreader:8443" or
	// "https://gateway/regula". Endpoint paths are appended to its path. It
	// MUST be https unless AllowLoopbackHTTP is set and its host is loopback.
	URL string `yaml:"url"`
	// AllowLoopbackHTTP permits an http URL whose host is "localhost" or a
	// loopback IP address. Meant for tests and a service on the same host in
	// development; a non-loopback http URL is refused whatever its value.
	AllowLoopbackHTTP bool `yaml:"allowLoopbackHTTP"`
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS. Both or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// CAFile is a PEM bundle of the CA certificates that may sign the
	// service's certificate. Empty means the system roots.
	CAFile string `yaml:"caFile"`
	// Timeout bounds one call, retries and waits included.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a retryable failure is retried (0 to
	// MaxRetries).
	Retries int `yaml:"retries"`
	// Backoff is the exponential backoff between retries.
	Backoff Backoff `yaml:"backoff"`
	// MaxRetryAfter is the longest Retry-After the client waits for.
	MaxRetryAfter time.Duration `yaml:"maxRetryAfter"`
	// Breaker configures the circuit breaker.
	Breaker Breaker `yaml:"breaker"`
	// MaxResponseBytes bounds a response body.
	MaxResponseBytes int64 `yaml:"maxResponseBytes"`
}

// Backoff is an exponential backoff: before retry n (from 0) the client waits
// min(Base·2ⁿ, Max), of which half is fixed and half random.
type Backoff struct {
	Base time.Duration `yaml:"base"`
	Max  time.Duration `yaml:"max"`
}

// Breaker configures the circuit breaker: Failures consecutive failed
// attempts open it for CoolDown.
type Breaker struct {
	Failures int           `yaml:"failures"`
	CoolDown time.Duration `yaml:"coolDown"`
}

// Options are a Client's collaborators. Every field is optional.
type Options struct {
	// Service names the service in errors and logs ("docreader").
	Service string
	// Logger receives retry and breaker events; nil discards them.
	Logger *slog.Logger
	// Now is the breaker's clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done, returning ctx.Err() in that case;
	// nil means a timer. Tests replace it to see the waits without taking
	// them.
	Sleep func(ctx context.Context, d time.Duration) error
}

// withDefaults returns cfg with zero fields set to their defaults, and every
// problem found, joined.
func (cfg Config) withDefaults() (Config, error) {
	setDuration := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDuration(&cfg.Timeout, DefaultTimeout)
	setDuration(&cfg.Backoff.Base, DefaultBackoffBase)
	setDuration(&cfg.Backoff.Max, DefaultBackoffMax)
	setDuration(&cfg.MaxRetryAfter, DefaultMaxRetryAfter)
	setDuration(&cfg.Breaker.CoolDown, DefaultBreakerCoolDown)
	if cfg.Breaker.Failures == 0 {
		cfg.Breaker.Failures = DefaultBreakerFailures
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if cfg.Timeout < 0 || cfg.Backoff.Base < 0 || cfg.Backoff.Max < 0 || cfg.MaxRetryAfter < 0 || cfg.Breaker.CoolDown < 0 {
		bad("durations must not be negative")
	}
	if cfg.Backoff.Max < cfg.Backoff.Base {
		bad("backoff.max %v is below backoff.base %v", cfg.Backoff.Max, cfg.Backoff.Base)
	}
	if cfg.Retries < 0 || cfg.Retries > MaxRetries {
		bad("retries %d is outside 0..%d", cfg.Retries, MaxRetries)
	}
	if cfg.Breaker.Failures < 0 {
		bad("breaker.failures %d is negative", cfg.Breaker.Failures)
	}
	if cfg.MaxResponseBytes < 0 {
		bad("maxResponseBytes %d is negative", cfg.MaxResponseBytes)
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		bad("certFile and keyFile go together")
	}
	return cfg, errors.Join(errs...)
}

// parseBaseURL checks the base URL against the transport policy.
func parseBaseURL(raw string, allowLoopbackHTTP, clientCert bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %w", ErrConfig, err)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: url %q has no host", ErrConfig, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: url must not carry user info, a query or a fragment", ErrConfig)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowLoopbackHTTP || !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: url %q must use https (http only for a loopback host when allowed)", ErrConfig, raw)
		}
		if clientCert {
			return nil, fmt.Errorf("%w: a client certificate needs an https url", ErrConfig)
		}
	default:
		return nil, fmt.Errorf("%w: url scheme %q is not https", ErrConfig, u.Scheme)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig builds the client TLS configuration from cfg.
func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsconf.TLS12CipherSuites(),
	}
	if cfg.CAFile != "" {
		pool, err := tlsconf.LoadCAs(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
