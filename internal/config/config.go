// Package config defines idvault's one typed configuration, its defaults,
// how it is loaded from a YAML file and IDVAULT_ environment variables, and
// the rules that Validate enforces. docs/configuration.md is the reference
// for every key; a test keeps it in step with Config.
//
// Loading, in order of precedence (later wins):
//
//  1. the defaults (Default, before derivation);
//  2. the YAML file, decoded strictly: an unknown or repeated key is an error
//     that names the key path and its line;
//  3. environment variables IDVAULT_<KEY>__<KEY>..., one per leaf key,
//     matched case-insensitively against the YAML key names
//     (IDVAULT_API__TLS__CERTFILE sets api.tls.certFile);
//  4. derivation: keys left empty that default to a value computed from
//     other keys (store.sqlite.path, blob.file.dir, api.publicURL) are
//     filled in;
//  5. Validate, which reports every problem at once.
//
// Security: configuration holds secrets only as references (env:NAME,
// file:/path, see package secret), typed secret.Ref so that a literal secret
// renders as REDACTED wherever a Config is printed, logged or marshalled.
// Production mode refuses literal secrets outright. Validate does no I/O: it
// does not open the TLS files or resolve the root key; the components that
// use them do, at start-up.
package config

import (
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/idvault/idvault/internal/ratelimit"
	"github.com/idvault/idvault/internal/secret"
)

// Mode selects dev or production behaviour.
type Mode string

// The modes. Dev generates what is missing (a self-signed TLS certificate, a
// root key file) so that one command gives a working platform; production
// requires everything to be given and refuses insecure settings.
const (
	ModeDev        Mode = "dev"
	ModeProduction Mode = "production"
)

// Role names one of the five roles a process can run.
type Role string

// The roles; see docs/configuration.md and DESIGN.md §1.
const (
	RoleAPI       Role = "api"
	RoleWorkflow  Role = "workflow"
	RoleScheduler Role = "scheduler"
	RoleAudit     Role = "audit"
	RoleIndexer   Role = "indexer"
)

// AllRoles returns the five roles in their canonical order.
func AllRoles() []Role {
	return []Role{RoleAPI, RoleWorkflow, RoleScheduler, RoleAudit, RoleIndexer}
}

// Backend type names known to this build. The wiring in internal/server
// maps each to a constructor; adding a backend adds its name here and its
// settings section to the matching struct.
var (
	storeTypes = map[string]bool{"sqlite": true}
	blobTypes  = map[string]bool{"file": true}
	queueTypes = map[string]bool{"sqlite": true}
)

// Config is the whole configuration of an idvault process. The zero Config
// is not useful; start from Default or Load. A Config is a plain value:
// copying it copies everything except the Roles slice, which is shared.
type Config struct {
	// Mode is dev or production. Default dev.
	Mode Mode `yaml:"mode"`
	// DataDir is the directory under which embedded backends and dev-mode
	// generated files live. Default "./data".
	DataDir string `yaml:"dataDir"`
	// Roles lists the roles this process runs. Default all five: api,
	// workflow, scheduler, audit, indexer.
	Roles []Role `yaml:"roles"`
	// Log configures the process log.
	Log Log `yaml:"log"`
	// API configures the HTTPS API server.
	API API `yaml:"api"`
	// Store selects and configures the structured-data backend.
	Store Store `yaml:"store"`
	// Blob selects and configures the file backend.
	Blob Blob `yaml:"blob"`
	// Queue selects and configures the broker.
	Queue Queue `yaml:"queue"`
	// Crypto configures the key hierarchy.
	Crypto Crypto `yaml:"crypto"`
	// Sessions configures verification session lifetimes.
	Sessions Sessions `yaml:"sessions"`
	// Scheduler configures the scheduler role.
	Scheduler Scheduler `yaml:"scheduler"`
	// Workflow configures the workflow role.
	Workflow Workflow `yaml:"workflow"`
	// Auth configures sign-in through identity providers.
	Auth Auth `yaml:"auth"`
	// Audit configures the tamper-evident audit log.
	Audit Audit `yaml:"audit"`
	// Regula configures the Document Reader and Face API services.
	Regula Regula `yaml:"regula"`
	// Webhooks configures webhook delivery and its SSRF policy.
	Webhooks Webhooks `yaml:"webhooks"`
	// Workflows configures workflow definitions read from files.
	Workflows Workflows `yaml:"workflows"`
}

