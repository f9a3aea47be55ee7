package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idvault/idvault/internal/secret"
)

// problemsOf returns the Problems joined in err, in order.
func problemsOf(t *testing.T, err error) []*Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() error %T is not a joined error", err)
	}
	var ps []*Problem
	for _, e := range joined.Unwrap() {
		var p *Problem
		if !errors.As(e, &p) {
			t.Fatalf("Validate() joined error %v is not a *Problem", e)
		}
		ps = append(ps, p)
	}
	return ps
}

func keysOf(ps []*Problem) []string {
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	return keys
}

// production returns a valid production configuration.
func production() Config {
	c := Default()
	c.Mode = ModeProduction
	c.API.PublicURL = "https://id.example.com"
	c.API.TLS.CertFile = "/etc/idvault/tls/cert.pem"
	c.API.TLS.KeyFile = "/etc/idvault/tls/key.pem"
	c.Crypto.RootKey = "file:/run/secrets/root.key"
	c.Audit.SigningKey = "file:/run/secrets/audit-signing.key"
	return c
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.Mode = "staging"
	c.API.Listen = "8443"
	c.Queue.MaxAttempts = 0
	err := c.Validate()
	ps := problemsOf(t, err)
	if got, want := keysOf(ps), []string{"mode", "api.listen", "queue.maxAttempts"}; !slices.Equal(got, want) {
		t.Fatalf("Validate() problems = %q, want %q (error %v)", got, want, err)
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != 3 {
		t.Fatalf("Validate() error has %d lines, want 3: %v", got, err)
	}
	for _, p := range ps {
		if !strings.HasPrefix(p.Error(), p.Key+": ") {
			t.Errorf("Problem.Error() = %q, want it to start with the key", p.Error())
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"production complete", func(c *Config) { *c = production() }, nil},
		{"production literal allowed in dev", func(c *Config) { c.Crypto.RootKey = "literal-key" }, nil},
		{"bad mode", func(c *Config) { c.Mode = "prod" }, []string{"mode"}},
		{"empty dataDir", func(c *Config) { c.DataDir = "" }, []string{"dataDir"}},
		{"no roles", func(c *Config) { c.Roles = nil }, []string{"roles"}},
		{"unknown role", func(c *Config) { c.Roles = []Role{RoleAPI, "web"} }, []string{"roles"}},
		{"duplicate role", func(c *Config) { c.Roles = []Role{RoleAPI, RoleAudit, RoleAPI} }, []string{"roles"}},
		{"bad log level", func(c *Config) { c.Log.Level = "trace" }, []string{"log.level"}},
		{"bad log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format"}},
		{"listen without port", func(c *Config) { c.API.Listen = "localhost" }, []string{"api.listen"}},
		{"listen bad port", func(c *Config) { c.API.Listen = "localhost:http" }, []string{"api.listen"}},
		{"listen port too big", func(c *Config) { c.API.Listen = "localhost:70000" }, []string{"api.listen"}},
		{"listen port 0 in dev", func(c *Config) { c.API.Listen = "127.0.0.1:0" }, nil},
		{"listen port 0 in production", func(c *Config) { *c = production(); c.API.Listen = "127.0.0.1:0" }, []string{"api.listen"}},
		{"publicURL relative", func(c *Config) { c.API.PublicURL = "/idvault" }, []string{"api.publicURL"}},
		{"publicURL scheme", func(c *Config) { c.API.PublicURL = "ftp://x" }, []string{"api.publicURL"}},
		{"publicURL query", func(c *Config) { c.API.PublicURL = "https://x/?a=b" }, []string{"api.publicURL"}},
		{"publicURL with path", func(c *Config) { c.API.PublicURL = "https://x.example/idvault" }, nil},
		{"publicURL http in dev", func(c *Config) { c.API.PublicURL = "http://localhost:8080" }, nil},
		{"publicURL http in production", func(c *Config) { *c = production(); c.API.PublicURL = "http://id.example.com" }, []string{"api.publicURL"}},
		{"certFile without keyFile", func(c *Config) { c.API.TLS.CertFile = "/c.pem" }, []string{"api.tls.keyFile"}},
		{"keyFile without certFile", func(c *Config) { c.API.TLS.KeyFile = "/k.pem" }, []string{"api.tls.certFile"}},
		{"production without TLS", func(c *Config) { *c = production(); c.API.TLS.CertFile, c.API.TLS.KeyFile = "", "" }, []string{"api.tls.certFile", "api.tls.keyFile"}},
		{"zero reload interval", func(c *Config) { c.API.TLS.ReloadInterval = 0 }, []string{"api.tls.reloadInterval"}},
		{"zero sizes", func(c *Config) { c.API.MaxJSONBytes, c.API.MaxUploadBytes, c.API.MaxImagePixels = 0, -1, 0 }, []string{"api.maxJSONBytes", "api.maxUploadBytes", "api.maxImagePixels"}},
		{"zero timeouts", func(c *Config) {
			c.API.ReadTimeout, c.API.WriteTimeout, c.API.IdleTimeout, c.API.ShutdownTimeout = 0, -time.Second, 0, 0
		}, []string{"api.readTimeout", "api.writeTimeout", "api.idleTimeout", "api.shutdownTimeout"}},
		{"header timeout over read timeout", func(c *Config) { c.API.ReadHeaderTimeout = 2 * time.Minute }, []string{"api.readHeaderTimeout"}},
		{"unknown store", func(c *Config) { c.Store.Type = "mongodb" }, []string{"store.type"}},
		{"empty sqlite path", func(c *Config) { c.Store.SQLite.Path = "" }, []string{"store.sqlite.path"}},
		{"unknown blob", func(c *Config) { c.Blob.Type = "s3" }, []string{"blob.type"}},
		{"empty blob dir", func(c *Config) { c.Blob.File.Dir = "" }, []string{"blob.file.dir"}},
		{"unknown queue", func(c *Config) { c.Queue.Type = "rabbitmq" }, []string{"queue.type"}},
		{"queue durations", func(c *Config) { c.Queue.VisibilityTimeout, c.Queue.RetryBackoff = 0, 0 }, []string{"queue.visibilityTimeout", "queue.retryBackoff"}},
		{"queue max backoff below base", func(c *Config) { c.Queue.MaxRetryBackoff = 500 * time.Millisecond }, []string{"queue.maxRetryBackoff"}},
		{"production without root key", func(c *Config) { *c = production(); c.Crypto.RootKey = "" }, []string{"crypto.rootKey"}},
		{"production literal root key", func(c *Config) { *c = production(); c.Crypto.RootKey = "literal-key" }, []string{"crypto.rootKey"}},
		{"production env root key", func(c *Config) { *c = production(); c.Crypto.RootKey = "env:IDVAULT_ROOT_KEY" }, nil},
		{"unsupported root key scheme", func(c *Config) { c.Crypto.RootKey = "vault:kv/idvault" }, []string{"crypto.rootKey"}},
		{"malformed root key reference", func(c *Config) { c.Crypto.RootKey = "file:relative.key" }, []string{"crypto.rootKey"}},
		{"session TTLs", func(c *Config) { c.Sessions.DefaultTTL = 0 }, []string{"sessions.defaultTTL"}},
		{"maxTTL below defaultTTL", func(c *Config) { c.Sessions.MaxTTL = time.Hour }, []string{"sessions.maxTTL"}},
		{"scheduler interval", func(c *Config) { c.Scheduler.Interval = 0 }, []string{"scheduler.interval"}},
		{"lease not longer than interval", func(c *Config) { c.Scheduler.LeaseTTL = c.Scheduler.Interval }, []string{"scheduler.leaseTTL"}},
		{"verification", func(c *Config) { c.Scheduler.VerifyInterval, c.Scheduler.VerifyBatch = -time.Hour, 0 }, []string{"scheduler.verifyInterval", "scheduler.verifyBatch"}},
		{"workflow concurrency", func(c *Config) { c.Workflow.Concurrency = 0 }, []string{"workflow.concurrency"}},
		{"audit checkpoints", func(c *Config) { c.Audit.CheckpointEvery, c.Audit.CheckpointInterval = 0, 0 }, []string{"audit.checkpointEvery", "audit.checkpointInterval"}},
		{"audit origin", func(c *Config) { c.Audit.Origin = "has space" }, []string{"audit.origin"}},
		{"audit retention", func(c *Config) { c.Audit.KeepFor = time.Hour }, []string{"audit.keepFor"}},
		{"audit syslog", func(c *Config) {
			c.Audit.Sinks.Syslog = AuditSyslogSink{Address: "no-port", CertFile: "/c.pem", Facility: "kern"}
		}, []string{"audit.sinks.syslog.address", "audit.sinks.syslog.certFile", "audit.sinks.syslog.facility"}},
		{"audit key reference", func(c *Config) { c.Audit.SigningKey = "file:relative.key" }, []string{"audit.signingKey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if got := keysOf(problemsOf(t, err)); !slices.Equal(got, tt.want) {
				t.Fatalf("Validate() problem keys = %q, want %q (error %v)", got, tt.want, err)
			}
		})
	}
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"literal", func(c *Config) { *c = production(); c.Crypto.RootKey = "k" }, "crypto.rootKey: must be a reference (env:NAME or file:/path), not a literal"},
		{"unsupported", func(c *Config) { c.Crypto.RootKey = "vault:x" }, `crypto.rootKey: secret: scheme "vault" is not supported by this build`},
		{"store type", func(c *Config) { c.Store.Type = "mongodb" }, `store.type: unknown type "mongodb"; this build knows sqlite`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateNeverShowsLiteral(t *testing.T) {
	const literal = "super-secret-literal-root-key"
	c := production()
	c.Crypto.RootKey = secret.Ref(literal)
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), literal) {
		t.Fatalf("Validate() = %v, want an error that does not show the literal", err)
	}
}

func TestProductionFromEnv(t *testing.T) {
	env := []string{
		"IDVAULT_MODE=production",
		"IDVAULT_API__PUBLICURL=https://id.example.com",
		"IDVAULT_API__TLS__CERTFILE=/tls/cert.pem",
		"IDVAULT_API__TLS__KEYFILE=/tls/key.pem",
		"IDVAULT_CRYPTO__ROOTKEY=env:IDVAULT_ROOT_KEY",
		"IDVAULT_AUDIT__SIGNINGKEY=env:IDVAULT_AUDIT_KEY",
	}
	if _, err := Load("", env); err != nil {
		t.Fatalf("Load(production env) error = %v", err)
	}
	_, err := Load("", env[:1])
	if got, want := keysOf(problemsOf(t, err)), []string{"api.tls.certFile", "api.tls.keyFile", "crypto.rootKey", "audit.signingKey"}; !slices.Equal(got, want) {
		t.Fatalf("Load(production, nothing else) problems = %q, want %q", got, want)
	}
}
