package config

import (
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/idvault/idvault/internal/secret"
)

// Audit configures the tamper-evident audit log (DESIGN.md §6).
type Audit struct {
	// SigningKey references the Ed25519 key that signs checkpoints, as a
	// signed-note private key (PRIVATE+KEY+name+hash+data, made by idvault
	// audit keygen). Required in production; dev mode generates
	// DATA_DIR/keys/audit/signing.key when empty.
	SigningKey secret.Ref `yaml:"signingKey"`
	// Origin names this deployment's logs in their checkpoints; tenant t's
	// log is Origin/t. Default: the host of api.publicURL followed by
	// /audit.
	Origin string `yaml:"origin"`
	// CheckpointEvery is N: a checkpoint is signed once N events follow the
	// last one. Default 1000.
	CheckpointEvery int `yaml:"checkpointEvery"`
	// CheckpointInterval is T: a checkpoint is signed when an event has
	// waited T unsigned. Default 1m.
	CheckpointInterval time.Duration `yaml:"checkpointInterval"`
	// KeepFor is how long events are kept; older whole segments are pruned
	// while the log stays verifiable from the oldest retained checkpoint.
	// Default 2160h (90 days); 0 keeps everything.
	KeepFor time.Duration `yaml:"keepFor"`
	// Sinks forward every appended event to outside systems.
	Sinks AuditSinks `yaml:"sinks"`
}

// AuditSinks are the optional forwarding sinks of the audit log.
type AuditSinks struct {
	// File appends every event as one NDJSON line to a file.
	File AuditFileSink `yaml:"file"`
	// Syslog sends every event as an RFC 5424 message over TLS (RFC 5425).
	Syslog AuditSyslogSink `yaml:"syslog"`
}

// AuditFileSink is the NDJSON file sink; it is off while Path is empty.
type AuditFileSink struct {
	// Path is the file events are appended to (created 0600). Reopened on
	// SIGHUP, for log rotation.
	Path string `yaml:"path"`
}

// AuditSyslogSink is the syslog-over-TLS sink; it is off while Address is
// empty.
type AuditSyslogSink struct {
	// Address is the collector's host:port (TLS only; 6514 is the
	// registered port).
	Address string `yaml:"address"`
	// CAFile verifies the collector's certificate; empty uses the system
	// roots.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are this process's client certificate, for
	// collectors that require mutual TLS.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// Facility is the syslog facility: user, daemon, auth, authpriv or
	// local0 … local7. Default authpriv: security messages that only
	// privileged staff read (the events hold client addresses).
	Facility string `yaml:"facility"`
}

func baseAudit() Audit {
	return Audit{CheckpointEvery: 1000, CheckpointInterval: time.Minute, KeepFor: 90 * 24 * time.Hour,
		Sinks: AuditSinks{Syslog: AuditSyslogSink{Facility: "authpriv"}}}
}

func (c *Config) deriveAudit() {
	if c.Audit.Origin == "" {
		host := "localhost"
		if u, err := url.Parse(c.API.PublicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		c.Audit.Origin = host + "/audit"
	}
}

func (c Config) validateAudit(ps *problems, prod bool) {
	a := c.Audit
	if a.SigningKey == "" && prod {
		ps.add("audit.signingKey", "a checkpoint signing key is required in production mode: make one with idvault audit keygen and reference it (env:NAME or file:/path)")
	}
	if a.SigningKey != "" {
		ps.secretRef("audit.signingKey", string(a.SigningKey), prod)
	}
	if a.Origin == "" || strings.ContainsFunc(a.Origin, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '+' }) {
		ps.add("audit.origin", "must be non-empty, without spaces, control characters or '+', got %q", a.Origin)
	}
	ps.atLeast("audit.checkpointEvery", int64(a.CheckpointEvery), 1)
	ps.positive("audit.checkpointInterval", a.CheckpointInterval)
	if a.KeepFor < 0 {
		ps.add("audit.keepFor", "must not be negative (0 keeps everything), got %s", a.KeepFor)
	}
	if a.KeepFor > 0 && a.KeepFor < 24*time.Hour {
		ps.add("audit.keepFor", "must be at least 24h (or 0 to keep everything), got %s", a.KeepFor)
	}
	if s := a.Sinks.Syslog; s.Address != "" {
		if _, _, err := net.SplitHostPort(s.Address); err != nil {
			ps.add("audit.sinks.syslog.address", "must be host:port, got %q", s.Address)
		}
		if (s.CertFile == "") != (s.KeyFile == "") {
			ps.add("audit.sinks.syslog.certFile", "certFile and keyFile must be set together")
		}
		ps.oneOf("audit.sinks.syslog.facility", s.Facility, "user", "daemon", "auth", "authpriv",
			"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")
	}
}