// Log configures the process log.
type Log struct {
	// Level is the minimum level logged: debug, info, warn or error.
	// Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
}

// SlogLevel returns Level as a slog.Level; an invalid Level (which Validate
// rejects) yields slog.LevelInfo.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// API configures the HTTPS API server.
type API struct {
	// Listen is the host:port the server listens on. Default
	// "127.0.0.1:8443".
	Listen string `yaml:"listen"`
	// PublicURL is the base URL clients use to reach the API, used in
	// printed and generated URLs. Default (when empty) "https://" + Listen,
	// with "localhost" for an unspecified host. Production requires https.
	PublicURL string `yaml:"publicURL"`
	// TLS configures the server certificate.
	TLS TLS `yaml:"tls"`
	// MaxJSONBytes caps a JSON request body. Default 1048576 (1 MiB).
	MaxJSONBytes int64 `yaml:"maxJSONBytes"`
	// MaxUploadBytes caps an uploaded file. Default 20971520 (20 MiB).
	MaxUploadBytes int64 `yaml:"maxUploadBytes"`
	// MaxImagePixels caps the width × height of an uploaded image, checked
	// before it is decoded. Default 40000000.
	MaxImagePixels int64 `yaml:"maxImagePixels"`
	// ReadHeaderTimeout limits reading request headers. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	// ReadTimeout limits reading a whole request. Default 60s.
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout limits writing a response. Default 60s.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// IdleTimeout limits an idle keep-alive connection. Default 120s.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// ShutdownTimeout limits the graceful shutdown. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// RateLimit configures request rate limits.
	RateLimit RateLimit `yaml:"rateLimit"`
	// Banner is the security banner every sign-in must acknowledge (a
	// legal notice, an acceptable-use statement). Default empty: no banner.
	Banner string `yaml:"banner"`
}

// RateLimit configures request rate limits per client address, per
// principal and for sign-in attempts (package ratelimit). Limits apply per
// process.
type RateLimit struct {
	// Enabled turns rate limiting on. Default true.
	Enabled bool `yaml:"enabled"`
	// Profile is s, m or l (small, medium, large deployments; see
	// docs/access-control.md for the numbers). Default s.
	Profile string `yaml:"profile"`
	// Address, Principal and SignIn replace the profile's limit of that
	// class when either of their fields is non-zero. Default zero: the
	// profile's.
	Address   ratelimit.Limit `yaml:"address"`
	Principal ratelimit.Limit `yaml:"principal"`
	SignIn    ratelimit.Limit `yaml:"signIn"`
	// MaxBuckets, when > 0, replaces the profile's cap on remembered
	// clients per class (at least 64). Default 0: the profile's.
	MaxBuckets int `yaml:"maxBuckets"`
	// TrustedProxies lists reverse proxies (CIDR or address) whose
	// X-Forwarded-For is believed. Default empty: the header is ignored.
	TrustedProxies []string `yaml:"trustedProxies"`
}

// EffectiveProfile returns the effective rate-limit profile: the named one with the
// overrides applied.
func (r RateLimit) EffectiveProfile() (ratelimit.Profile, error) {
	p, err := ratelimit.ProfileByName(r.Profile)
	if err != nil {
		return ratelimit.Profile{}, err
	}
	for _, o := range []struct {
		dst *ratelimit.Limit
		src ratelimit.Limit
	}{{&p.Address, r.Address}, {&p.Principal, r.Principal}, {&p.SignIn, r.SignIn}} {
		if o.src != (ratelimit.Limit{}) {
			*o.dst = o.src
		}
	}
	if r.MaxBuckets > 0 {
		p.MaxBuckets = r.MaxBuckets
	}
	return p, p.Validate()
}

