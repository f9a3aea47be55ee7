package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/idvault/idvault/internal/tlsconf"
)

// Defaults of SyslogConfig.
const (
	DefaultFacility       = "authpriv"
	DefaultMaxMessageSize = 2048
	DefaultDialTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultAcceptWait     = 500 * time.Millisecond
)

// MinMaxMessageSize is the smallest MaxMessageSize accepted. It leaves room
// for the longest header (a 255-byte hostname) and a useful fragment.
const MinMaxMessageSize = 1024

// facilities are the facility names SyslogConfig.Facility accepts: the
// security ones, the generic daemon and user, and the local ones. Facilities
// of other subsystems (kern, mail, cron, ...) are not offered.
var facilities = map[string]int{
	"user": 1, "daemon": 3, "auth": 4, "authpriv": 10,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ErrBackoff is returned by Syslog.Write while the sink waits before its next
// connection attempt. The error also wraps the failure that caused the wait.
var ErrBackoff = errors.New("syslog sink: waiting before reconnecting")

// SyslogConfig configures a Syslog sink. Zero fields take the defaults named.
type SyslogConfig struct {
	// Address is the server's host:port (RFC 5425 assigns port 6514).
	// Required.
	Address string
	// ServerName is the name the server certificate must hold; default: the
	// host of Address.
	ServerName string
	// CAFile is a PEM file of the CA certificates that verify the server;
	// empty means the system roots. Every PEM block must be a certificate.
	CAFile string
	// CertFile and KeyFile are the client certificate and key for servers
	// that require one (mTLS); both or neither.
	CertFile, KeyFile string
	// Facility is the syslog facility name (see the package doc for why the
	// default is authpriv): user, daemon, auth, authpriv, local0 … local7.
	Facility string
	// Hostname is the HOSTNAME header field; default os.Hostname(). It must
	// be 1 to 255 printable US-ASCII characters.
	Hostname string
	// MaxMessageSize bounds each syslog message in octets, framing length
	// excluded; longer events are split (see the package doc). Default 2048,
	// minimum MinMaxMessageSize.
	MaxMessageSize int
	// DialTimeout bounds connecting, TLS handshake included.
	DialTimeout time.Duration
	// WriteTimeout bounds sending one batch.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed connection or
	// write; it doubles with each consecutive failure.
	MinBackoff, MaxBackoff time.Duration
	// AcceptWait is how long a new connection waits, before its first
	// batch, for a server that refuses the client after the TLS handshake to
	// hang up: rsyslog checks client certificates only after the handshake,
	// and TLS 1.3 servers reject them after the client has finished. Without
	// the wait, every batch sent on such a connection would be lost while
	// Write reported success. Default 500ms, once per connection; negative
	// disables it.
	AcceptWait time.Duration
	// Logger receives connection state and errors; default: discarded.
	Logger *slog.Logger
}

// Syslog sends entries to a syslog server over TLS (see the package doc). It
// holds at most one connection, opened on the first Write and reopened after
// a failure, no sooner than the backoff allows. It is safe for concurrent
// use; Write calls are serialized.
type Syslog struct {
	address    string
	serverName string
	caFile     string
	certFile   string
	keyFile    string
	facility   int
	hostname   string
	procid     string
	maxSize    int
	dialTO     time.Duration
	writeTO    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	acceptWait time.Duration
	log        *slog.Logger
	now        func() time.Time // clock of the backoff; I/O deadlines use time.Now

	mu       sync.Mutex
	conn     *tls.Conn
	closed   bool
	failures int
	retryAt  time.Time
	lastErr  error
}

var _ Sink = (*Syslog)(nil)

// NewSyslog checks cfg, reading its CA and client certificate files, and
// returns a sink. It does not connect; the first Write does. It reports
// every problem of cfg at once.
func NewSyslog(cfg SyslogConfig) (*Syslog, error) {
	s := &Syslog{
		address:    cfg.Address,
		serverName: cfg.ServerName,
		caFile:     cfg.CAFile,
		certFile:   cfg.CertFile,
		keyFile:    cfg.KeyFile,
		hostname:   cfg.Hostname,
		procid:     strconv.Itoa(os.Getpid()),
		maxSize:    orDefault(cfg.MaxMessageSize, DefaultMaxMessageSize),
		dialTO:     orDefault(cfg.DialTimeout, DefaultDialTimeout),
		writeTO:    orDefault(cfg.WriteTimeout, DefaultWriteTimeout),
		minBackoff: orDefault(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff: orDefault(cfg.MaxBackoff, DefaultMaxBackoff),
		acceptWait: orDefault(cfg.AcceptWait, DefaultAcceptWait),
		log:        cfg.Logger,
		now:        time.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		errs = append(errs, fmt.Errorf("address %q: %w", cfg.Address, err))
	} else if s.serverName == "" {
		s.serverName = host
	}
	facility := cfg.Facility
	if facility == "" {
		facility = DefaultFacility
	}
	var ok bool
	if s.facility, ok = facilities[facility]; !ok {
		errs = append(errs, fmt.Errorf("facility %q: want user, daemon, auth, authpriv or local0 to local7", facility))
	}
	if s.hostname == "" {
		if s.hostname, err = os.Hostname(); err != nil {
			errs = append(errs, fmt.Errorf("hostname: %w", err))
		}
	}
	if !validHostname(s.hostname) {
		errs = append(errs, fmt.Errorf("hostname %q: want 1 to 255 printable US-ASCII characters", s.hostname))
	}
	if s.maxSize < MinMaxMessageSize {
		errs = append(errs, fmt.Errorf("max message size %d: want at least %d", s.maxSize, MinMaxMessageSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial timeout", s.dialTO}, {"write timeout", s.writeTO}, {"min backoff", s.minBackoff}, {"max backoff", s.maxBackoff}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", d.name, d.v))
		}
	}
	if s.maxBackoff < s.minBackoff {
		errs = append(errs, fmt.Errorf("max backoff %s is below min backoff %s", s.maxBackoff, s.minBackoff))
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		errs = append(errs, errors.New("client certificate: set both cert file and key file, or neither"))
	}
	if len(errs) == 0 {
		if _, err := s.tlsConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("syslog sink: %w", err)
	}
	return s, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] < 33 || h[i] > 126 {
			return false
		}
	}
	return true
}