// TLS configures the API server's certificate. CertFile and KeyFile are set
// together or not at all.
type TLS struct {
	// CertFile is the PEM certificate chain. Default empty: in dev mode a
	// self-signed certificate is generated under DevTLSDir; production
	// requires it.
	CertFile string `yaml:"certFile"`
	// KeyFile is the PEM private key for CertFile. Default empty, as
	// CertFile.
	KeyFile string `yaml:"keyFile"`
	// ClientCAFile, when set, is a PEM bundle of CAs whose client
	// certificates are verified when presented (mTLS between roles).
	// Default empty: client certificates are not requested.
	ClientCAFile string `yaml:"clientCAFile"`
	// ReloadInterval is how often the files are checked for changes and
	// reloaded. Default 10s.
	ReloadInterval time.Duration `yaml:"reloadInterval"`
}

// Store selects the structured-data backend.
type Store struct {
	// Type names the backend: sqlite. Default sqlite.
	Type string `yaml:"type"`
	// SQLite configures the sqlite backend.
	SQLite SQLite `yaml:"sqlite"`
}

// SQLite configures the embedded SQLite database.
type SQLite struct {
	// Path is the database file. Default (when empty) DataDir/idvault.db.
	Path string `yaml:"path"`
}

// Blob selects the file backend.
type Blob struct {
	// Type names the backend: file. Default file.
	Type string `yaml:"type"`
	// File configures the file backend.
	File FileBlob `yaml:"file"`
}

// FileBlob configures the local-filesystem file backend.
type FileBlob struct {
	// Dir is the directory holding the stored files. Default (when empty)
	// DataDir/files.
	Dir string `yaml:"dir"`
}

// Queue selects and tunes the broker; the fields map to queue.Options.
type Queue struct {
	// Type names the broker: sqlite (a queue table in the store's SQLite
	// database). Default sqlite.
	Type string `yaml:"type"`
	// VisibilityTimeout is how long a received message stays invisible
	// before it is delivered again. Default 30s.
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
	// MaxAttempts is how many deliveries a message gets before it is
	// dead-lettered. Default 5.
	MaxAttempts int `yaml:"maxAttempts"`
	// RetryBackoff is the base delay before a nacked message is delivered
	// again, doubled per attempt. Default 1s.
	RetryBackoff time.Duration `yaml:"retryBackoff"`
	// MaxRetryBackoff caps the retry delay. Default 5m.
	MaxRetryBackoff time.Duration `yaml:"maxRetryBackoff"`
}

// Crypto configures the key hierarchy. Root keys come from RootKey,
// RootKeys and KMS together; each has an id, and the persisted keyring says
// which one is primary (the first configured key on a new data directory;
// later, the one `idvault keys rotate` chose).
type Crypto struct {
	// RootKey is a secret reference (env:NAME or file:/path) to a root key,
	// whose id is "root". Default empty: in dev mode, with no root key
	// configured at all, the keys are read from (or the first one generated
	// into) DataDir/keys/*.key, each file's name without ".key" as its id;
	// production requires at least one root key and refuses a literal.
	RootKey secret.Ref `yaml:"rootKey"`
	// RootKeys are further customer-managed root keys, each with an id and
	// a secret reference, for rotation. Default empty.
	RootKeys []RootKey `yaml:"rootKeys"`
	// KMS are root keys held by a key-management service, each with an id
	// and a Go Cloud secrets URL. This build compiles in base64key:// (Go
	// Cloud's local keeper); see docs/keys.md. Default empty.
	KMS []KMSKey `yaml:"kms"`
	// Scheme is how new record bodies are sealed: aes256gcm (the key
	// hierarchy) or fernet (standard Fernet tokens under FernetKeys, for
	// deployments that must keep Fernet). Default aes256gcm. Bodies of
	// either scheme stay readable while their keys are configured.
	Scheme string `yaml:"scheme"`
	// FernetKeys are secret references to Fernet keys (32 bytes, base64url);
	// the first encrypts, any decrypts. Required when Scheme is fernet, and
	// needed to read Fernet bodies until `idvault keys migrate` has
	// re-sealed them. Default empty.
	FernetKeys []secret.Ref `yaml:"fernetKeys"`
}

// RootKey is a customer-managed AES-256 root key.
type RootKey struct {
	// ID names the key in the keyring: 1 to 32 of [a-z0-9-].
	ID string `yaml:"id"`
	// Key is a secret reference to the key: 32 bytes as 64 hex digits or
	// base64.
	Key secret.Ref `yaml:"key"`
}