// tlsConfig builds the client configuration, reading the CA and client
// certificate files again so that each connection uses the current ones.
func (s *Syslog) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsconf.TLS12CipherSuites(),
		ServerName:   s.serverName,
	}
	if s.caFile != "" {
		pool, err := tlsconf.LoadCAs(s.caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if s.certFile != "" {
		cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return c, nil
}

// Name returns "syslog".
func (s *Syslog) Name() string { return "syslog" }

// Write sends one message per entry (several for an entry split by size) in
// one TLS write. It returns nil when the batch was written to the
// connection; see the package doc for what that does and does not promise.
// When an entry is invalid it sends nothing and returns an *EntryError. When
// it cannot connect or send it returns the error, closes the connection and
// waits before connecting again: until then Write fails at once with an error
// wrapping ErrBackoff.
func (s *Syslog) Write(ctx context.Context, entries []Entry) error {
	var buf []byte
	for i := range entries {
		var err error
		if buf, err = s.appendEntry(buf, &entries[i]); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(buf) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("syslog sink: %w", err)
	}
	if s.conn != nil && peerClosed(s.conn) {
		s.log.Info("audit syslog sink: server closed the connection; reconnecting", "address", s.address)
		s.dropConn()
	}
	if s.conn == nil {
		if now := s.now(); now.Before(s.retryAt) {
			return fmt.Errorf("%w for %s after: %w", ErrBackoff, s.retryAt.Sub(now), s.lastErr)
		}
		if err := s.dial(ctx); err != nil {
			s.fail(err)
			return fmt.Errorf("syslog sink: connect to %s: %w", s.address, err)
		}
	}
	if err := s.send(ctx, buf); err != nil {
		s.fail(err)
		s.dropConn()
		return fmt.Errorf("syslog sink: send to %s: %w", s.address, err)
	}
	s.failures = 0
	s.lastErr = nil
	return nil
}

func (s *Syslog) dial(ctx context.Context) error {
	cfg, err := s.tlsConfig()
	if err != nil {
		return err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: s.dialTO}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", s.address)
	if err != nil {
		return err
	}
	conn := c.(*tls.Conn)
	if err := s.awaitAccept(ctx, conn); err != nil {
		_ = conn.Close()
		return err
	}
	s.conn = conn
	s.log.Info("audit syslog sink: connected", "address", s.address,
		"tls", tls.VersionName(conn.ConnectionState().Version))
	return nil
}

// awaitAccept waits up to the accept wait for the server to hang up on a new
// connection (see SyslogConfig.AcceptWait). Silence means accepted.
func (s *Syslog) awaitAccept(ctx context.Context, conn *tls.Conn) error {
	if s.acceptWait <= 0 {
		return nil
	}
	deadline := time.Now().Add(s.acceptWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	var buf [1]byte
	_, err := conn.Read(buf[:])
	stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne interface{ Timeout() bool }
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("server closed the connection after the TLS handshake (does it require a client certificate, or refuse this one?): %w", err)
	}
	return conn.SetReadDeadline(time.Time{})
}

// send writes buf to the connection within the write timeout and ctx.
func (s *Syslog) send(ctx context.Context, buf []byte) error {
	deadline := time.Now().Add(s.writeTO)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(buf); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return err
	}
	return nil
}

// fail records a failed attempt and sets the time of the next one.
func (s *Syslog) fail(err error) {
	s.failures++
	wait := s.minBackoff
	for i := 1; i < s.failures && wait < s.maxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, s.maxBackoff)
	s.retryAt = s.now().Add(wait)
	s.lastErr = err
	s.log.Warn("audit syslog sink: delivery failed", "address", s.address, "err", err,
		"failures", s.failures, "retryIn", wait)
}

func (s *Syslog) dropConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close closes the connection, sending a TLS close_notify. It is safe to call
// more than once; it waits for a Write in progress.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	if err != nil {
		return fmt.Errorf("syslog sink: close: %w", err)
	}
	return nil
}