// KMSKey is a root key held by a key-management service.
type KMSKey struct {
	// ID names the key in the keyring: 1 to 32 of [a-z0-9-].
	ID string `yaml:"id"`
	// URL is the Go Cloud secrets URL of the key.
	URL string `yaml:"url"`
}

// Sessions configures verification session lifetimes.
type Sessions struct {
	// DefaultTTL is the lifetime of a session created without one.
	// Default 24h.
	DefaultTTL time.Duration `yaml:"defaultTTL"`
	// MaxTTL is the longest lifetime a session may be given. Default 720h.
	MaxTTL time.Duration `yaml:"maxTTL"`
}

// Scheduler configures the scheduler role.
type Scheduler struct {
	// Interval is how often the scheduler runs its due jobs and renews its
	// lease. Default 30s.
	Interval time.Duration `yaml:"interval"`
	// LeaseTTL is how long the active scheduler's lease lasts without
	// renewal; it must exceed Interval. Default 60s.
	LeaseTTL time.Duration `yaml:"leaseTTL"`
	// RepublishAfter is how long a session may wait for the workflow
	// role after a file arrived before the scheduler publishes its
	// workflow message again (recovering a message lost in a crash).
	// Default 30s.
	RepublishAfter time.Duration `yaml:"republishAfter"`
	// SweepInterval is how often stored files are swept for objects that
	// no session references (left by a process that died mid-upload).
	// Default 1h.
	SweepInterval time.Duration `yaml:"sweepInterval"`
	// OrphanGrace is how old an unreferenced object must be before the
	// sweep deletes it; it must be longer than any upload takes. Default 1h.
	OrphanGrace time.Duration `yaml:"orphanGrace"`
	// VerifyInterval is how often every stored file of a tenant is read
	// back and verified, so that one changed outside the platform is
	// quarantined and reported before anyone asks for it. Default 24h.
	VerifyInterval time.Duration `yaml:"verifyInterval"`
	// VerifyBatch is the most files one scheduler pass reads for
	// verification; the next pass resumes where it stopped. Default 1000.
	VerifyBatch int `yaml:"verifyBatch"`
}

// Workflow configures the workflow role.
type Workflow struct {
	// Concurrency is how many workflow steps one process runs at once.
	// Default 4.
	Concurrency int `yaml:"concurrency"`
}

// Auth configures sign-in through identity providers.
type Auth struct {
	// OIDC configures OpenID Connect single sign-on to the console.
	OIDC OIDC `yaml:"oidc"`
}

// OIDC configures OpenID Connect single sign-on to the console.
type OIDC struct {
	// Providers are the OpenID providers users may sign in with, each for
	// one tenant. Default empty: no single sign-on.
	Providers []OIDCProvider `yaml:"providers"`
}

// OIDCProvider is one OpenID provider of one tenant. Its sign-in routes are
// /api/v1/auth/oidc/<name>/login and /api/v1/auth/oidc/<name>/callback.
// Unknown keys in a provider are rejected like any other key.
type OIDCProvider struct {
	// Name names the provider in its routes: 1 to 32 of a-z, 0-9 and -,
	// starting with a letter or digit; unique.
	Name string `yaml:"name"`
	// Tenant is the id of the tenant whose users sign in here.
	Tenant string `yaml:"tenant"`
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document states it. https; plain http only on a loopback host in dev
	// mode.
	Issuer string `yaml:"issuer"`
	// ClientID is this platform's client id at the provider.
	ClientID string `yaml:"clientId"`
	// ClientSecret is a secret reference (env:NAME or file:/path) to the
	// client secret; production refuses a literal.
	ClientSecret secret.Ref `yaml:"clientSecret"`
	// RedirectURL is the callback URL registered at the provider. Default
	// (when empty) api.publicURL + "/api/v1/auth/oidc/<name>/callback",
	// which is also the only value allowed.
	RedirectURL string `yaml:"redirectUrl"`
	// Scopes are requested besides openid (always requested). Default
	// empty.
	Scopes []string `yaml:"scopes"`
	// ClaimMappings turn ID token claims into roles and groups.
	ClaimMappings ClaimMappings `yaml:"claimMappings"`
	// AllowedDomains, when set, admit only ID tokens whose email is
	// verified and in one of these domains. Default empty: any.
	AllowedDomains []string `yaml:"allowedDomains"`
}

// ClaimMappings turn ID token claims into roles and group memberships at
// every sign-in. Claim values that are not mapped give nothing.
type ClaimMappings struct {
	// RolesClaim names the claim (a string or a list of strings) whose
	// values Roles maps.
	RolesClaim string `yaml:"rolesClaim"`
	// GroupsClaim names the claim whose values Groups maps; it may be the
	// same claim as RolesClaim.
	GroupsClaim string `yaml:"groupsClaim"`
	// Roles maps a claim value to a role: admin, verifier, auditor,
	// integration or a custom role's name. At least one.
	Roles map[string]string `yaml:"roles"`
	// Groups maps a claim value to a group id of the tenant.
	Groups map[string]string `yaml:"groups"`
}

// base returns the defaults before derivation: derived keys are empty.
func base() Config {
	return Config{
		Mode:    ModeDev,
		DataDir: "./data",
		Roles:   AllRoles(),
		Log:     Log{Level: "info", Format: "json"},
		API: API{
			Listen:            "127.0.0.1:8443",
			TLS:               TLS{ReloadInterval: 10 * time.Second},
			MaxJSONBytes:      1 << 20,
			MaxUploadBytes:    20 << 20,
			MaxImagePixels:    40_000_000,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   30 * time.Second,
			RateLimit:         RateLimit{Enabled: true, Profile: "s", TrustedProxies: []string{}},
		},
		Store: Store{Type: "sqlite"},
		Blob:  Blob{Type: "file"},
		Queue: Queue{
			Type:              "sqlite",
			VisibilityTimeout: 30 * time.Second,
			MaxAttempts:       5,
			RetryBackoff:      time.Second,
			MaxRetryBackoff:   5 * time.Minute,
		},
		Crypto:   Crypto{Scheme: "aes256gcm", RootKeys: []RootKey{}, KMS: []KMSKey{}, FernetKeys: []secret.Ref{}},
		Sessions: Sessions{DefaultTTL: 24 * time.Hour, MaxTTL: 720 * time.Hour},
		Scheduler: Scheduler{Interval: 30 * time.Second, LeaseTTL: 60 * time.Second, RepublishAfter: 30 * time.Second,
			SweepInterval: time.Hour, OrphanGrace: time.Hour, VerifyInterval: 24 * time.Hour, VerifyBatch: 1000},
		Workflow:  Workflow{Concurrency: 16},
		Auth:      Auth{OIDC: OIDC{Providers: []OIDCProvider{}}},
		Audit:     baseAudit(),
		Regula:    baseRegula(),
		Webhooks:  baseWebhooks(),
		Workflows: baseWorkflows(),
	}
}

// Default returns the configuration used when there is no file and no
// environment override, with derived keys filled in; it equals
// Load("", nil). Each call returns a fresh value.
func Default() Config {
	c := base()
	c.derive()
	return c
}

// DevTLSDir is the directory where dev mode keeps the self-signed API
// certificate it generates when api.tls.certFile is empty: DataDir/tls.
func (c Config) DevTLSDir() string { return filepath.Join(c.DataDir, "tls") }

// DevRootKeyPath is the file where dev mode keeps the root key it generates
// when no root key is configured: DataDir/keys/root.key.
func (c Config) DevRootKeyPath() string { return filepath.Join(c.DevKeyDir(), "root.key") }

// DevKeyDir is the directory of dev-mode root key files: DataDir/keys.
func (c Config) DevKeyDir() string { return filepath.Join(c.DataDir, "keys") }

// HasRootKeys reports whether any root key is configured (not counting dev
// key files).
func (c Config) HasRootKeys() bool {
	return c.Crypto.RootKey != "" || len(c.Crypto.RootKeys) > 0 || len(c.Crypto.KMS) > 0
}

// HasRole reports whether r is among c.Roles.
func (c Config) HasRole(r Role) bool { return slices.Contains(c.Roles, r) }
